// Accounting wired to MySQL: three batched journaled writers (gw_acc, gw_missed_calls, gw_cdr) and the CallEvent consumer.
import type { Config } from '../config/schema.js';
import type { Db } from '../db/pool.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { openBatchWriter, type BatchWriter, type WriterStats } from '../store/index.js';
import { createAccounting, type Accounting, type AccountingOptions } from './accounting.js';
import { accTable, cdrTable, missedTable, type AccRecord, type CdrRecord } from './records.js';

export { createAccounting, type Accounting, type AccountingOptions, type AccountingStats, type AccSinks, type RecordSink } from './accounting.js';
export { accTable, cdrTable, missedTable, durationSeconds, type AccRecord, type CdrRecord, type CdrEndReason, type DurationRounding } from './records.js';

export interface AccountingService extends Accounting {
  readonly writers: { acc: BatchWriter<AccRecord>; missed: BatchWriter<AccRecord>; cdr: BatchWriter<CdrRecord> };
  writerStats(): WriterStats[];
  /** Stops the reaper, then closes the writers (commit what MySQL takes within timeoutMs, journal the rest). */
  close(opts?: { timeoutMs?: number }): Promise<void>;
}

export interface OpenAccountingOptions extends Omit<AccountingOptions, 'sinks' | 'config'> {
  config: Pick<Config, 'acc' | 'dialog'>;
  db: Db;
}

/**
 * Opens the three writers under config.acc.journalDir (acc/, missed/, cdr/; journals left by a crash are replayed
 * first) and returns accounting fed by the proxy's onCallEvent. Throws GW_ERR_JOURNAL when the journal directory
 * is unusable; MySQL down at start is fine.
 */
export async function openAccounting(opts: OpenAccountingOptions): Promise<AccountingService> {
  const a = opts.config.acc;
  const common = {
    db: opts.db, journalDir: a.journalDir, log: opts.log, metrics: opts.metrics, batchSize: a.batchSize,
    flushIntervalMs: a.flushIntervalMs, fsync: a.fsync, writeTimeoutMs: a.writeTimeoutMs, maxQueue: a.maxQueue,
  };
  const opened: Array<BatchWriter<never>> = [];
  try {
    const acc = await openBatchWriter<AccRecord>({ ...common, name: 'acc', spec: accTable });
    opened.push(acc);
    const missed = await openBatchWriter<AccRecord>({ ...common, name: 'missed', spec: missedTable });
    opened.push(missed);
    const cdr = await openBatchWriter<CdrRecord>({ ...common, name: 'cdr', spec: cdrTable });
    opened.push(cdr);
    const accounting = createAccounting({ ...opts, config: opts.config, sinks: { acc, missed, cdr } });
    const writers = { acc, missed, cdr };
    return {
      writers,
      onCallEvent: (ev) => accounting.onCallEvent(ev),
      reap: (now) => accounting.reap(now),
      stats: () => accounting.stats(),
      writerStats: () => [acc.stats(), missed.stats(), cdr.stats()],
      async close(o?: { timeoutMs?: number }) {
        await accounting.close();
        await Promise.all([acc.close(o), missed.close(o), cdr.close(o)]);
      },
    };
  } catch (e) {
    await Promise.all(opened.map((w) => w.close({ timeoutMs: 1000 }).catch(() => undefined)));
    throw e;
  }
}
