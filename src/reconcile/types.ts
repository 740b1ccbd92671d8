// Rows read from the three sources and the classification of one call. `k` is the merge key every source
// is ordered by: the call reference (callRef of the SIP Call-ID, 20 lowercase hex digits) when the row
// carries one, else 'u' + HEX(base uniqueid). 'u' sorts after every hex digit, so the uniqueid-only rows
// arrive after all the callref rows.

/** Discrepancy classes, most serious first: a call gets the first that applies. */
export const DISCREPANCY_CLASSES = [
  'bypass', // billed or answered on Asterisk, but the gateway never saw the call (possible fraud)
  'unanswered_billed', // the gateway saw no answer, A2Billing billed it anyway
  'unbilled', // answered through the gateway, no answered/billed cc_call row
  'account_mismatch', // A2Billing billed a card other than the account code the gateway injected
  'duration_mismatch', // billed seconds differ from the gateway's by more than the tolerance
  'ami_missing_gap', // no AMI Cdr, but the box's AMI was disconnected when the call ended (explained)
  'ami_missing', // no AMI Cdr although AMI was connected (lost event, box misconfigured)
] as const;
export type DiscrepancyClass = (typeof DISCREPANCY_CLASSES)[number];
export const CALL_CLASSES = ['matched', ...DISCREPANCY_CLASSES] as const;
export type CallClass = (typeof CALL_CLASSES)[number];

export const CLASS_LABELS: Record<CallClass, string> = {
  matched: 'Matched',
  bypass: 'Bypass (not via gateway)',
  unanswered_billed: 'Unanswered but billed',
  unbilled: 'Answered but unbilled',
  account_mismatch: 'Wrong account billed',
  duration_mismatch: 'Duration mismatch',
  ami_missing_gap: 'No AMI record (AMI gap)',
  ami_missing: 'No AMI record',
};

export interface GwCdrRow {
  k: string;
  callid: string;
  accountcode: string;
  /** UTC 'YYYY-MM-DD HH:MM:SS.fff': when the INVITE arrived. */
  created: string;
  /** 1 when the call was answered. */
  ans: number;
  /** Epoch ms when the call ended (else answered, else created). */
  endMs: number;
  durationSec: number;
  sipCode: number;
  endReason: string;
  dstUser: string;
  destination: string;
}

export interface AmiCdrRow {
  k: string;
  box: string;
  uniqueid: string;
  accountcode: string;
  start: string | null;
  billsec: number;
  disposition: string;
  /** sip_callid, else userfield (the dialplan writes the SIP Call-ID there). */
  callid: string;
  dst: string;
}

export interface CcCallRow {
  k: string;
  /** uniqueid with the retry offsets (+1000000000 per retry) removed. */
  baseUid: string;
  id: number;
  cardId: number;
  start: string;
  /** Billed seconds: the answered time rounded up to the rate's blocks. */
  sessiontime: number | null;
  /** Answered seconds (what the gateway's duration is compared with); NULL on old rows. */
  realSessiontime?: number | null;
  sessionbill: number | null;
  terminatecauseid: number | null;
  calledstation: string;
}

export interface CallResult {
  cls: CallClass;
  /** UTC start of the call: the gateway's INVITE time, else the earliest Asterisk/A2Billing start. */
  start: string;
  callid: string;
  callref: string;
  box: string;
  uniqueid: string;
  ccCallId: number | null;
  accountGw: string;
  accountBilled: string;
  cardId: number | null;
  gwDuration: number | null;
  amiDuration: number | null;
  billedDuration: number | null;
  /** Money at risk (>= 0), in the cards' currency. */
  amount: number;
  detail: string;
  /** Account the call is attributed to: the gateway's, else the billed card's, else AMI's accountcode. */
  account: string;
}

export interface Card {
  id: number;
  username: string;
  tariff: number;
}

export interface CardBook {
  byId(id: number): Card | undefined;
  byUsername(username: string): Card | undefined;
}

export function buildCardBook(cards: Iterable<Card>): CardBook {
  const ids = new Map<number, Card>();
  const names = new Map<string, Card>();
  for (const c of cards) {
    ids.set(c.id, c);
    names.set(c.username, c);
  }
  return { byId: (id) => ids.get(id), byUsername: (u) => names.get(u) };
}

/** The 'u' merge key of a uniqueid: 'u' + uppercase hex of its UTF-8 bytes (same as SQL CONCAT('u', HEX(x))). */
export function uidKey(uniqueid: string): string {
  return `u${Buffer.from(uniqueid, 'utf8').toString('hex').toUpperCase()}`;
}

const NUMERIC_UID = /^(\d{9,11})\.(\d+)$/;

/**
 * A2Billing adds 1000000000 to the uniqueid for each retry within one call. The integer part of a uniqueid is
 * the channel's creation time (epoch seconds), close to cc_call.starttime, so the number of offsets is
 * round((intpart - starttime) / 1e9). Non-numeric uniqueids (systemname-prefixed) are returned unchanged.
 * Mirrors the SQL expression in db/queries/reconcile.ts.
 */
export function baseUniqueid(uniqueid: string, startEpochSec: number): string {
  const m = NUMERIC_UID.exec(uniqueid);
  if (!m) return uniqueid;
  const int = Number(m[1]);
  const k = Math.max(0, Math.round((int - startEpochSec) / 1e9));
  return `${int - k * 1e9}.${m[2]}`;
}
