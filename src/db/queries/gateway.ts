/** Liveness of the pool (health check, start-up check). */
export const PING = 'SELECT 1';

export const LAST_RECONCILE_RUN = `SELECT id, billing_day, timezone, started_at, finished_at, status, calls_total, summary
  FROM gw_reconcile_run ORDER BY started_at DESC LIMIT 1`;
