// Batched gw_dialog writes: the latest operation per dialog waits in memory and goes out in one multi-row
// upsert and one DELETE every dialog.dbFlushMs. A failed batch is kept (a newer operation on the same dialog
// replaces it) and retried with backoff; the state file holds the truth meanwhile. Never blocks a call.
import type { Db } from '../db/pool.js';
import * as Q from '../db/queries/dialog.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { DLG_STATE, sqlTime, type DialogRecord } from './record.js';

type Op = { op: 'up'; rec: DialogRecord; json: string | undefined } | { op: 'del'; key: string; updated: number };

const CHUNK = 200;
const MAX_BACKOFF_MS = 30_000;

function rowParams(rec: DialogRecord, json: string | undefined): unknown[] {
  // Column widths: the full values stay in `data`; Call-ID and account code are attacker-influenced.
  return [rec.key, rec.info.callId.slice(0, 255), DLG_STATE.confirmed, rec.info.accountcode.slice(0, 20),
    sqlTime(rec.info.createdAt || rec.updated), sqlTime(rec.updated), sqlTime(rec.expiresAt), json ?? JSON.stringify(rec)];
}

/** An error the server answered (bad data, constraint) rather than a lost connection: retrying will not help. */
function isServerError(e: unknown): boolean {
  const err = e as { sqlState?: string; fatal?: boolean };
  return typeof err.sqlState === 'string' && err.fatal !== true;
}

export interface DialogDbWriterOptions {
  db: Db;
  log: Logger;
  metrics?: Metrics;
  flushMs: number;
  /** Deletions the database has confirmed (their tombstones may go). */
  onDeleted?: (keys: string[]) => void;
}

export class DialogDbWriter {
  private pending = new Map<string, Op>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private failures = 0;
  private closed = false;

  constructor(private readonly opts: DialogDbWriterOptions) {}

  get depth(): number {
    return this.pending.size;
  }

  /** `json`: JSON.stringify(rec) as of this call, when the caller has it (the state file line has the same). */
  upsert(rec: DialogRecord, json?: string): void {
    this.put(rec.key, { op: 'up', rec, json });
  }

  delete(key: string, updated: number): void {
    this.put(key, { op: 'del', key, updated });
  }

  /** Rows of one state (confirmed dialogs at start-up), data parsed by the caller. */
  async load(state: number, timeoutMs: number): Promise<Array<{ dlg_key: string; data: string }>> {
    const [rows] = await this.opts.db.query({ sql: Q.SELECT_DIALOGS_BY_STATE, timeout: timeoutMs }, [state]);
    return rows as Array<{ dlg_key: string; data: string }>;
  }

  /** Writes everything pending now (shutdown, tests). Resolves even when the database is down. */
  async flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.running) await this.running;
    if (this.pending.size > 0) await this.run();
  }

  async close(): Promise<void> {
    await this.flush();
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private put(key: string, op: Op): void {
    if (this.closed) return;
    this.pending.set(key, op);
    this.opts.metrics?.dbWriteQueueDepth.set({ writer: 'dialog' }, this.pending.size);
    this.schedule(this.opts.flushMs);
  }

  private schedule(ms: number): void {
    if (this.timer || this.running || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.run();
    }, ms);
    this.timer.unref();
  }

  private run(): Promise<void> {
    if (this.running) return this.running;
    this.running = this.batch().finally(() => {
      this.running = undefined;
      if (this.pending.size > 0) {
        const backoff = this.failures === 0 ? this.opts.flushMs : Math.min(MAX_BACKOFF_MS, this.opts.flushMs * 2 ** this.failures);
        this.schedule(backoff);
      }
    });
    return this.running;
  }

  private async batch(): Promise<void> {
    const ops = [...this.pending.values()];
    this.pending = new Map();
    const ups = ops.filter((o): o is Extract<Op, { op: 'up' }> => o.op === 'up');
    const dels = ops.filter((o): o is Extract<Op, { op: 'del' }> => o.op === 'del');
    const done: string[] = [];
    try {
      for (let i = 0; i < ups.length; i += CHUNK) {
        const chunk = ups.slice(i, i + CHUNK);
        try {
          await this.opts.db.query(Q.upsertDialogs(chunk.length), chunk.flatMap(({ rec, json }) => rowParams(rec, json)));
        } catch (e) {
          if (!isServerError(e)) throw e;
          // The server refused the batch (a row it cannot store): write row by row so one bad dialog cannot
          // block the others forever; the refused one stays in the state file only.
          for (const { rec, json } of chunk) {
            try {
              await this.opts.db.query(Q.upsertDialogs(1), rowParams(rec, json));
            } catch (e1) {
              if (!isServerError(e1)) throw e1;
              this.opts.log.error({ callId: rec.info.callId.slice(0, 128), err: (e1 as Error).message }, 'gw_dialog refused a dialog; kept in the state file only');
            }
          }
        }
        this.opts.metrics?.dbWriteRows.inc({ writer: 'dialog' }, chunk.length);
      }
      for (let i = 0; i < dels.length; i += CHUNK) {
        const keys = dels.slice(i, i + CHUNK).map((d) => d.key);
        await this.opts.db.query(Q.DELETE_DIALOGS, [keys]);
        this.opts.metrics?.dbWriteRows.inc({ writer: 'dialog' }, keys.length);
        done.push(...keys);
      }
      this.opts.metrics?.dbWriteBatches.inc({ writer: 'dialog', result: 'ok' });
      if (this.failures > 0) this.opts.log.info({ after: this.failures }, 'gw_dialog writes resumed');
      this.failures = 0;
    } catch (e) {
      this.opts.metrics?.dbWriteBatches.inc({ writer: 'dialog', result: 'error' });
      if (this.failures === 0) this.opts.log.warn({ err: (e as Error).message, queued: ops.length }, 'gw_dialog write failed; the state file holds the dialogs, retrying');
      this.failures++;
      // Put back what did not land, unless a newer operation on the same dialog arrived meanwhile.
      const landed = new Set(done);
      for (const op of ops) {
        const key = op.op === 'up' ? op.rec.key : op.key;
        if (landed.has(key) || this.pending.has(key)) continue;
        this.pending.set(key, op);
      }
    } finally {
      this.opts.metrics?.dbWriteQueueDepth.set({ writer: 'dialog' }, this.pending.size);
    }
    if (done.length > 0) this.opts.onDeleted?.(done);
  }
}
