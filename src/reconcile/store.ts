// Results in the database, in ONE transaction per run: the previous run of the same day and timezone (and its
// items) is deleted, the run row inserted, items appended in batches while the merge runs, and the summary
// written last. A failed run rolls back and leaves the previous result untouched.

import type { Db, DbConn } from '../db/pool.js';
import * as Q from '../db/queries/reconcile.js';
import { releaseClean } from './source.js';
import type { CallResult } from './types.js';
import type { BillingWindow } from './window.js';

export interface RunStore {
  readonly runId: number;
  add(items: readonly CallResult[]): Promise<void>;
  commit(finishedAt: string, calls: number, summaryJson: string): Promise<void>;
  rollback(): Promise<void>;
}

const cut = (s: string, n: number): string => (s.length > n ? s.slice(0, n) : s);

export async function beginRun(db: Db, w: BillingWindow, startedAt: string, batchSize = 1000): Promise<RunStore> {
  const conn: DbConn = await db.getConnection();
  let done = false;
  try {
    await conn.query(Q.SET_UTC);
    await conn.beginTransaction();
    const [prev] = await conn.query(Q.RUN_FIND_FOR_UPDATE, [w.day, w.timezone]);
    for (const r of prev as Array<{ id: number }>) {
      await conn.query(Q.ITEMS_DELETE, [r.id]);
      await conn.query(Q.RUN_DELETE, [r.id]);
    }
    const [ins] = await conn.query(Q.RUN_INSERT, [w.day, w.timezone, w.start, w.end, startedAt]);
    const runId = Number((ins as { insertId: number }).insertId);
    const insertBatch = async (items: readonly CallResult[]): Promise<void> => {
      const params: unknown[] = [];
      for (const r of items) {
        params.push(runId, r.cls, cut(r.callid, 255), cut(r.callref, 20), cut(r.box, 64), cut(r.uniqueid, 40), r.ccCallId, cut(r.accountGw, 20),
          cut(r.accountBilled, 50), r.cardId, r.gwDuration, r.amiDuration, r.billedDuration, r.amount, cut(r.detail, 512));
      }
      await conn.query(Q.itemsInsert(items.length), params);
    };
    const finishConn = async (fn: () => Promise<unknown>): Promise<void> => {
      if (done) return;
      done = true;
      try {
        await fn();
      } finally {
        await releaseClean(conn);
      }
    };
    return {
      runId,
      async add(items) {
        for (let i = 0; i < items.length; i += batchSize) await insertBatch(items.slice(i, i + batchSize));
      },
      async commit(finishedAt, calls, summaryJson) {
        await finishConn(async () => {
          try {
            await conn.query(Q.RUN_FINISH, [finishedAt, calls, summaryJson, runId]);
            await conn.commit();
          } catch (e) {
            await conn.rollback().catch(() => undefined);
            throw e;
          }
        });
      },
      async rollback() {
        await finishConn(() => conn.rollback().catch(() => undefined));
      },
    };
  } catch (e) {
    await conn.rollback().catch(() => undefined);
    await releaseClean(conn);
    throw e;
  }
}
