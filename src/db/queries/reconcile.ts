// SQL of the nightly reconciliation (src/reconcile). Reads gw_cdr, gw_ami_cdr, gw_ami_session and A2Billing's
// cc_call, cc_card and rate tables; writes only gw_reconcile_run and gw_reconcile_item.
//
// The three sources stream ordered by one merge key (see src/reconcile/types.ts): the call reference
// (20 lowercase hex digits) or 'u' + HEX(base uniqueid). Keys are ASCII, compared as ascii_bin, so the
// server's order equals JavaScript's string order (the merge checks it).
// Every reader runs with time_zone '+00:00': cc_call's TIMESTAMP columns then read and compare as UTC,
// like the gateway's DATETIME columns.

export const SET_UTC = "SET time_zone = '+00:00'";
/**
 * For the three sorted streams: let the server sort whole rows (not row ids that it would then fetch one by one in
 * key order: random reads, three times slower) and give the sort more memory (fewer merge passes). Session-only;
 * needs no privilege. Param: sort buffer bytes.
 */
export const SET_SORT = 'SET SESSION max_length_for_sort_data = 16384, sort_buffer_size = ?';
/** Before a connection goes back to the shared pool: the session settings above back to the server's. */
export const RESET_SESSION = 'SET SESSION time_zone = DEFAULT, max_length_for_sort_data = DEFAULT, sort_buffer_size = DEFAULT';

/** A2Billing's uniqueid with the +1000000000-per-retry offsets removed (mirrors baseUniqueid() in types.ts). */
const BASE_UID = `IF(c.uniqueid REGEXP '^[0-9]{9,11}[.][0-9]+$',
    CONCAT(CAST(SUBSTRING_INDEX(c.uniqueid, '.', 1) AS SIGNED) - 1000000000 * GREATEST(0, ROUND(
      (CAST(SUBSTRING_INDEX(c.uniqueid, '.', 1) AS SIGNED) - UNIX_TIMESTAMP(c.starttime)) / 1000000000)),
      '.', SUBSTRING_INDEX(c.uniqueid, '.', -1)),
    c.uniqueid)`;

/** [from, to) UTC. */
export const GW_CDR_STREAM = `SELECT
  CONVERT(IF(g.callref REGEXP '^[0-9a-f]{20}$', g.callref, LEFT(SHA2(g.callid, 256), 20)) USING ascii) COLLATE ascii_bin AS k,
  g.callid, g.accountcode, g.created, g.answered IS NOT NULL AS ans,
  CAST(UNIX_TIMESTAMP(COALESCE(g.ended, g.answered, g.created)) * 1000 AS SIGNED) AS endMs, g.duration_sec AS durationSec, g.sip_code AS sipCode,
  g.end_reason AS endReason, g.dst_user AS dstUser, g.destination
FROM gw_cdr g
WHERE g.created >= ? AND g.created < ?
ORDER BY k`;

/** [from, to) UTC on start_time. The Call-ID is sip_callid, else the userfield the dialplan fills. */
export const AMI_CDR_STREAM = `SELECT
  CONVERT(IF(COALESCE(NULLIF(a.sip_callid, ''), NULLIF(a.userfield, '')) IS NULL,
    CONCAT('u', HEX(a.uniqueid)),
    LEFT(SHA2(COALESCE(NULLIF(a.sip_callid, ''), a.userfield), 256), 20)) USING ascii) COLLATE ascii_bin AS k,
  a.box, a.uniqueid, a.accountcode, a.start_time AS \`start\`, a.billsec, a.disposition,
  COALESCE(NULLIF(a.sip_callid, ''), a.userfield) AS callid, a.dst
FROM gw_ami_cdr a
WHERE a.start_time >= ? AND a.start_time < ?
ORDER BY k`;

/** [from, to) UTC on starttime. a2b_custom1 counts as a call reference only when it looks like one. */
export const CC_CALL_STREAM = `SELECT
  CONVERT(IF(c.a2b_custom1 REGEXP '^[0-9a-fA-F]{20}$', LOWER(c.a2b_custom1), CONCAT('u', HEX(${BASE_UID}))) USING ascii) COLLATE ascii_bin AS k,
  ${BASE_UID} AS baseUid,
  c.id, c.card_id AS cardId, c.starttime AS \`start\`, c.sessiontime, c.real_sessiontime AS realSessiontime, c.sessionbill,
  c.terminatecauseid, c.calledstation
FROM cc_call c
WHERE c.starttime >= ? AND c.starttime < ?
ORDER BY k`;


/**
 * Uniqueid keys of the rows that carry no call reference, per source ([from, to) UTC). A callref group lacking the
 * other source waits for the uniqueid-only rows only when its uniqueid is among these, so memory stays small even
 * on a day when one source is missing entirely.
 */
export const AMI_UID_ONLY_KEYS = `SELECT DISTINCT CONVERT(CONCAT('u', HEX(a.uniqueid)) USING ascii) AS uk
FROM gw_ami_cdr a
WHERE a.start_time >= ? AND a.start_time < ? AND COALESCE(NULLIF(a.sip_callid, ''), NULLIF(a.userfield, '')) IS NULL`;
export const CC_UID_ONLY_KEYS = `SELECT DISTINCT CONVERT(CONCAT('u', HEX(${BASE_UID})) USING ascii) AS uk
FROM cc_call c
WHERE c.starttime >= ? AND c.starttime < ? AND (c.a2b_custom1 IS NULL OR c.a2b_custom1 NOT REGEXP '^[0-9a-fA-F]{20}$')`;

export const CARDS = 'SELECT id, username, tariff FROM cc_card';
export const TARIFF_PLANS = 'SELECT idtariffgroup AS tariff, idtariffplan AS plan FROM cc_tariffgroup_plan ORDER BY idtariffgroup, idtariffplan';
export const RATE_CARDS = `SELECT r.idtariffplan AS plan, r.dialprefix AS prefix, r.rateinitial AS rate, r.initblock, r.billingblock,
  r.connectcharge AS \`connect\`
FROM cc_ratecard r
WHERE r.idtariffplan IN (SELECT idtariffplan FROM cc_tariffgroup_plan)
ORDER BY r.idtariffplan, r.id`;

/** Sessions overlapping [from, to) (params: to, from), plus open ones. */
export const AMI_SESSIONS = `SELECT box, instance, connected_at AS connectedAt, disconnected_at AS disconnectedAt
FROM gw_ami_session
WHERE connected_at < ? AND (disconnected_at IS NULL OR disconnected_at > ?)
ORDER BY box, instance, connected_at`;

// --- results (one transaction per run) ---
export const RUN_FIND_FOR_UPDATE = 'SELECT id FROM gw_reconcile_run WHERE billing_day = ? AND timezone = ? FOR UPDATE';
export const ITEMS_DELETE = 'DELETE FROM gw_reconcile_item WHERE run_id = ?';
export const RUN_DELETE = 'DELETE FROM gw_reconcile_run WHERE id = ?';
export const RUN_INSERT = `INSERT INTO gw_reconcile_run (billing_day, timezone, window_start, window_end, started_at, status, summary)
VALUES (?, ?, ?, ?, ?, 'running', '{}')`;
export const RUN_FINISH = `UPDATE gw_reconcile_run SET finished_at = ?, status = 'done', calls_total = ?, summary = ? WHERE id = ?`;
export const ITEM_COLUMNS = ['run_id', 'class', 'callid', 'callref', 'box', 'uniqueid', 'cc_call_id', 'accountcode_gw', 'accountcode_billed',
  'card_id', 'gw_duration', 'ami_duration', 'billed_duration', 'amount_at_risk', 'detail'] as const;
const ITEM_ROW = `(${ITEM_COLUMNS.map(() => '?').join(', ')})`;
/** A multi-row INSERT of n items (n placeholders groups; values bound, never inlined). */
export function itemsInsert(n: number): string {
  return `INSERT INTO gw_reconcile_item (${ITEM_COLUMNS.join(', ')}) VALUES ${new Array<string>(n).fill(ITEM_ROW).join(', ')}`;
}

// --- reading results back (mgmt, tests) ---
export const RUN_GET = `SELECT id, billing_day AS billingDay, timezone, window_start AS windowStart, window_end AS windowEnd,
  started_at AS startedAt, finished_at AS finishedAt, status, calls_total AS callsTotal, summary
FROM gw_reconcile_run WHERE billing_day = ? AND timezone = ?`;
export const RUN_LATEST = `SELECT id, billing_day AS billingDay, timezone, window_start AS windowStart, window_end AS windowEnd,
  started_at AS startedAt, finished_at AS finishedAt, status, calls_total AS callsTotal, summary
FROM gw_reconcile_run WHERE status = 'done' ORDER BY finished_at DESC LIMIT 1`;
export const ITEMS_OF_RUN = `SELECT class, callid, callref, box, uniqueid, cc_call_id AS ccCallId, accountcode_gw AS accountGw,
  accountcode_billed AS accountBilled, card_id AS cardId, gw_duration AS gwDuration, ami_duration AS amiDuration,
  billed_duration AS billedDuration, amount_at_risk AS amount, detail
FROM gw_reconcile_item WHERE run_id = ? ORDER BY id`;
