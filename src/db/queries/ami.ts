// SQL of the AMI connector (gw_ami_cdr, gw_ami_session) and of the backfill from a box's `cdr` table.
// Batched inserts into gw_ami_cdr / gw_ami_session go through src/store (batchInsertSql).

/** Existing rows of a box for some uniqueids: to recognise a sequence-less backfilled CDR already stored from AMI. */
export function selectAmiCdrByUniqueIdsSql(count: number): string {
  return `SELECT uniqueid, sequence, start_time, end_time, dstchannel, disposition, billsec
    FROM gw_ami_cdr WHERE box = ? AND uniqueid IN (${new Array<string>(count).fill('?').join(', ')})`;
}

/** Sessions this instance left open (process died): their end stays the last time they were known up. */
export const CLOSE_STALE_SESSIONS = `UPDATE gw_ami_session SET reason = ?
  WHERE instance = ? AND reason = 'up' AND connected_at < ?`;

/**
 * A window of a box's durable CDR table. The table name is validated by the config schema (identifier only) and
 * quoted; every value is a placeholder. calldate is the box's local time.
 */
export function selectBoxCdrSql(table: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]{0,63}$/.test(table)) throw new Error(`bad table name ${table}`);
  return `SELECT * FROM \`${table}\` WHERE calldate >= ? AND calldate < ? ORDER BY calldate`;
}

/** Where AMI coverage of a box last ended before a time (any instance): the start of the gap a restart leaves. */
export const SELECT_LAST_SESSION_END = `SELECT MAX(disconnected_at) AS last_end FROM gw_ami_session
  WHERE box = ? AND connected_at < ?`;
