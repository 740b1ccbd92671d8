// Builds source rows the way the SQL in src/db/queries/reconcile.ts keys them, and runs the pure pipeline
// (sort-merge + matcher) in memory.
import { callRef } from '../../../src/callref.js';
import { buildGapBook, type AmiSessionRow } from '../../../src/reconcile/gaps.js';
import { createMatcher, type Matcher } from '../../../src/reconcile/matcher.js';
import { arrayCursor, mergeByKey } from '../../../src/reconcile/merge.js';
import { buildRateBook, type RateCard } from '../../../src/reconcile/rating.js';
import { baseUniqueid, buildCardBook, uidKey, type AmiCdrRow, type CallResult, type CcCallRow, type GwCdrRow } from '../../../src/reconcile/types.js';
import { billingWindow, parseSqlUtc } from '../../../src/reconcile/window.js';

export const ALICE = { id: 1, username: '4242424242', tariff: 1 };
export const BOB = { id: 2, username: '5555000002', tariff: 1 };
export const RATES: RateCard[] = [
  { plan: 1, prefix: '1', rate: 0.02, initblock: 60, billingblock: 60, connect: 0 },
  { plan: 1, prefix: '1999', rate: 0.06, initblock: 6, billingblock: 6, connect: 0 },
  { plan: 1, prefix: '44', rate: 0.05, initblock: 30, billingblock: 6, connect: 0 },
  { plan: 1, prefix: '4420', rate: 0.03, initblock: 30, billingblock: 6, connect: 0 },
  { plan: 1, prefix: '33', rate: 0.10, initblock: 60, billingblock: 60, connect: 0.05 },
];

export function gw(callid: string, o: Partial<GwCdrRow> & { at?: string; dur?: number; answered?: boolean } = {}): GwCdrRow {
  const created = o.at ?? '2026-11-21 10:00:00.000';
  const t = parseSqlUtc(created);
  const dur = o.dur ?? 60;
  const answered = o.answered ?? true;
  const { answered: _a, at: _t, dur: _d, ...rest } = o;
  return {
    k: callRef(callid), callid, accountcode: ALICE.username, created, ans: answered ? 1 : 0,
    endMs: t + 2000 + (answered ? dur * 1000 : 0),
    durationSec: answered ? dur : 0, sipCode: answered ? 200 : 486, endReason: answered ? 'bye-caller' : 'failed',
    dstUser: '442079460000', destination: 'sip:10.0.0.5:5060;transport=udp', ...rest,
  };
}

export function ami(uniqueid: string, o: Partial<AmiCdrRow> & { at?: string } = {}): AmiCdrRow {
  const start = o.at ?? '2026-11-21 10:00:00';
  const callid = o.callid ?? '';
  return {
    k: callid ? callRef(callid) : uidKey(uniqueid), box: 'box1', uniqueid, accountcode: ALICE.username, start,
    billsec: 60, disposition: 'ANSWERED', callid, dst: '442079460000', ...o,
  } as AmiCdrRow;
}

export function cc(id: number, uniqueid: string, o: Partial<CcCallRow> & { custom1?: string; at?: string } = {}): CcCallRow {
  const start = o.at ?? '2026-11-21 10:00:02';
  const base = baseUniqueid(uniqueid, parseSqlUtc(start) / 1000);
  const custom1 = o.custom1 ?? '';
  return {
    k: /^[0-9a-f]{20}$/.test(custom1) ? custom1 : uidKey(base), baseUid: base, id, cardId: ALICE.id, start,
    sessiontime: 60, sessionbill: 0.03, terminatecauseid: 1, calledstation: '442079460000', ...o,
  } as CcCallRow;
}

/** A uniqueid as Asterisk makes it for a channel created at `at` (UTC). */
export function uid(at: string, seq: number): string {
  return `${Math.floor(parseSqlUtc(at) / 1000)}.${seq}`;
}

export function retryUid(u: string, n: number): string {
  const [i, f] = u.split('.');
  return `${Number(i) + n * 1e9}.${f}`;
}

const byKey = <T extends { k: string }>(xs: T[]): T[] => [...xs].sort((a, b) => (a.k < b.k ? -1 : a.k > b.k ? 1 : 0));

export async function reconcileRows(rows: { gw?: GwCdrRow[]; ami?: AmiCdrRow[]; cc?: CcCallRow[] }, opts: { sessions?: AmiSessionRow[]; boxes?: string[]; day?: string; tz?: string; tolerance?: number; uidOnly?: boolean } = {}): Promise<{ results: CallResult[]; matcher: Matcher }> {
  const w = billingWindow(opts.day ?? '2026-11-21', opts.tz ?? 'UTC');
  const results: CallResult[] = [];
  const margin = 900_000;
  const gaps = buildGapBook(opts.sessions ?? [], w.startMs - margin, w.endMs + margin, opts.boxes ?? (opts.sessions ?? []).map((s) => s.box));
  // What the job pre-reads: the uniqueid keys of rows without a call reference, per source.
  const uidOnly = opts.uidOnly ? {
    ami: new Set((rows.ami ?? []).filter((r) => r.k.startsWith('u')).map((r) => r.k)),
    cc: new Set((rows.cc ?? []).filter((r) => r.k.startsWith('u')).map((r) => r.k)),
  } : undefined;
  const matcher = createMatcher({
    windowStart: w.start, windowEnd: w.end, toleranceSec: opts.tolerance ?? 2,
    cards: buildCardBook([ALICE, BOB]), rates: buildRateBook(new Map([[1, [1]]]), RATES), gaps, uidOnly,
  }, (r) => results.push(r));
  await mergeByKey({ gw: arrayCursor(byKey(rows.gw ?? [])), ami: arrayCursor(byKey(rows.ami ?? [])), cc: arrayCursor(byKey(rows.cc ?? [])) },
    (k, g, a, c) => matcher.group(k, g, a, c));
  matcher.finish();
  return { results, matcher };
}

export const classOf = (results: CallResult[], callid: string): string | undefined => results.find((r) => r.callid === callid)?.cls;
