-- a2b-gateway: the gateway's own tables. Forward-only; every statement is idempotent.
-- Never alters an A2Billing table. Times are UTC (DATETIME(3), written by the gateway).

-- Extra trusted sources for IP authentication (carriers, customers with address ranges).
CREATE TABLE IF NOT EXISTS gw_trusted (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  grp INT UNSIGNED NOT NULL DEFAULT 1,              -- 1..n; auth.ipGroups can restrict which groups are trusted
  ip_addr VARCHAR(50) NOT NULL,                 -- IPv4 or IPv6 address (network address of the range)
  mask TINYINT UNSIGNED NOT NULL DEFAULT 32,    -- prefix length: 0-32 for IPv4, 0-128 for IPv6
  port INT UNSIGNED NOT NULL DEFAULT 0,         -- 0 = any source port
  proto VARCHAR(4) NOT NULL DEFAULT 'any',      -- any | udp | tcp
  accountcode VARCHAR(20) NOT NULL,             -- the A2Billing card username this source bills to
  description VARCHAR(255) NOT NULL DEFAULT '',
  created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
  KEY gw_trusted_ip (ip_addr)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Dispatcher destinations (Kamailio/OpenSIPS-like). state: 0 active, 1 inactive, 2 probing, 3 disabled.
CREATE TABLE IF NOT EXISTS gw_dispatcher (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  setid INT UNSIGNED NOT NULL DEFAULT 1,
  destination VARCHAR(192) NOT NULL,            -- sip:host:port;transport=udp|tcp
  state TINYINT UNSIGNED NOT NULL DEFAULT 0,
  weight INT UNSIGNED NOT NULL DEFAULT 1,
  priority INT NOT NULL DEFAULT 0,
  attrs VARCHAR(128) NOT NULL DEFAULT '',
  description VARCHAR(64) NOT NULL DEFAULT '',
  UNIQUE KEY gw_dispatcher_dest (setid, destination)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Transaction accounting (like acc). rec_key makes journal replays idempotent.
CREATE TABLE IF NOT EXISTS gw_acc (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  rec_key CHAR(32) NOT NULL,
  method VARCHAR(16) NOT NULL,
  from_tag VARCHAR(128) NOT NULL DEFAULT '',
  to_tag VARCHAR(128) NOT NULL DEFAULT '',
  callid VARCHAR(255) NOT NULL,
  sip_code SMALLINT UNSIGNED NOT NULL,
  sip_reason VARCHAR(128) NOT NULL DEFAULT '',
  time DATETIME(3) NOT NULL,
  src_user VARCHAR(64) NOT NULL DEFAULT '',
  src_domain VARCHAR(128) NOT NULL DEFAULT '',
  dst_user VARCHAR(64) NOT NULL DEFAULT '',
  dst_domain VARCHAR(128) NOT NULL DEFAULT '',
  accountcode VARCHAR(20) NOT NULL DEFAULT '',
  src_ip VARCHAR(50) NOT NULL DEFAULT '',
  auth_method VARCHAR(8) NOT NULL DEFAULT '',
  destination VARCHAR(192) NOT NULL DEFAULT '',
  attempt SMALLINT UNSIGNED NOT NULL DEFAULT 1,
  UNIQUE KEY gw_acc_key (rec_key),
  KEY gw_acc_callid (callid(64)),
  KEY gw_acc_time (time)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Failed INVITEs, one row per attempt (like acc's missed_calls): the same columns and keys as gw_acc.
CREATE TABLE IF NOT EXISTS gw_missed_calls LIKE gw_acc;

-- Dialog-based CDRs (like acc's cdr mode). callref = the <=20 char Call-ID reference the dialplan
-- copies into A2Billing's cc_call.a2b_custom1.
CREATE TABLE IF NOT EXISTS gw_cdr (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  rec_key CHAR(32) NOT NULL,
  callid VARCHAR(255) NOT NULL,
  callref VARCHAR(20) NOT NULL DEFAULT '',
  from_tag VARCHAR(128) NOT NULL DEFAULT '',
  to_tag VARCHAR(128) NOT NULL DEFAULT '',
  created DATETIME(3) NOT NULL,
  answered DATETIME(3) NULL,
  ended DATETIME(3) NULL,
  setup_ms INT UNSIGNED NULL,
  duration_sec INT UNSIGNED NOT NULL DEFAULT 0,
  duration_ms BIGINT UNSIGNED NOT NULL DEFAULT 0,
  end_reason VARCHAR(16) NOT NULL DEFAULT '',   -- bye-caller | bye-callee | max-duration | timeout | error | admin | failed | cancelled
  sip_code SMALLINT UNSIGNED NOT NULL DEFAULT 0,
  accountcode VARCHAR(20) NOT NULL DEFAULT '',
  card_id BIGINT NULL,
  src_user VARCHAR(64) NOT NULL DEFAULT '',
  src_domain VARCHAR(128) NOT NULL DEFAULT '',
  dst_user VARCHAR(64) NOT NULL DEFAULT '',
  dst_domain VARCHAR(128) NOT NULL DEFAULT '',
  src_ip VARCHAR(50) NOT NULL DEFAULT '',
  auth_method VARCHAR(8) NOT NULL DEFAULT '',
  destination VARCHAR(192) NOT NULL DEFAULT '',
  max_duration_sec INT UNSIGNED NULL,
  UNIQUE KEY gw_cdr_key (rec_key),
  KEY gw_cdr_created (created),
  KEY gw_cdr_callid (callid(64)),
  KEY gw_cdr_callref (callref)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Dialogs that must survive a restart (confirmed calls: routes, CSeqs, timers as a JSON snapshot).
CREATE TABLE IF NOT EXISTS gw_dialog (
  dlg_key CHAR(32) NOT NULL PRIMARY KEY,
  callid VARCHAR(255) NOT NULL,
  state TINYINT UNSIGNED NOT NULL,              -- 1 early, 2 confirmed, 3 terminated
  accountcode VARCHAR(20) NOT NULL DEFAULT '',
  created DATETIME(3) NOT NULL,
  updated DATETIME(3) NOT NULL,
  expires DATETIME(3) NULL,                     -- when the maximum duration ends the call
  data MEDIUMTEXT NOT NULL,
  KEY gw_dialog_state (state)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Cdr events from Asterisk's AMI (and backfilled durable CDRs). One call may raise several (Sequence).
CREATE TABLE IF NOT EXISTS gw_ami_cdr (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  box VARCHAR(64) NOT NULL,
  uniqueid VARCHAR(40) NOT NULL,
  sequence INT NOT NULL DEFAULT 0,
  linkedid VARCHAR(40) NOT NULL DEFAULT '',
  accountcode VARCHAR(80) NOT NULL DEFAULT '',
  src VARCHAR(80) NOT NULL DEFAULT '',
  dst VARCHAR(80) NOT NULL DEFAULT '',
  dcontext VARCHAR(80) NOT NULL DEFAULT '',
  clid VARCHAR(128) NOT NULL DEFAULT '',
  channel VARCHAR(128) NOT NULL DEFAULT '',
  dstchannel VARCHAR(128) NOT NULL DEFAULT '',
  lastapp VARCHAR(80) NOT NULL DEFAULT '',
  lastdata VARCHAR(255) NOT NULL DEFAULT '',
  start_time DATETIME NULL,                     -- UTC, converted from the box's local time
  answer_time DATETIME NULL,
  end_time DATETIME NULL,
  duration INT UNSIGNED NOT NULL DEFAULT 0,
  billsec INT UNSIGNED NOT NULL DEFAULT 0,
  disposition VARCHAR(16) NOT NULL DEFAULT '',
  amaflags VARCHAR(16) NOT NULL DEFAULT '',
  userfield VARCHAR(255) NOT NULL DEFAULT '',   -- the dialplan puts the SIP Call-ID here
  sip_callid VARCHAR(255) NOT NULL DEFAULT '',
  origin VARCHAR(8) NOT NULL DEFAULT 'ami',     -- ami | backfill
  received_at DATETIME(3) NOT NULL,
  UNIQUE KEY gw_ami_cdr_key (box, uniqueid, sequence),
  KEY gw_ami_cdr_start (start_time),
  KEY gw_ami_cdr_callid (sip_callid(64))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- AMI connection intervals, so reconciliation knows when a box's AMI was blind.
CREATE TABLE IF NOT EXISTS gw_ami_session (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  box VARCHAR(64) NOT NULL,
  instance VARCHAR(64) NOT NULL DEFAULT '',
  connected_at DATETIME(3) NOT NULL,
  disconnected_at DATETIME(3) NULL,
  reason VARCHAR(255) NOT NULL DEFAULT '',
  KEY gw_ami_session_box (box, connected_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Reconciliation: one run per billing day and timezone (a rerun replaces it) and one row per discrepancy.
CREATE TABLE IF NOT EXISTS gw_reconcile_run (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  billing_day DATE NOT NULL,
  timezone VARCHAR(64) NOT NULL,
  window_start DATETIME NOT NULL,               -- UTC
  window_end DATETIME NOT NULL,
  started_at DATETIME(3) NOT NULL,
  finished_at DATETIME(3) NULL,
  status VARCHAR(12) NOT NULL,                  -- running | done | failed
  calls_total INT UNSIGNED NOT NULL DEFAULT 0,
  summary MEDIUMTEXT NOT NULL,                  -- JSON: counts and money at risk per class and account
  UNIQUE KEY gw_reconcile_run_day (billing_day, timezone)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS gw_reconcile_item (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  run_id BIGINT UNSIGNED NOT NULL,
  class VARCHAR(24) NOT NULL,                   -- duration_mismatch | account_mismatch | unbilled | bypass | ami_gap | ...
  callid VARCHAR(255) NOT NULL DEFAULT '',
  callref VARCHAR(20) NOT NULL DEFAULT '',
  box VARCHAR(64) NOT NULL DEFAULT '',
  uniqueid VARCHAR(40) NOT NULL DEFAULT '',
  cc_call_id BIGINT NULL,
  accountcode_gw VARCHAR(20) NOT NULL DEFAULT '',
  accountcode_billed VARCHAR(50) NOT NULL DEFAULT '',
  card_id BIGINT NULL,
  gw_duration INT NULL,
  ami_duration INT NULL,
  billed_duration INT NULL,
  amount_at_risk DECIMAL(15,5) NOT NULL DEFAULT 0,
  detail VARCHAR(512) NOT NULL DEFAULT '',
  KEY gw_reconcile_item_run (run_id, class)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
