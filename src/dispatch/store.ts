// Loads gw_dispatcher into the Dispatcher, on demand (mgmt /reload/dispatcher) and optionally every
// dispatch.reloadSec. A failed reload keeps the current sets: calls never lose their destinations because
// the database hiccuped.
import type { Pool } from 'mysql2/promise';
import type { RowDataPacket } from 'mysql2';
import { SELECT_DISPATCHER, UPDATE_DISPATCHER_STATE } from '../db/queries/dispatch.js';
import { GwError, describeError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { type DestState, type DispatcherRow, STATE_CODES } from './destination.js';
import type { Dispatcher, LoadSummary } from './dispatcher.js';

/** The part of a mysql2/promise Pool this module uses. */
export type Queryable = Pick<Pool, 'query'>;

export interface DispatcherStoreOptions {
  db: Queryable;
  dispatcher: Dispatcher;
  log: Logger;
  metrics?: Metrics;
  /** Reload every N seconds; 0 = only on demand. */
  reloadSec?: number;
  /** Called after every successful load (e.g. `() => auth.setExtraWhitelist(dispatcher.hosts())`). Must not throw. */
  onLoaded?: (summary: LoadSummary) => void;
}

/** Reads every gw_dispatcher row. Throws GwError GW_ERR_DB_QUERY on failure. */
export async function readDispatcherRows(db: Queryable): Promise<DispatcherRow[]> {
  let rows: RowDataPacket[];
  try {
    [rows] = await db.query<RowDataPacket[]>(SELECT_DISPATCHER);
  } catch (e) {
    throw new GwError('GW_ERR_DB_QUERY', `reading gw_dispatcher: ${describeError(e)}`, { cause: e });
  }
  return rows.map((r) => ({
    id: Number(r.id),
    setid: Number(r.setid),
    destination: String(r.destination),
    state: Number(r.state),
    weight: Number(r.weight),
    priority: Number(r.priority),
    attrs: String(r.attrs ?? ''),
    description: String(r.description ?? ''),
  }));
}

export class DispatcherStore {
  private readonly opts: DispatcherStoreOptions;
  private running: Promise<LoadSummary> | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(opts: DispatcherStoreOptions) {
    this.opts = opts;
  }

  /** Reads the table and swaps it in. Concurrent callers share one read. Rejects (keeping the old sets) on DB error. */
  reload(): Promise<LoadSummary> {
    if (this.running) return this.running;
    const p = (async () => {
      try {
        const rows = await readDispatcherRows(this.opts.db);
        const summary = this.opts.dispatcher.load(rows);
        this.opts.metrics?.dispatcherReloads.inc({ result: 'ok' });
        try {
          this.opts.onLoaded?.(summary);
        } catch (e) {
          this.opts.log.error({ err: describeError(e) }, 'dispatcher onLoaded callback threw');
        }
        return summary;
      } catch (e) {
        this.opts.metrics?.dispatcherReloads.inc({ result: 'error' });
        this.opts.log.error({ err: describeError(e) }, 'dispatcher reload failed; keeping the current destinations');
        throw e;
      }
    })();
    this.running = p;
    const clear = () => { if (this.running === p) this.running = undefined; };
    p.then(clear, clear);
    return p;
  }

  /** Starts periodic reloads when reloadSec > 0. */
  start(): void {
    const sec = this.opts.reloadSec ?? 0;
    if (sec <= 0 || this.timer) return;
    this.timer = setInterval(() => { this.reload().catch(() => { /* logged in reload() */ }); }, sec * 1000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /**
   * Writes an administrative state to gw_dispatcher so it survives restarts and reloads (needs UPDATE on
   * gw_dispatcher for the gateway's DB user). Returns false when no row has that id.
   */
  async persistState(id: string, state: DestState): Promise<boolean> {
    if (!/^\d{1,10}$/.test(id)) return false;
    try {
      const [res] = await this.opts.db.query(UPDATE_DISPATCHER_STATE, [STATE_CODES[state], Number(id)]);
      return (res as { affectedRows?: number }).affectedRows !== 0;
    } catch (e) {
      throw new GwError('GW_ERR_DB_QUERY', `updating gw_dispatcher state: ${describeError(e)}`, { cause: e });
    }
  }
}
