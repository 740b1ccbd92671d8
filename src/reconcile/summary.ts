// Aggregates classified calls into the run summary: counts and money at risk per class, per account and
// per hour of the billing day, plus a bounded sample of discrepancies for the HTML report. Pure.

import type { Interval } from './gaps.js';
import { round5 } from './rating.js';
import { CALL_CLASSES, DISCREPANCY_CLASSES, type CallClass, type CallResult, type DiscrepancyClass } from './types.js';
import { toSqlUtc, type BillingWindow } from './window.js';

export interface ClassTotals {
  count: number;
  amount: number;
}

export interface AccountTotals {
  account: string;
  count: number;
  amount: number;
  classes: Partial<Record<DiscrepancyClass, ClassTotals>>;
}

export interface RunSummary {
  day: string;
  timezone: string;
  windowStart: string;
  windowEnd: string;
  toleranceSec: number;
  /** Calls of the billing day (each in exactly one class). */
  calls: number;
  discrepancies: number;
  amountAtRisk: number;
  classes: Record<CallClass, ClassTotals>;
  /** Calls per class per hour since local midnight (23/24/25 buckets). */
  hourly: Record<CallClass, number[]>;
  /** Accounts with discrepancies, most money at risk first (the stored summary keeps the top ones). */
  accounts: AccountTotals[];
  accountsTotal: number;
  amiGaps: Array<{ box: string; from: string; to: string; seconds: number }>;
  sources: { gwCdr: number; amiCdr: number; ccCall: number };
  /** Groups read within the margin that belong to the neighbouring days. */
  outOfWindow: number;
  durationMs: number;
}

export interface SummaryBuilder {
  add(r: CallResult): void;
  /** Up to `samplePerClass` discrepancies per class, in the order found. */
  readonly samples: ReadonlyMap<DiscrepancyClass, CallResult[]>;
  build(extra: { sources: RunSummary['sources']; outOfWindow: number; durationMs: number; gaps: ReadonlyMap<string, readonly Interval[]>; topAccounts?: number }): RunSummary;
}

const d2 = (s: string, i: number): number => (s.charCodeAt(i) - 48) * 10 + s.charCodeAt(i + 1) - 48;
/** 'YYYY-MM-DD HH:MM:SS...' UTC → epoch ms (seconds resolution), without allocating. */
export function utcMs(s: string): number {
  return Date.UTC(d2(s, 0) * 100 + d2(s, 2), d2(s, 5) - 1, d2(s, 8), d2(s, 11), d2(s, 14), d2(s, 17));
}

export function createSummary(w: BillingWindow, toleranceSec: number, samplePerClass = 50): SummaryBuilder {
  const hours = Math.max(1, Math.ceil((w.endMs - w.startMs) / 3600_000));
  const classes = Object.fromEntries(CALL_CLASSES.map((c) => [c, { count: 0, amount: 0 }])) as Record<CallClass, ClassTotals>;
  const hourly = Object.fromEntries(CALL_CLASSES.map((c) => [c, new Array<number>(hours).fill(0)])) as Record<CallClass, number[]>;
  const accounts = new Map<string, AccountTotals>();
  const samples = new Map<DiscrepancyClass, CallResult[]>(DISCREPANCY_CLASSES.map((c) => [c, []]));
  let calls = 0;

  return {
    samples,
    add(r) {
      calls++;
      const t = classes[r.cls];
      t.count++;
      t.amount += r.amount;
      const ms = utcMs(r.start);
      const h = Math.min(hours - 1, Math.max(0, Math.floor((ms - w.startMs) / 3600_000)));
      hourly[r.cls][h]! += 1;
      if (r.cls === 'matched') return;
      let a = accounts.get(r.account);
      if (!a) accounts.set(r.account, (a = { account: r.account, count: 0, amount: 0, classes: {} }));
      a.count++;
      a.amount += r.amount;
      const ac = (a.classes[r.cls] ??= { count: 0, amount: 0 });
      ac.count++;
      ac.amount += r.amount;
      const s = samples.get(r.cls)!;
      if (s.length < samplePerClass) s.push(r);
    },
    build(extra) {
      let discrepancies = 0;
      let amountAtRisk = 0;
      for (const c of CALL_CLASSES) {
        classes[c].amount = round5(classes[c].amount);
        if (c !== 'matched') {
          discrepancies += classes[c].count;
          amountAtRisk += classes[c].amount;
        }
      }
      const list = [...accounts.values()].map((a) => {
        a.amount = round5(a.amount);
        for (const v of Object.values(a.classes)) v.amount = round5(v.amount);
        return a;
      });
      list.sort((a, b) => b.amount - a.amount || b.count - a.count || (a.account < b.account ? -1 : 1));
      const amiGaps: RunSummary['amiGaps'] = [];
      for (const [box, ivs] of extra.gaps) {
        for (const iv of ivs) {
          const from = Math.max(iv.from, w.startMs);
          const to = Math.min(iv.to, w.endMs);
          if (to > from) amiGaps.push({ box, from: toSqlUtc(from), to: toSqlUtc(to), seconds: Math.round((to - from) / 1000) });
        }
      }
      return {
        day: w.day, timezone: w.timezone, windowStart: w.start, windowEnd: w.end, toleranceSec,
        calls, discrepancies, amountAtRisk: round5(amountAtRisk), classes, hourly,
        accounts: extra.topAccounts !== undefined ? list.slice(0, extra.topAccounts) : list,
        accountsTotal: list.length,
        amiGaps, sources: extra.sources, outOfWindow: extra.outOfWindow, durationMs: extra.durationMs,
      };
    },
  };
}
