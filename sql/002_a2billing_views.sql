-- a2b-gateway: read-only views over A2Billing's tables, with Kamailio-compatible column names
-- (so kamailio's auth_db and permissions modules can read them too). Nothing here alters A2Billing.
--
-- A peer counts only when its card is active (cc_card.status = 1) and its accountcode is its card's
-- username: a hand-made peer whose accountcode names no card (or another card) would be refused by
-- A2Billing's AGI, or bill the wrong customer.

-- Digest authentication: SIP accounts of active cards. The secret is plain text in A2Billing.
CREATE OR REPLACE SQL SECURITY DEFINER VIEW subscriber AS
SELECT b.id AS id,
       CAST(COALESCE(NULLIF(b.username, ''), b.name) AS CHAR(80)) AS username,
       CAST('' AS CHAR(64)) AS domain,
       CAST(b.secret AS CHAR(80)) AS password,
       CAST(c.username AS CHAR(20)) AS accountcode,
       c.id AS card_id,
       c.status AS card_status
FROM cc_sip_buddies b
JOIN cc_card c ON c.id = b.id_cc_card
WHERE c.status = 1
  AND b.accountcode = c.username
  AND b.secret <> '';

-- IP authentication: peers whose host is a literal IPv4/IPv6 address, plus the gateway's extra
-- trusted sources (gw_trusted). grp 1 for A2Billing peers (Kamailio's permissions needs grp > 0); proto 'any' for peers (sip.conf has no per-peer transport here).
CREATE OR REPLACE SQL SECURITY DEFINER VIEW address AS
SELECT CAST(CONCAT('p', b.id) AS CHAR(24)) AS id,
       CAST(1 AS UNSIGNED) AS grp,
       CAST(b.host AS CHAR(50)) AS ip_addr,
       CAST(CASE WHEN b.host LIKE '%:%' THEN 128 ELSE 32 END AS UNSIGNED) AS mask,
       CAST(CASE WHEN b.port REGEXP '^[0-9]{1,5}$' THEN b.port ELSE '0' END AS UNSIGNED) AS port,
       CAST('any' AS CHAR(4)) AS proto,
       CAST(c.username AS CHAR(20)) AS tag,
       CAST(c.username AS CHAR(20)) AS accountcode,
       c.id AS card_id,
       CAST(CONCAT('cc_sip_buddies ', b.name) AS CHAR(255)) AS description
FROM cc_sip_buddies b
JOIN cc_card c ON c.id = b.id_cc_card
WHERE c.status = 1
  AND b.accountcode = c.username
  AND (b.host REGEXP '^[0-9]{1,3}([.][0-9]{1,3}){3}$'
       OR (b.host LIKE '%:%' AND b.host REGEXP '^[0-9A-Fa-f:.]+$'))
UNION ALL
SELECT CAST(CONCAT('t', t.id) AS CHAR(24)) AS id,
       CAST(t.grp AS UNSIGNED) AS grp,
       CAST(t.ip_addr AS CHAR(50)) AS ip_addr,
       CAST(t.mask AS UNSIGNED) AS mask,
       CAST(t.port AS UNSIGNED) AS port,
       CAST(t.proto AS CHAR(4)) AS proto,
       CAST(c.username AS CHAR(20)) AS tag,
       CAST(c.username AS CHAR(20)) AS accountcode,
       c.id AS card_id,
       CAST(t.description AS CHAR(255)) AS description
FROM gw_trusted t
JOIN cc_card c ON c.username = t.accountcode AND c.status = 1;
