// One reconciliation run for one billing day: window → reference data and AMI gaps → three ordered streams
// → sort-merge → pure matcher → results in one transaction + report files. Nothing is written to A2Billing.

import type { Db } from '../db/pool.js';
import { GwError, describeError, isGwError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { buildGapBook } from './gaps.js';
import { createMatcher } from './matcher.js';
import { keyFraction, mergeByKey } from './merge.js';
import { openReportWriter, type ReportFiles, type ReportWriter } from './output.js';
import { buildRateBook } from './rating.js';
import { renderReportHtml } from './report-html.js';
import { loadReference, loadUidOnlyKeys, openSources, type Sources } from './source.js';
import { beginRun, type RunStore } from './store.js';
import { createSummary, type RunSummary } from './summary.js';
import { buildCardBook, DISCREPANCY_CLASSES, type CallResult } from './types.js';
import { billingWindow, toSqlUtc } from './window.js';

export interface ReconcileProgress {
  read: { gw: number; ami: number; cc: number };
  /** Merge keys done so far (about the number of calls). */
  calls: number;
  /** 0..1, from the position of the merge key (call references are uniformly spread). */
  fraction: number;
  elapsedMs: number;
}

export interface ReconcileOptions {
  db: Db;
  /** Billing day YYYY-MM-DD in `timezone`. */
  day: string;
  timezone: string;
  toleranceSec: number;
  /** Report files go here; null = no files. */
  outputDir: string | null;
  /** Rows this far outside the window are read too, to join the legs of calls at the day's edges. Default 900. */
  marginSec?: number;
  /** Server sort buffer per source stream (session sort_buffer_size), MB. Default 64. */
  sortBufferMb?: number;
  /** AMI boxes from configuration: names that should have been connected, and their hosts. */
  boxes?: ReadonlyArray<{ name: string; host: string }>;
  log?: Logger;
  metrics?: Metrics;
  onProgress?: (p: ReconcileProgress) => void;
  now?: () => number;
}

export interface ReconcileResult {
  runId: number;
  summary: RunSummary;
  files: ReportFiles | null;
  /** Milliseconds per phase: reference data, merge (streams + matcher + item writes), commit, report files. */
  phases: { prepareMs: number; mergeMs: number; commitMs: number; filesMs: number };
}

/** Box for a destination like sip:10.0.0.5:5060;transport=udp, when exactly one configured box has that host. */
export function destinationResolver(boxes: ReadonlyArray<{ name: string; host: string }>): (destination: string) => string | undefined {
  const byHost = new Map<string, string | null>();
  for (const b of boxes) byHost.set(b.host.toLowerCase(), byHost.has(b.host.toLowerCase()) ? null : b.name);
  return (destination) => {
    const m = /^sips?:(?:[^@;]*@)?(\[[^\]]+\]|[^:;]+)/i.exec(destination);
    if (!m) return undefined;
    return byHost.get(m[1]!.replace(/^\[|\]$/g, '').toLowerCase()) ?? undefined;
  };
}

export async function runReconcile(o: ReconcileOptions): Promise<ReconcileResult> {
  const now = o.now ?? Date.now;
  const t0 = now();
  const w = billingWindow(o.day, o.timezone);
  const marginMs = (o.marginSec ?? 900) * 1000;
  const readFrom = toSqlUtc(w.startMs - marginMs);
  const readTo = toSqlUtc(w.endMs + marginMs);
  o.log?.info({ day: w.day, timezone: w.timezone, windowStart: w.start, windowEnd: w.end }, 'reconciliation started');

  let store: RunStore | undefined;
  let report: ReportWriter | undefined;
  let sources: Sources | undefined;
  try {
    const ref = await loadReference(o.db, readFrom, readTo);
    const known = new Set<string>((o.boxes ?? []).map((b) => b.name));
    for (const s of ref.sessions) known.add(s.box);
    const gaps = buildGapBook(ref.sessions, w.startMs - marginMs, w.endMs + marginMs, known);

    const uidOnly = await loadUidOnlyKeys(o.db, readFrom, readTo);
    store = await beginRun(o.db, w, toSqlUtc(t0));
    report = o.outputDir ? openReportWriter(o.outputDir, w.day, w.timezone) : undefined;
    const summary = createSummary(w, o.toleranceSec);
    let batch: CallResult[] = [];
    const matcher = createMatcher({
      windowStart: w.start, windowEnd: w.end, toleranceSec: o.toleranceSec,
      cards: buildCardBook(ref.cards), rates: buildRateBook(ref.plans, ref.rates), gaps, uidOnly,
      boxOfDestination: o.boxes?.length ? destinationResolver(o.boxes) : undefined,
    }, (r) => {
      summary.add(r);
      if (r.cls !== 'matched') batch.push(r);
    });
    const flush = async (): Promise<void> => {
      const items = batch;
      batch = [];
      await store!.add(items);
      await report?.add(items);
    };

    const tMerge = now();
    sources = await openSources(o.db, readFrom, readTo, o.sortBufferMb);
    const counts = await mergeByKey(sources, (key, gw, ami, cc) => {
      matcher.group(key, gw, ami, cc);
      return batch.length >= 1000 ? flush() : undefined;
    }, (c, key) => o.onProgress?.({ read: { gw: c.gw, ami: c.ami, cc: c.cc }, calls: c.groups, fraction: keyFraction(key), elapsedMs: now() - t0 }));
    await sources.close();
    sources = undefined;
    matcher.finish();
    await flush();

    const result = summary.build({
      sources: { gwCdr: counts.gw, amiCdr: counts.ami, ccCall: counts.cc },
      outOfWindow: matcher.stats.outOfWindow, durationMs: now() - t0, gaps: gaps.gaps,
    });
    o.onProgress?.({ read: { gw: counts.gw, ami: counts.ami, cc: counts.cc }, calls: result.calls, fraction: 1, elapsedMs: now() - t0 });
    const tCommit = now();
    const stored = { ...result, accounts: result.accounts.slice(0, 500) };
    await store.commit(toSqlUtc(now()), result.calls, JSON.stringify(stored));
    const runId = store.runId;
    store = undefined;
    const tFiles = now();
    const files = report ? await report.finish(result, renderReportHtml(result, summary.samples, { generatedAt: new Date(now()).toISOString() })) : null;
    report = undefined;
    const phases = { prepareMs: tMerge - t0, mergeMs: tCommit - tMerge, commitMs: tFiles - tCommit, filesMs: now() - tFiles };

    o.metrics?.reconcileLastRunTimestamp.set(now() / 1000);
    o.metrics?.reconcileLastRunSuccess.set(1);
    o.metrics?.reconcileLastRunDurationSeconds.set(result.durationMs / 1000);
    for (const c of DISCREPANCY_CLASSES) o.metrics?.reconcileDiscrepancies.set({ class: c }, result.classes[c].count);
    o.log?.info({
      day: w.day, timezone: w.timezone, runId, calls: result.calls, discrepancies: result.discrepancies, amountAtRisk: result.amountAtRisk,
      classes: Object.fromEntries(DISCREPANCY_CLASSES.map((c) => [c, result.classes[c].count])), durationMs: result.durationMs,
      joinedByUniqueid: matcher.stats.joinedByUniqueid, pendingPeak: matcher.stats.pendingPeak, phases,
    }, 'reconciliation done');
    return { runId, summary: result, files, phases };
  } catch (e) {
    await sources?.close().catch(() => undefined);
    await store?.rollback().catch(() => undefined);
    await report?.abort().catch(() => undefined);
    o.metrics?.reconcileLastRunTimestamp.set(now() / 1000);
    o.metrics?.reconcileLastRunSuccess.set(0);
    o.log?.error({ day: w.day, timezone: w.timezone, err: describeError(e) }, 'reconciliation failed');
    if (isGwError(e)) throw e;
    throw new GwError('GW_ERR_RECONCILE', `${w.day} ${w.timezone}: ${describeError(e)}`, { cause: e });
  }
}
