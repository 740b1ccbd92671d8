import { GwError } from '../errors.js';
import type { Db } from './pool.js';
import { LOCK_GET, LOCK_RELEASE } from './queries/lock.js';

/**
 * Runs fn while holding the MySQL named lock `name` (GET_LOCK), so one instance in a cluster does the job.
 * The lock lives on one dedicated connection for the whole run; it is freed if this process dies.
 */
export async function withLock<T>(db: Db, name: string, timeoutSec: number, fn: () => Promise<T>): Promise<T> {
  const conn = await db.getConnection();
  try {
    const [rows] = await conn.query(LOCK_GET, [name, timeoutSec]);
    const got = (rows as Array<{ got: number | null }>)[0]?.got;
    if (got !== 1) throw new GwError('GW_ERR_LOCK_BUSY', name);
    try {
      return await fn();
    } finally {
      await conn.query(LOCK_RELEASE, [name]).catch(() => undefined);
    }
  } finally {
    conn.release();
  }
}
