-- Kamailio's tables for the benchmark, in their own database beside A2Billing's: the `version` table its
-- modules check, acc/missed_calls/acc_cdrs with the same extra columns the gateway records, and the
-- gateway's `address` and `subscriber` views seen through views (the same data both proxies authenticate against).
CREATE TABLE version (id INT UNSIGNED AUTO_INCREMENT PRIMARY KEY, table_name VARCHAR(32) NOT NULL UNIQUE, table_version INT UNSIGNED NOT NULL DEFAULT 0);
INSERT INTO version (table_name, table_version) VALUES ('version', 1), ('acc', 5), ('missed_calls', 4), ('acc_cdrs', 2), ('address', 6), ('subscriber', 7), ('trusted', 6);
CREATE TABLE acc (id INT UNSIGNED AUTO_INCREMENT PRIMARY KEY, method VARCHAR(16) NOT NULL DEFAULT '', from_tag VARCHAR(128) NOT NULL DEFAULT '',
  to_tag VARCHAR(128) NOT NULL DEFAULT '', callid VARCHAR(255) NOT NULL DEFAULT '', sip_code VARCHAR(3) NOT NULL DEFAULT '',
  sip_reason VARCHAR(128) NOT NULL DEFAULT '', time DATETIME NOT NULL, src_user VARCHAR(64) NOT NULL DEFAULT '', src_domain VARCHAR(128) NOT NULL DEFAULT '',
  dst_user VARCHAR(64) NOT NULL DEFAULT '', dst_domain VARCHAR(128) NOT NULL DEFAULT '', src_ip VARCHAR(64) NOT NULL DEFAULT '',
  accountcode VARCHAR(20) NOT NULL DEFAULT '', destination VARCHAR(192) NOT NULL DEFAULT '', KEY callid_idx (callid)) ENGINE=InnoDB;
CREATE TABLE missed_calls LIKE acc;
CREATE TABLE acc_cdrs (id INT UNSIGNED AUTO_INCREMENT PRIMARY KEY, start_time DATETIME NOT NULL DEFAULT '2000-01-01 00:00:00',
  end_time DATETIME NOT NULL DEFAULT '2000-01-01 00:00:00', duration FLOAT(10,3) NOT NULL DEFAULT 0, callid VARCHAR(255) NOT NULL DEFAULT '',
  accountcode VARCHAR(20) NOT NULL DEFAULT '', src_user VARCHAR(64) NOT NULL DEFAULT '', dst_user VARCHAR(64) NOT NULL DEFAULT '',
  destination VARCHAR(192) NOT NULL DEFAULT '', KEY start_time_idx (start_time)) ENGINE=InnoDB;
-- permissions also checks `trusted` at start-up; it stays empty (sources are in `address`).
CREATE TABLE trusted (id INT UNSIGNED AUTO_INCREMENT PRIMARY KEY, src_ip VARCHAR(50) NOT NULL, proto VARCHAR(4) NOT NULL,
  from_pattern VARCHAR(64) DEFAULT NULL, ruri_pattern VARCHAR(64) DEFAULT NULL, tag VARCHAR(64), priority INT NOT NULL DEFAULT 0);
-- permissions insists on INT columns, which a view over a UNION cannot give: copy the gateway's view once
-- (Kamailio caches the table at start-up anyway, db_mode 1).
CREATE TABLE address (id INT UNSIGNED AUTO_INCREMENT PRIMARY KEY, grp INT UNSIGNED NOT NULL DEFAULT 1, ip_addr VARCHAR(50) NOT NULL,
  mask INT NOT NULL DEFAULT 32, port SMALLINT UNSIGNED NOT NULL DEFAULT 0, tag VARCHAR(64));
INSERT INTO address (grp, ip_addr, mask, port, tag) SELECT grp, ip_addr, mask, port, tag FROM @A2BDB@.address;
CREATE VIEW subscriber AS SELECT id, username, domain, password, accountcode FROM @A2BDB@.subscriber;
