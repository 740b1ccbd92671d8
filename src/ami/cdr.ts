// CdrRecord: one Asterisk CDR, from an AMI `Cdr` event, a Master.csv line or a row of the box's `cdr` table.
// Times are converted from the box's local time to UTC epoch ms with the box's ZoneClock.
import { createHash } from 'node:crypto';
import { GwError } from '../errors.js';
import type { AmiMessage } from './protocol.js';
import type { ZoneClock } from './time.js';

export type CdrOrigin = 'ami' | 'backfill';

export interface CdrRecord {
  box: string;
  uniqueId: string;
  /**
   * cdr_manager's `Sequence` (mapping) when the box sends it. Without it, a negative number derived from the
   * record's own fields (see syntheticSequence), so several CDRs of one call stay apart and a replay is a no-op.
   */
  sequence: number;
  linkedId: string;
  accountCode: string;
  source: string;
  destination: string;
  context: string;
  callerId: string;
  channel: string;
  dstChannel: string;
  lastApp: string;
  lastData: string;
  /** UTC epoch ms, null when the box left the time empty (e.g. AnswerTime of an unanswered call). */
  start: number | null;
  answer: number | null;
  end: number | null;
  duration: number;
  billableSeconds: number;
  disposition: string;
  amaFlags: string;
  /** The dialplan puts the SIP Call-ID here. */
  userField: string;
  /** The SIPCallID mapping when present, else userField. */
  sipCallId: string;
  origin: CdrOrigin;
}

/**
 * A stable stand-in for a missing Sequence: negative (real Sequence values are >= 0, so they never collide), from
 * the fields that tell two CDRs of one call apart. The same CDR read from AMI or from Master.csv gets the same value.
 */
export function syntheticSequence(r: Pick<CdrRecord, 'start' | 'end' | 'dstChannel' | 'lastApp' | 'lastData' | 'disposition'>): number {
  const h = createHash('sha256')
    .update(`${r.start ?? ''}|${r.end ?? ''}|${r.dstChannel}|${r.lastApp}|${r.lastData}|${r.disposition}`)
    .digest();
  return -(1 + (h.readUInt32BE(0) % 2_000_000_000));
}

function nonNegInt(v: string | undefined, field: string): number {
  const s = (v ?? '').trim();
  if (s === '') return 0;
  if (!/^\d{1,10}$/.test(s)) throw new GwError('GW_ERR_AMI_PROTOCOL', `${field} "${s.slice(0, 20)}" is not a whole number`);
  return Number(s);
}

interface RawCdr {
  uniqueId: string; sequence: string | undefined; linkedId: string; accountCode: string; source: string;
  destination: string; context: string; callerId: string; channel: string; dstChannel: string; lastApp: string;
  lastData: string; start: string; answer: string; end: string; duration: string; billableSeconds: string;
  disposition: string; amaFlags: string; userField: string; sipCallId: string | undefined;
}

function build(box: string, raw: RawCdr, clock: ZoneClock, origin: CdrOrigin): CdrRecord {
  const uniqueId = raw.uniqueId.trim();
  if (uniqueId === '') throw new GwError('GW_ERR_AMI_PROTOCOL', 'CDR without UniqueID');
  const rec: CdrRecord = {
    box, uniqueId, sequence: 0, linkedId: raw.linkedId, accountCode: raw.accountCode, source: raw.source,
    destination: raw.destination, context: raw.context, callerId: raw.callerId, channel: raw.channel,
    dstChannel: raw.dstChannel, lastApp: raw.lastApp, lastData: raw.lastData,
    start: clock.toUtcMs(raw.start), answer: clock.toUtcMs(raw.answer), end: clock.toUtcMs(raw.end),
    duration: nonNegInt(raw.duration, 'Duration'), billableSeconds: nonNegInt(raw.billableSeconds, 'BillableSeconds'),
    disposition: raw.disposition, amaFlags: raw.amaFlags, userField: raw.userField,
    sipCallId: raw.sipCallId !== undefined && raw.sipCallId !== '' ? raw.sipCallId : raw.userField,
    origin,
  };
  const seq = raw.sequence?.trim();
  rec.sequence = seq !== undefined && seq !== '' ? nonNegInt(seq, 'Sequence') : syntheticSequence(rec);
  return rec;
}

/** An AMI `Cdr` event → CdrRecord. Keys are read case-insensitively. Throws GW_ERR_AMI_PROTOCOL on bad values. */
export function cdrFromEvent(box: string, msg: AmiMessage, clock: ZoneClock): CdrRecord {
  const g = (k: string): string => msg.get(k) ?? '';
  return build(box, {
    uniqueId: g('UniqueID'), sequence: msg.get('Sequence'), linkedId: g('LinkedID'), accountCode: g('AccountCode'),
    source: g('Source'), destination: g('Destination'), context: g('DestinationContext'), callerId: g('CallerID'),
    channel: g('Channel'), dstChannel: g('DestinationChannel'), lastApp: g('LastApplication'), lastData: g('LastData'),
    start: g('StartTime'), answer: g('AnswerTime'), end: g('EndTime'), duration: g('Duration'),
    billableSeconds: g('BillableSeconds'), disposition: g('Disposition'), amaFlags: g('AMAFlags'),
    userField: g('UserField'), sipCallId: msg.get('SIPCallID'),
  }, clock, 'ami');
}

/**
 * Master.csv (cdr_csv) column order: accountcode, src, dst, dcontext, clid, channel, dstchannel, lastapp, lastdata,
 * start, answer, end, duration, billsec, disposition, amaflags, then uniqueid and userfield (loguniqueid,
 * loguserfield, both on by default), then peeraccount, linkedid, sequence when `newcdrcolumns = yes`.
 */
export const MASTER_CSV_COLUMNS = [
  'accountcode', 'src', 'dst', 'dcontext', 'clid', 'channel', 'dstchannel', 'lastapp', 'lastdata', 'start', 'answer',
  'end', 'duration', 'billsec', 'disposition', 'amaflags', 'uniqueid', 'userfield', 'peeraccount', 'linkedid', 'sequence',
] as const;

/** Splits one CSV record as cdr_csv writes it (every string quoted, `"` doubled inside). */
export function parseCsvLine(line: string): string[] {
  const out: string[] = [];
  let i = 0;
  const n = line.length;
  for (;;) {
    let field = '';
    if (line[i] === '"') {
      i++;
      for (;;) {
        const q = line.indexOf('"', i);
        if (q < 0) throw new GwError('GW_ERR_AMI_PROTOCOL', 'unterminated quoted CSV field');
        field += line.slice(i, q);
        if (line[q + 1] === '"') { field += '"'; i = q + 2; continue; }
        i = q + 1;
        break;
      }
      if (i < n && line[i] !== ',') throw new GwError('GW_ERR_AMI_PROTOCOL', `unexpected "${line[i]}" after a quoted CSV field`);
    } else {
      const c = line.indexOf(',', i);
      field = c < 0 ? line.slice(i) : line.slice(i, c);
      i = c < 0 ? n : c;
    }
    out.push(field);
    if (i >= n) return out;
    i++; // the comma
  }
}

/** One Master.csv line → CdrRecord (origin 'backfill'). Needs at least the uniqueid column (17 columns). */
export function cdrFromCsv(box: string, line: string, clock: ZoneClock): CdrRecord {
  const f = parseCsvLine(line);
  if (f.length < 17) {
    throw new GwError('GW_ERR_AMI_PROTOCOL', `Master.csv line has ${f.length} columns; at least 17 (up to uniqueid) are needed — enable loguniqueid in cdr_csv.conf`);
  }
  const c = (name: (typeof MASTER_CSV_COLUMNS)[number]): string => f[MASTER_CSV_COLUMNS.indexOf(name)] ?? '';
  return build(box, {
    accountCode: c('accountcode'), source: c('src'), destination: c('dst'), context: c('dcontext'), callerId: c('clid'),
    channel: c('channel'), dstChannel: c('dstchannel'), lastApp: c('lastapp'), lastData: c('lastdata'), start: c('start'),
    answer: c('answer'), end: c('end'), duration: c('duration'), billableSeconds: c('billsec'), disposition: c('disposition'),
    amaFlags: c('amaflags'), uniqueId: c('uniqueid'), userField: c('userfield'), linkedId: c('linkedid'),
    sequence: f.length >= MASTER_CSV_COLUMNS.length ? c('sequence') : undefined, sipCallId: undefined,
  }, clock, 'backfill');
}

/** A row of a standard Asterisk `cdr` table (cdr_mysql / cdr_adaptive_odbc column names), DATETIMEs as strings. */
export interface CdrTableRow {
  calldate: string; clid?: string | null; src?: string | null; dst?: string | null; dcontext?: string | null;
  channel?: string | null; dstchannel?: string | null; lastapp?: string | null; lastdata?: string | null;
  duration?: number | string | null; billsec?: number | string | null; disposition?: string | null;
  amaflags?: number | string | null; accountcode?: string | null; uniqueid?: string | null;
  userfield?: string | null; linkedid?: string | null; sequence?: number | string | null;
}

/** AMA flags as numbers (cdr_mysql writes the number) → the names the Cdr event carries. */
const AMA_NAMES: Record<string, string> = { '1': 'OMIT', '2': 'BILLING', '3': 'DOCUMENTATION' };

/**
 * A `cdr` table row → CdrRecord. The table has only `calldate` (the start): the end is start + duration and the
 * answer end - billsec when billsec > 0, as Asterisk computes them.
 */
export function cdrFromTableRow(box: string, row: CdrTableRow, clock: ZoneClock): CdrRecord {
  const s = (v: unknown): string => (v === null || v === undefined ? '' : String(v));
  const rec = build(box, {
    uniqueId: s(row.uniqueid), sequence: row.sequence === null || row.sequence === undefined ? undefined : s(row.sequence),
    linkedId: s(row.linkedid), accountCode: s(row.accountcode), source: s(row.src), destination: s(row.dst),
    context: s(row.dcontext), callerId: s(row.clid), channel: s(row.channel), dstChannel: s(row.dstchannel),
    lastApp: s(row.lastapp), lastData: s(row.lastdata), start: s(row.calldate), answer: '', end: '',
    duration: s(row.duration), billableSeconds: s(row.billsec), disposition: s(row.disposition),
    amaFlags: AMA_NAMES[s(row.amaflags)] ?? s(row.amaflags), userField: s(row.userfield), sipCallId: undefined,
  }, clock, 'backfill');
  if (rec.start !== null) {
    rec.end = rec.start + rec.duration * 1000;
    rec.answer = rec.billableSeconds > 0 ? rec.end - rec.billableSeconds * 1000 : null;
    if (row.sequence === null || row.sequence === undefined) rec.sequence = syntheticSequence(rec);
  }
  return rec;
}
