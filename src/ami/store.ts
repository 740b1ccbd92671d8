// Cdr records → gw_ami_cdr, connection intervals → gw_ami_session, both through the shared batched, journaled
// writer (src/store): enqueue never blocks, and nothing is lost while MySQL is down (the journal replays it).
// gw_ami_cdr's unique key (box, uniqueid, sequence) makes a duplicate Cdr (a replay, a backfill of a CDR already
// received over AMI) a no-op: first write wins, so an 'ami' row is never overwritten by a 'backfill' one.
import { hostname } from 'node:os';
import { randomInt } from 'node:crypto';
import type { Db } from '../db/pool.js';
import { CLOSE_STALE_SESSIONS } from '../db/queries/ami.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { clip, defineTable, openBatchWriter, sqlDateTime, type BatchWriter, type FsyncPolicy, type TableSpec, type WriterStats } from '../store/index.js';
import type { CdrRecord } from './cdr.js';
import { sqlDateTimeSec } from './time.js';

export interface StoredCdr extends CdrRecord {
  /** When the gateway received it (epoch ms). */
  receivedAt: number;
}

const dt = (ms: number | null): string | null => (ms === null ? null : sqlDateTimeSec(ms));

export const AMI_CDR_TABLE: TableSpec<StoredCdr> = defineTable<StoredCdr>({
  table: 'gw_ami_cdr',
  columns: ['box', 'uniqueid', 'sequence', 'linkedid', 'accountcode', 'src', 'dst', 'dcontext', 'clid', 'channel',
    'dstchannel', 'lastapp', 'lastdata', 'start_time', 'answer_time', 'end_time', 'duration', 'billsec',
    'disposition', 'amaflags', 'userfield', 'sip_callid', 'origin', 'received_at'],
  keyColumns: ['box', 'uniqueid', 'sequence'],
  onDuplicate: 'ignore',
  toRow: (r) => [
    clip(r.box, 64), clip(r.uniqueId, 40), r.sequence, clip(r.linkedId, 40), clip(r.accountCode, 80), clip(r.source, 80),
    clip(r.destination, 80), clip(r.context, 80), clip(r.callerId, 128), clip(r.channel, 128), clip(r.dstChannel, 128),
    clip(r.lastApp, 80), clip(r.lastData, 255), dt(r.start), dt(r.answer), dt(r.end),
    Math.min(r.duration, 4294967295), Math.min(r.billableSeconds, 4294967295), clip(r.disposition, 16), clip(r.amaFlags, 16),
    clip(r.userField, 255), clip(r.sipCallId, 255), r.origin, sqlDateTime(r.receivedAt),
  ],
});

/**
 * One AMI connection interval. The id is chosen by the gateway (random, < 2^48) so the row can be written by
 * the journaled writer and later updated by key ('update' = last write wins): the 'up' row, its periodic touches
 * and the final 'down' row are the same record.
 * While connected, reason = 'up' and disconnected_at = the last time the connection was known alive (touched every
 * sessionTouchMs): if the gateway dies, the interval ends where AMI was last seen, never later.
 */
export interface AmiSessionRow {
  id: number;
  box: string;
  instance: string;
  connectedAt: number;
  /** Last known alive (while up) or the disconnect time. */
  endAt: number;
  /** 'up' while connected; else why it ended. */
  reason: string;
}

export const AMI_SESSION_TABLE: TableSpec<AmiSessionRow> = defineTable<AmiSessionRow>({
  table: 'gw_ami_session',
  columns: ['id', 'box', 'instance', 'connected_at', 'disconnected_at', 'reason'],
  keyColumns: ['id'],
  onDuplicate: 'update',
  toRow: (s) => [s.id, clip(s.box, 64), clip(s.instance, 64), sqlDateTime(s.connectedAt), sqlDateTime(s.endAt), clip(s.reason, 255)],
});

export interface AmiStoreOptions {
  db: Db;
  log: Logger;
  metrics?: Metrics;
  journalDir: string;
  /** Written to gw_ami_session.instance (default: host name). */
  instance?: string;
  batchSize?: number;
  flushIntervalMs?: number;
  fsync?: FsyncPolicy;
  writeTimeoutMs?: number;
  maxQueue?: number;
  /** Writer retry back-off (tests shorten it). */
  retryMinMs?: number;
  retryMaxMs?: number;
  now?: () => number;
}

export class AmiStore {
  readonly instance: string;
  private readonly now: () => number;
  /** Open sessions by box. */
  private readonly open = new Map<string, AmiSessionRow>();

  private constructor(
    private readonly cdrs: BatchWriter<StoredCdr>,
    private readonly sessions: BatchWriter<AmiSessionRow>,
    private readonly db: Db,
    private readonly log: Logger,
    instance: string,
    now: () => number,
  ) {
    this.instance = instance;
    this.now = now;
  }

  /** Opens the two journaled writers (<journalDir>/ami-cdr, <journalDir>/ami-session). MySQL may be down. */
  static async open(o: AmiStoreOptions): Promise<AmiStore> {
    const common = {
      db: o.db, log: o.log, metrics: o.metrics, journalDir: o.journalDir, batchSize: o.batchSize,
      flushIntervalMs: o.flushIntervalMs, fsync: o.fsync, writeTimeoutMs: o.writeTimeoutMs, maxQueue: o.maxQueue,
      retryMinMs: o.retryMinMs, retryMaxMs: o.retryMaxMs,
    };
    const cdrs = await openBatchWriter<StoredCdr>({ ...common, name: 'ami-cdr', spec: AMI_CDR_TABLE });
    let sessions: BatchWriter<AmiSessionRow>;
    try {
      sessions = await openBatchWriter<AmiSessionRow>({ ...common, name: 'ami-session', spec: AMI_SESSION_TABLE });
    } catch (e) {
      await cdrs.close();
      throw e;
    }
    return new AmiStore(cdrs, sessions, o.db, o.log, o.instance ?? hostname().slice(0, 64), o.now ?? Date.now);
  }

  /** Queues one CDR (sync, never throws). */
  addCdr(rec: CdrRecord, receivedAt = this.now()): void {
    this.cdrs.enqueue({ ...rec, receivedAt });
  }

  /** A connection to `box` is up since `at`. */
  sessionUp(box: string, at = this.now()): void {
    const prev = this.open.get(box);
    if (prev) this.sessionDown(box, 'superseded', at);
    const row: AmiSessionRow = { id: randomInt(1, 2 ** 48 - 1), box, instance: this.instance, connectedAt: at, endAt: at, reason: 'up' };
    this.open.set(box, row);
    this.sessions.enqueue({ ...row });
  }

  /** Moves every open session's end to now (the last time it was known alive). */
  touchSessions(at = this.now()): void {
    for (const row of this.open.values()) {
      row.endAt = at;
      this.sessions.enqueue({ ...row });
    }
  }

  sessionDown(box: string, reason: string, at = this.now()): void {
    const row = this.open.get(box);
    if (!row) return;
    this.open.delete(box);
    this.sessions.enqueue({ ...row, endAt: at, reason: reason === 'up' ? 'down' : reason || 'down' });
  }

  /**
   * Marks sessions a previous run of this instance left open ('up', the process died) as ended where they were last
   * touched. Best effort at start: if MySQL is down they stay 'up', which reads the same (end = last touch).
   */
  async closeStaleSessions(): Promise<number> {
    try {
      const [res] = await this.db.query(CLOSE_STALE_SESSIONS, ['gateway stopped while connected', this.instance, sqlDateTime(this.now())]);
      return (res as { affectedRows?: number }).affectedRows ?? 0;
    } catch (e) {
      this.log.warn({ err: (e as Error).message }, 'cannot close stale AMI sessions now');
      return 0;
    }
  }

  async flush(): Promise<void> {
    await Promise.all([this.cdrs.flush(), this.sessions.flush()]);
  }

  stats(): { cdr: WriterStats; session: WriterStats } {
    return { cdr: this.cdrs.stats(), session: this.sessions.stats() };
  }

  /** Ends open sessions ('gateway shutdown'), then closes both writers (what cannot be committed stays journaled). */
  async close(opts: { timeoutMs?: number } = {}): Promise<void> {
    for (const box of [...this.open.keys()]) this.sessionDown(box, 'gateway shutdown');
    await Promise.all([this.cdrs.close(opts), this.sessions.close(opts)]);
  }
}
