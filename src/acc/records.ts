// The accounting records and their table specs: gw_acc (accounted transactions), gw_missed_calls (failed INVITE
// attempts) and gw_cdr (one row per call). Records are plain data; the specs clip every string to its column
// width (header values are attacker-controlled and must never make MySQL refuse a row).
import { callRef } from '../callref.js';
import { clip, defineTable, recKey, sqlDateTime } from '../store/index.js';

/** One row of gw_acc or gw_missed_calls (same columns, like acc's acc / missed_calls tables). */
export interface AccRecord {
  key: string;
  method: string;
  fromTag: string;
  toTag: string;
  callId: string;
  sipCode: number;
  sipReason: string;
  /** epoch ms */
  time: number;
  srcUser: string;
  srcDomain: string;
  dstUser: string;
  dstDomain: string;
  accountcode: string;
  srcIp: string;
  authMethod: string;
  /** The box (dispatcher destination URI) the request went to. */
  destination: string;
  attempt: number;
}

export type CdrEndReason = 'bye-caller' | 'bye-callee' | 'max-duration' | 'timeout' | 'error' | 'admin' | 'failed' | 'cancelled';

/** One row of gw_cdr. */
export interface CdrRecord {
  key: string;
  callId: string;
  fromTag: string;
  toTag: string;
  created: number;
  answered: number | null;
  ended: number | null;
  setupMs: number | null;
  durationSec: number;
  durationMs: number;
  endReason: CdrEndReason;
  sipCode: number;
  accountcode: string;
  cardId: number | null;
  srcUser: string;
  srcDomain: string;
  dstUser: string;
  dstDomain: string;
  srcIp: string;
  authMethod: string;
  destination: string;
  maxDurationSec: number | null;
}

const ACC_COLUMNS = ['rec_key', 'method', 'from_tag', 'to_tag', 'callid', 'sip_code', 'sip_reason', 'time', 'src_user', 'src_domain',
  'dst_user', 'dst_domain', 'accountcode', 'src_ip', 'auth_method', 'destination', 'attempt'] as const;

const sipCode = (n: number): number => (Number.isInteger(n) && n >= 0 && n <= 65535 ? n : 0);
const uint = (n: number): number => (Number.isFinite(n) && n > 0 ? Math.round(n) : 0);

function accRow(r: AccRecord): Array<string | number> {
  return [r.key, clip(r.method, 16), clip(r.fromTag, 128), clip(r.toTag, 128), clip(r.callId, 255), sipCode(r.sipCode), clip(r.sipReason, 128),
    sqlDateTime(r.time), clip(r.srcUser, 64), clip(r.srcDomain, 128), clip(r.dstUser, 64), clip(r.dstDomain, 128), clip(r.accountcode, 20),
    clip(r.srcIp, 50), clip(r.authMethod, 8), clip(r.destination, 192), Math.min(65535, Math.max(1, r.attempt | 0))];
}

export const accTable = defineTable<AccRecord>({ table: 'gw_acc', columns: ACC_COLUMNS, keyColumns: ['rec_key'], toRow: accRow });
export const missedTable = defineTable<AccRecord>({ table: 'gw_missed_calls', columns: ACC_COLUMNS, keyColumns: ['rec_key'], toRow: accRow });

/**
 * gw_cdr is last-write-wins on rec_key (Call-ID, caller tag, start time): a call reported failed and then answered
 * after all (a 2xx crossing our 487/408 upstream), or reaped and then ended for real, ends with its true CDR.
 * The journal replays in order, so a replay converges on the same last row.
 */
export const cdrTable = defineTable<CdrRecord>({
  table: 'gw_cdr',
  onDuplicate: 'update',
  columns: ['rec_key', 'callid', 'callref', 'from_tag', 'to_tag', 'created', 'answered', 'ended', 'setup_ms', 'duration_sec', 'duration_ms',
    'end_reason', 'sip_code', 'accountcode', 'card_id', 'src_user', 'src_domain', 'dst_user', 'dst_domain', 'src_ip', 'auth_method',
    'destination', 'max_duration_sec'],
  keyColumns: ['rec_key'],
  toRow: (r) => [r.key, clip(r.callId, 255), callRef(r.callId), clip(r.fromTag, 128), clip(r.toTag, 128), sqlDateTime(r.created),
    r.answered === null ? null : sqlDateTime(r.answered), r.ended === null ? null : sqlDateTime(r.ended),
    r.setupMs === null ? null : uint(r.setupMs), uint(r.durationSec), uint(r.durationMs), r.endReason, sipCode(r.sipCode),
    clip(r.accountcode, 20), r.cardId, clip(r.srcUser, 64), clip(r.srcDomain, 128), clip(r.dstUser, 64), clip(r.dstDomain, 128),
    clip(r.srcIp, 50), clip(r.authMethod, 8), clip(r.destination, 192), r.maxDurationSec === null ? null : uint(r.maxDurationSec)],
});

export type DurationRounding = 'floor' | 'half-up' | 'ceil';

/**
 * Whole seconds of an answered call, the way the billing side counts them. Asterisk's CDR billsec and Dial's
 * ANSWEREDTIME (which A2Billing stores as cc_call.sessiontime) truncate: 59.9 s is 59 s ('floor', default).
 * cdr.conf `initiatedseconds=yes` rounds half up ('half-up'); 'ceil' counts every started second.
 */
export function durationSeconds(ms: number, rounding: DurationRounding): number {
  if (!(ms > 0)) return 0;
  switch (rounding) {
    case 'floor': return Math.floor(ms / 1000);
    case 'half-up': return Math.floor((ms + 500) / 1000);
    case 'ceil': return Math.ceil(ms / 1000);
  }
}

export { recKey };
