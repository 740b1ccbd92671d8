// The AMI side of the gateway: one supervised AmiClient per configured box, every Cdr into gw_ami_cdr, every
// connection interval into gw_ami_session, and (when a box's cdr table is configured) the blind interval after a
// reconnect filled from the box's durable CDRs. main.ts builds it with createAmiConnector() and stops it on exit.
import type { Config } from '../config/schema.js';
import { createDb, type Db } from '../db/pool.js';
import { describeError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { backfillFromCdrTable, type BackfillResult } from './backfill.js';
import { AmiClient, type AmiState } from './client.js';
import { AmiStore } from './store.js';
import { SELECT_LAST_SESSION_END } from '../db/queries/ami.js';
import { sqlDateTime } from '../store/index.js';

/** The longest blind interval read back automatically after a gateway restart (older gaps: the backfill CLI). */
const MAX_START_GAP_MS = 24 * 3600_000;

type AmiConfig = Config['ami'];
type BoxConfig = AmiConfig['boxes'][number];

export interface AmiConnectorOptions {
  ami: AmiConfig;
  store: AmiStore;
  log: Logger;
  metrics?: Metrics;
  /** The gateway database (gap backfill writes gw_ami_cdr through it). */
  db?: Db;
  /** Opens a box's CDR database (default: createDb with a pool of 2). */
  openCdrDb?: (url: string) => Db;
}

export interface AmiBoxStatus {
  box: string;
  /** Logged in now. */
  up: boolean;
  /** Epoch ms of the current login (when up). */
  since?: number;
  state: AmiState;
  /** Epoch ms of the current connection's login, 0 when down. */
  upSince: number;
  lastDownReason: string;
  cdrs: number;
}

export class AmiConnector {
  private readonly clients = new Map<string, AmiClient>();
  private readonly boxes = new Map<string, BoxConfig>();
  private readonly info = new Map<string, { upSince: number; downAt: number; lastDownReason: string; cdrs: number }>();
  private readonly cdrDbs = new Map<string, Db>();
  private readonly backfills = new Set<Promise<unknown>>();
  private touchTimer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly o: AmiConnectorOptions) {
    for (const b of o.ami.boxes) {
      this.boxes.set(b.name, b);
      const c = new AmiClient({
        box: b.name, host: b.host, port: b.port, username: b.username, secret: b.secret, timezone: b.timezone,
        events: o.ami.events, pingIntervalMs: o.ami.pingIntervalMs, pingTimeoutMs: o.ami.pingTimeoutMs,
        actionTimeoutMs: o.ami.actionTimeoutMs, reconnectMinMs: o.ami.reconnectMinMs, reconnectMaxMs: o.ami.reconnectMaxMs,
        log: o.log, metrics: o.metrics,
      });
      const st = { upSince: 0, downAt: 0, lastDownReason: '', cdrs: 0 };
      this.info.set(b.name, st);
      c.on('cdr', (rec) => { st.cdrs++; o.store.addCdr(rec); });
      c.on('up', (u) => {
        st.upSince = u.at;
        o.store.sessionUp(b.name, u.at);
        if (st.downAt > 0) this.fillGap(b, st.downAt, u.at);
        else this.fillStartGap(b, u.at);
      });
      c.on('down', (d) => {
        st.upSince = 0;
        st.downAt = d.at;
        st.lastDownReason = d.reason;
        o.store.sessionDown(b.name, d.reason, d.at);
      });
      c.on('loginFailed', (e) => { st.lastDownReason = e.message; });
      this.clients.set(b.name, c);
    }
  }

  start(): void {
    for (const c of this.clients.values()) c.start();
    this.touchTimer = setInterval(() => this.o.store.touchSessions(), this.o.ami.sessionTouchMs);
    this.touchTimer.unref();
  }

  client(box: string): AmiClient | undefined {
    return this.clients.get(box);
  }

  status(): AmiBoxStatus[] {
    return [...this.clients.values()].map((c) => {
      const st = this.info.get(c.box)!;
      const up = c.state === 'up';
      return { box: c.box, up, ...(up ? { since: st.upSince } : {}), state: c.state, upSince: st.upSince, lastDownReason: st.lastDownReason, cdrs: st.cdrs };
    });
  }

  /** Reads the box's cdr table for [fromMs, toMs) widened by gapMarginSec (no-op without cdrDbUrl). */
  async backfillWindow(box: string, fromMs: number, toMs: number): Promise<BackfillResult | undefined> {
    const b = this.boxes.get(box);
    if (!b?.cdrDbUrl || !this.o.db) return undefined;
    let source = this.cdrDbs.get(box);
    if (!source) {
      source = (this.o.openCdrDb ?? ((url: string) => createDb({ url, poolSize: 2 })))(b.cdrDbUrl);
      this.cdrDbs.set(box, source);
    }
    const margin = this.o.ami.gapMarginSec * 1000;
    return backfillFromCdrTable({ db: this.o.db, source, box, table: b.cdrTable, timezone: b.timezone,
      fromMs: fromMs - margin, toMs: toMs + margin, log: this.o.log });
  }

  private fillGap(b: BoxConfig, downAt: number, upAt: number): void {
    if (!this.o.ami.gapBackfill || !b.cdrDbUrl || !this.o.db || this.stopped) return;
    const p = this.backfillWindow(b.name, downAt, upAt).catch((e: unknown) => {
      this.o.log.warn({ box: b.name, err: describeError(e) }, 'AMI gap backfill failed; run `a2b-gateway backfill` later');
    });
    this.backfills.add(p);
    void p.finally(() => this.backfills.delete(p));
  }

  /**
   * First login after the gateway started: AMI was blind since the last recorded session of this box ended (the
   * gateway was stopped or crashed). That interval, at most MAX_START_GAP_MS, is read from the cdr table too.
   */
  private fillStartGap(b: BoxConfig, upAt: number): void {
    if (!this.o.ami.gapBackfill || !b.cdrDbUrl || !this.o.db || this.stopped) return;
    const db = this.o.db;
    const p = (async () => {
      const [rows] = await db.query(SELECT_LAST_SESSION_END, [b.name, sqlDateTime(upAt)]);
      const last = (rows as Array<{ last_end: string | null }>)[0]?.last_end;
      if (!last) return; // never connected before: nothing is known to be missing
      const from = Math.max(Date.parse(`${last.replace(' ', 'T')}Z`), upAt - MAX_START_GAP_MS);
      if (Number.isNaN(from) || from >= upAt) return;
      await this.backfillWindow(b.name, from, upAt);
    })().catch((e: unknown) => {
      this.o.log.warn({ box: b.name, err: describeError(e) }, 'AMI start-gap backfill failed; run `a2b-gateway backfill` later');
    });
    this.backfills.add(p);
    void p.finally(() => this.backfills.delete(p));
  }

  /** Logs off every box and waits for running gap backfills; the store is closed by its owner afterwards. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.touchTimer);
    await Promise.all([...this.clients.values()].map((c) => c.stop()));
    await Promise.all([...this.backfills]);
    await Promise.all([...this.cdrDbs.values()].map((d) => d.end().catch(() => undefined)));
    this.cdrDbs.clear();
  }
}

/**
 * Everything main.ts needs: opens the store (journals under acc.journalDir), closes sessions a crashed run left
 * open, builds the connector. Call start(); on shutdown: connector.stop(), then store.close().
 */
export async function createAmiConnector(deps: { config: Config; db: Db; log: Logger; metrics?: Metrics }): Promise<{ connector: AmiConnector; store: AmiStore }> {
  const { config, db, log, metrics } = deps;
  const store = await AmiStore.open({
    db, log, metrics, journalDir: config.acc.journalDir, instance: config.ami.instance, batchSize: config.acc.batchSize,
    flushIntervalMs: config.acc.flushIntervalMs, fsync: config.acc.fsync, writeTimeoutMs: config.acc.writeTimeoutMs,
    maxQueue: config.acc.maxQueue,
  });
  await store.closeStaleSessions();
  const connector = new AmiConnector({ ami: config.ami, store, log: log.child({ module: 'ami' }), metrics, db });
  return { connector, store };
}
