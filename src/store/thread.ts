// The writer thread, main side. Batch writers opened with `thread` keep their contract (enqueue is a push that
// never waits or throws; flush/close resolve once rows are committed or journaled) while the journal encoding,
// fdatasync, SQL text and the MySQL protocol run on a worker thread: a tenth of the SIP thread's CPU at 1000
// calls/s (bench/RESULTS.md). Rows are mapped here (specs are code, and a mapper may close over anything), handed
// over every handoffMs, and kept until the writer thread reports them journaled (`taken`). If the thread ever
// stops, each writer reopens on this thread — adopting the journal the thread wrote — and re-queues every row not
// yet acknowledged; the idempotency keys make a row journaled twice a no-op.
import { Worker } from 'node:worker_threads';
import { describeError, GwError, type ErrorCode } from '../errors.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { defineTable, type Row, type TableSpec } from './spec.js';
import type { FromHost, HostedStats, HostedWriterSpec, ThreadData, ToHost } from './thread-protocol.js';
import { openLocalWriter, type BatchWriter, type BatchWriterOptions, type LocalWriter, type WriterStats } from './writer.js';

export interface WriterThreadOptions {
  /** The writer thread opens its own pool (a mysql2 pool cannot cross threads). */
  db: { url: string; poolSize?: number; connectTimeoutMs?: number };
  log: Logger;
  metrics?: Metrics;
  /** Longest a mapped row waits on the calling thread before it is handed over. Default 50. */
  handoffMs?: number;
  /** How often the writer thread reports its writers' state (acknowledgements, counters). Default 100. */
  statsMs?: number;
}

const LEVELS: Record<number, 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal'> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' };

/** The thread stopped before it answered: the writer carries on on the calling thread. */
class ThreadGone extends Error {}

interface Request { resolve(s: HostedStats | undefined): void; reject(e: Error): void }

function spawn(data: ThreadData): Worker {
  const self = import.meta.url;
  if (self.endsWith('.ts')) {
    // Running from source (tests, tsx): the thread needs the same TypeScript loader before it imports the host.
    const api = import.meta.resolve('tsx/esm/api');
    const host = new URL('./thread-host.ts', self).href;
    return new Worker(`import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(host)}); })`, { eval: true, workerData: data });
  }
  return new Worker(new URL('./thread-host.js', self), { workerData: data });
}

export class WriterThread {
  private worker: Worker | null;
  private readonly log: Logger;
  private readonly metrics: Metrics | undefined;
  private readonly handoffMs: number;
  private nextId = 1;
  private nextWriter = 1;
  private readonly requests = new Map<number, Request>();
  private readonly writers = new Map<number, ThreadedWriter<unknown>>();
  private readonly dirty = new Set<ThreadedWriter<unknown>>();
  private timer: NodeJS.Timeout | undefined;
  private ending = false;
  private gone = false;
  private readonly exited: Promise<void>;

  constructor(o: WriterThreadOptions) {
    this.log = o.log.child({ thread: 'writer' });
    this.metrics = o.metrics;
    this.handoffMs = o.handoffMs ?? 50;
    const w = spawn({ db: o.db, logLevel: o.log.level, statsMs: o.statsMs ?? 100 });
    this.worker = w;
    w.on('message', (m: FromHost) => this.onMessage(m));
    w.on('error', (e) => this.stopped(e));
    this.exited = new Promise((res) => w.once('exit', (code) => {
      if (!this.ending) this.stopped(new Error(`writer thread exited with code ${code}`));
      res();
    }));
    this.metrics?.writerThreadUp.set(1);
  }

  /** False once the thread stopped (its writers then run on the calling thread). */
  get running(): boolean {
    return !this.gone;
  }

  /** Opens a writer on the thread: the journal directory is adopted and replayed there. */
  async open<R>(opts: BatchWriterOptions<R>): Promise<BatchWriter<R>> {
    const w = new ThreadedWriter<R>(this, this.nextWriter++, opts);
    this.writers.set(w.id, w as ThreadedWriter<unknown>);
    const spec: HostedWriterSpec = {
      name: opts.name, journalDir: opts.journalDir, batchSize: opts.batchSize, flushIntervalMs: opts.flushIntervalMs, fsync: opts.fsync,
      writeTimeoutMs: opts.writeTimeoutMs, retryMinMs: opts.retryMinMs, retryMaxMs: opts.retryMaxMs, maxQueue: opts.maxQueue,
      segmentMaxBytes: opts.segmentMaxBytes, idleRotateMs: opts.idleRotateMs,
      header: { table: opts.spec.table, columns: [...opts.spec.columns], keyColumns: [...opts.spec.keyColumns], onDuplicate: opts.spec.onDuplicate ?? 'ignore' },
    };
    try {
      w.onState(await this.request({ t: 'open', id: 0, w: w.id, spec }));
    } catch (e) {
      if (e instanceof ThreadGone) {
        await w.local();
      } else {
        this.writers.delete(w.id);
        throw e;
      }
    }
    return w;
  }

  /** Ends the thread: its writers are closed (commit within 1 s, journal the rest), then the thread exits. */
  async close(): Promise<void> {
    if (this.ending) return this.exited;
    this.handoff();
    this.ending = true;
    if (!this.gone) {
      await this.request({ t: 'end', id: 0 }).catch(() => undefined);
      await this.worker?.terminate();
    }
    this.metrics?.writerThreadUp.set(0);
    await Promise.all([...this.writers.values()].map((w) => w.closeLocal()));
  }

  /** @internal tests: stops the thread as a crash would (rows in flight are not acknowledged). */
  async crashForTest(): Promise<void> {
    await this.worker?.terminate();
    await this.exited;
  }

  /** @internal a writer has rows to hand over: now when `now`, else within handoffMs. */
  schedule(w: ThreadedWriter<unknown>, now: boolean): void {
    this.dirty.add(w);
    if (now) this.handoff();
    else if (!this.timer) {
      this.timer = setTimeout(() => this.handoff(), this.handoffMs);
      this.timer.unref();
    }
  }

  /** @internal hands every writer's mapped rows to the thread in one message. */
  handoff(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.dirty.size === 0) return;
    const batches: Array<[number, Row[]]> = [];
    for (const w of this.dirty) {
      const rows = w.takePending();
      if (rows.length) batches.push([w.id, rows]);
    }
    this.dirty.clear();
    if (batches.length && this.worker && !this.gone) this.worker.postMessage({ t: 'rows', batches } satisfies ToHost);
  }

  /** @internal */
  post(m: ToHost): void {
    if (this.worker && !this.gone) this.worker.postMessage(m);
  }

  /** @internal */
  request(m: ToHost & { id: number }): Promise<HostedStats | undefined> {
    if (this.gone || !this.worker) return Promise.reject(new ThreadGone('writer thread stopped'));
    const id = this.nextId++;
    m.id = id;
    return new Promise((resolve, reject) => {
      this.requests.set(id, { resolve, reject });
      this.worker!.postMessage(m);
    });
  }

  /** @internal */
  forget(w: ThreadedWriter<unknown>): void {
    this.writers.delete(w.id);
    this.dirty.delete(w);
  }

  private onMessage(m: FromHost): void {
    switch (m.t) {
      case 'stats':
        for (const s of m.list) this.writers.get(s.w)?.onState(s);
        return;
      case 'log':
        this.relog(m.line);
        return;
      case 'reply': {
        const r = this.requests.get(m.id);
        if (!r) return;
        this.requests.delete(m.id);
        if (m.ok) r.resolve(m.state);
        else r.reject(new GwError(m.code as ErrorCode, m.message));
      }
    }
  }

  private relog(line: string): void {
    let o: Record<string, unknown>;
    try {
      o = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return;
    }
    const { level, time: _t, pid: _p, hostname: _h, name: _n, msg, ...rest } = o;
    this.log[LEVELS[level as number] ?? 'info'](rest, typeof msg === 'string' ? msg : '');
  }

  private stopped(e: unknown): void {
    if (this.gone || this.ending) return;
    this.gone = true;
    this.worker = null;
    this.metrics?.writerThreadUp.set(0);
    this.log.error({ err: describeError(e), writers: [...this.writers.values()].map((w) => w.name) },
      'writer thread stopped; its writers reopen on the SIP thread and re-queue every row it had not journaled');
    const reqs = [...this.requests.values()];
    this.requests.clear();
    for (const r of reqs) r.reject(new ThreadGone('writer thread stopped'));
    for (const w of this.writers.values()) w.local().catch((err: unknown) => this.log.error({ err: describeError(err), writer: w.name }, 'writer could not reopen on the SIP thread'));
  }
}

const COUNTERS = ['written', 'duplicates', 'batches', 'writeErrors', 'journalErrors', 'corruptLines', 'deadLetters', 'rejected', 'dropped'] as const;

/** A BatchWriter whose journal and INSERTs run on the writer thread. */
class ThreadedWriter<R> implements BatchWriter<R> {
  readonly name: string;
  private readonly spec: TableSpec<R>;
  private readonly log: Logger;
  private readonly metrics: Metrics | undefined;
  private readonly batchSize: number;
  private pending: Row[] = [];
  // Rows handed over and not yet acknowledged: unacked[ackHead..]. `acked` counts the acknowledged ones.
  private unacked: Row[] = [];
  private ackHead = 0;
  private acked = 0;
  private last: WriterStats;
  private rejectedHere = 0;
  private closed = false;
  private fallback: LocalWriter<Row> | null = null;
  private opening: Promise<LocalWriter<Row>> | null = null;

  constructor(private readonly thread: WriterThread, readonly id: number, private readonly opts: BatchWriterOptions<R>) {
    this.name = opts.name;
    this.spec = opts.spec;
    this.log = opts.log.child({ writer: opts.name });
    this.metrics = opts.metrics;
    this.batchSize = opts.batchSize ?? 500;
    this.last = {
      name: opts.name, table: opts.spec.table, queued: 0, journalRecords: 0, journalBytes: 0, journalSegments: 0, written: 0, duplicates: 0,
      batches: 0, writeErrors: 0, journalErrors: 0, corruptLines: 0, deadLetters: 0, rejected: 0, dropped: 0, dbUp: true, lastError: undefined,
    };
  }

  enqueue(record: R): void {
    if (this.closed) {
      this.rejectedHere++;
      this.log.error({ table: this.spec.table }, 'record enqueued after close: not written');
      return;
    }
    let row: Row;
    try {
      row = this.spec.toRow(record);
    } catch (e) {
      this.refuse(record, describeError(e));
      return;
    }
    if (this.fallback) {
      this.fallback.enqueue(row);
      return;
    }
    this.pending.push(row);
    this.thread.schedule(this as ThreadedWriter<unknown>, this.pending.length >= this.batchSize);
  }

  async flush(): Promise<void> {
    if (!this.fallback && !this.opening) {
      this.thread.handoff();
      try {
        this.onState(await this.thread.request({ t: 'flush', id: 0, w: this.id }));
        return;
      } catch (e) {
        if (!(e instanceof ThreadGone)) throw e;
      }
    }
    await (await this.local()).flush();
  }

  stats(): WriterStats {
    const queued = this.pending.length + this.unacked.length - this.ackHead;
    if (!this.fallback) return { ...this.last, queued, rejected: this.last.rejected + this.rejectedHere };
    // After a fallback: the thread's counters so far plus the local writer's.
    const s = { ...this.fallback.stats() };
    for (const k of COUNTERS) s[k] += this.last[k];
    s.rejected += this.rejectedHere;
    return s;
  }

  async close(o: { timeoutMs?: number } = {}): Promise<void> {
    if (this.closed) return;
    if (!this.fallback && !this.opening) {
      this.thread.handoff();
      try {
        this.onState(await this.thread.request({ t: 'close', id: 0, w: this.id, timeoutMs: o.timeoutMs }));
        this.closed = true;
        this.thread.forget(this as ThreadedWriter<unknown>);
        return;
      } catch (e) {
        if (!(e instanceof ThreadGone)) throw e;
      }
    }
    this.closed = true;
    await (await this.local()).close(o);
    this.thread.forget(this as ThreadedWriter<unknown>);
  }

  /** @internal the thread ended (normally): close a fallback writer if there is one. */
  async closeLocal(): Promise<void> {
    if (this.opening) await (await this.opening).close({ timeoutMs: 1000 });
  }

  /** @internal rows to hand over now; they are kept until acknowledged. */
  takePending(): Row[] {
    const rows = this.pending;
    this.pending = [];
    for (const r of rows) this.unacked.push(r);
    return rows;
  }

  /** @internal the thread's report: acknowledgements, counters for the metrics. */
  onState(s: HostedStats | undefined): void {
    if (!s || this.fallback) return;
    const n = s.taken - this.acked;
    if (n > 0) {
      this.acked = s.taken;
      this.ackHead += n;
      if (this.ackHead >= this.unacked.length) {
        this.unacked = [];
        this.ackHead = 0;
      } else if (this.ackHead > 4096 && this.ackHead * 2 > this.unacked.length) {
        this.unacked = this.unacked.slice(this.ackHead);
        this.ackHead = 0;
      }
    }
    const m = this.metrics;
    if (m) {
      const prev = this.last;
      const st = s.stats;
      const w = { writer: this.name };
      if (st.written > prev.written) m.dbWriteRows.inc(w, st.written - prev.written);
      if (st.batches > prev.batches) m.dbWriteBatches.inc({ writer: this.name, result: 'ok' }, st.batches - prev.batches);
      if (st.writeErrors > prev.writeErrors) m.dbWriteBatches.inc({ writer: this.name, result: 'error' }, st.writeErrors - prev.writeErrors);
      if (st.deadLetters > prev.deadLetters) m.dbWriteDeadLetters.inc(w, st.deadLetters - prev.deadLetters);
      if (st.corruptLines > prev.corruptLines) m.journalCorruptLines.inc(w, st.corruptLines - prev.corruptLines);
      m.dbWriteQueueDepth.set(w, this.pending.length + this.unacked.length - this.ackHead);
      m.journalRecords.set(w, st.journalRecords);
      m.journalBytes.set(w, st.journalBytes);
    }
    this.last = s.stats;
  }

  /** The writer on this thread after the writer thread stopped; every unacknowledged row is queued to it first. */
  local(): Promise<LocalWriter<Row>> {
    this.opening ??= (async () => {
      const spec = defineTable<Row>({ table: this.spec.table, columns: this.spec.columns, keyColumns: this.spec.keyColumns, onDuplicate: this.spec.onDuplicate, toRow: (r) => r });
      const l = await openLocalWriter<Row>({ ...this.opts, spec, thread: undefined });
      const again = this.unacked.length - this.ackHead + this.pending.length;
      for (let i = this.ackHead; i < this.unacked.length; i++) l.enqueue(this.unacked[i]!);
      for (const r of this.pending) l.enqueue(r);
      this.unacked = [];
      this.ackHead = 0;
      this.pending = [];
      this.fallback = l;
      this.log.warn({ requeued: again }, 'writer reopened on the SIP thread');
      return l;
    })();
    return this.opening;
  }

  private refuse(record: R, reason: string): void {
    let json: string;
    try {
      json = JSON.stringify(record) ?? JSON.stringify(String(record));
    } catch {
      json = JSON.stringify(String(record));
    }
    if (this.fallback) this.fallback.refuse(record, json, reason);
    else if (this.thread.running) this.thread.post({ t: 'refuse', w: this.id, json, reason });
    else {
      this.rejectedHere++;
      this.log.error({ err: reason, record }, 'record rejected by the row mapper (not dead-lettered: the writer is reopening)');
    }
  }
}
