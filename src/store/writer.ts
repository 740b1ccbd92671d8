// A batched, journaled record writer: the caller's enqueue() is synchronous and O(1) and never throws; rows
// reach MySQL as multi-row INSERT IGNORE statements off the call path, and no record is lost when MySQL is
// slow, down, or the process dies.
//
// Write-ahead: every record is appended to the stream's on-disk journal BEFORE it is sent to MySQL (group
// commit: one write + one fdatasync per batch, not per record). The journal is the queue of truth:
//   memory (≤ flushIntervalMs or batchSize) → journal segment (append, fsync) → multi-row INSERT → segment
//   deleted once every row in it is committed and it is full (segmentMaxBytes), idle (idleRotateMs) or closed.
// When MySQL fails or is slower than writeTimeoutMs, records keep going to the journal (memory stays small)
// and one serial loop replays the journal oldest-first, batch by batch, with exponential backoff; the unique
// key of each table (rec_key, or AMI's (box, uniqueid, sequence)) makes a replayed row that already landed a
// no-op, so each record is in the table exactly once even when a timed-out INSERT committed after all.
// Segments left by a crash are found at start and replayed before anything newer (order is preserved:
// segments by number, lines in file order, memory last).
//
// What a crash can cost: records not yet journaled, i.e. enqueued less than flushIntervalMs ago (or fewer than
// batchSize records) — lower flushIntervalMs to shrink that window. Everything journaled survives a process crash.
// fsync policy: 'batch' (default) fdatasyncs the journal after each drain of memory, before those rows are sent
// to MySQL, and the directory when a segment is created, so a power cut costs no more than a process crash.
// 'none' leaves flushing to the OS: same for a process crash, a power cut may also lose the last few seconds.
//
// A row MySQL rejects as data (not as an outage) would otherwise block the stream forever: such a batch is
// retried row by row and the rows MySQL still refuses go to dead-letter.jsonl in the stream directory
// (counted, logged), so one bad record cannot stop the others.
import { constants as fsConstants } from 'node:fs';
import { access, appendFile, mkdir, open, readdir, readFile, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Db } from '../db/pool.js';
import { batchInsertSql } from '../db/queries/store.js';
import { GwError, describeError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { encodeLine, parseSegment, segmentName, segmentSeq, type SegmentHeader } from './journal.js';
import type { Row, TableSpec } from './spec.js';

export type FsyncPolicy = 'batch' | 'none';

export interface BatchWriterOptions<R> {
  /** Stream name: metrics label `writer` and the journal sub-directory (acc, missed, cdr, ami, ...). */
  name: string;
  spec: TableSpec<R>;
  db: Db;
  /** Parent journal directory; this writer uses <journalDir>/<name>/. */
  journalDir: string;
  log: Logger;
  metrics?: Metrics;
  /** Rows per INSERT; a full batch in memory is written at once. Default 500. */
  batchSize?: number;
  /** Longest time a record waits in memory before it is journaled and written. Default 200. */
  flushIntervalMs?: number;
  fsync?: FsyncPolicy;
  /** An INSERT slower than this counts as a failure (the journal keeps the rows). Default 10000. */
  writeTimeoutMs?: number;
  /** Backoff between attempts while MySQL fails: doubles from min to max. Defaults 250 / 15000. */
  retryMinMs?: number;
  retryMaxMs?: number;
  /** Records held in memory when even the journal cannot be written; beyond this they are dropped (counted). Default 200000. */
  maxQueue?: number;
  /** A segment is closed (and deleted once committed) past this size. Default 1 MiB (parsing one at replay is a few ms of event loop). */
  segmentMaxBytes?: number;
  /** A fully committed segment older than this is deleted when the writer goes idle. Default 5000. */
  idleRotateMs?: number;
}

export interface WriterStats {
  name: string;
  table: string;
  /** Records in memory, not yet journaled. */
  queued: number;
  /** Records in the journal not yet confirmed by MySQL. */
  journalRecords: number;
  /** Bytes of journal segment files on disk. */
  journalBytes: number;
  journalSegments: number;
  /** Rows sent in successful INSERTs (including replays MySQL ignored as duplicates). */
  written: number;
  /** Rows MySQL ignored because the key was already there (replays after a crash or a timed-out INSERT). */
  duplicates: number;
  batches: number;
  /** Failed INSERT attempts (outages, timeouts). */
  writeErrors: number;
  /** Failed journal writes (disk full, I/O error). */
  journalErrors: number;
  /** Damaged journal lines skipped at replay (torn final write after a crash, corruption). */
  corruptLines: number;
  /** Rows MySQL refused as data, kept in dead-letter.jsonl. */
  deadLetters: number;
  /** Records refused at enqueue (row mapper threw, writer closed). */
  rejected: number;
  /** Records dropped because memory was full while the journal could not be written. */
  dropped: number;
  /** False while MySQL is failing. */
  dbUp: boolean;
  lastError: string | undefined;
}

export interface BatchWriter<R> {
  readonly name: string;
  /** Queues one record. Synchronous, O(1), never throws, never waits for I/O. */
  enqueue(record: R): void;
  /** Writes what is queued now; resolves when it is committed or (MySQL failing) safely journaled. */
  flush(): Promise<void>;
  stats(): WriterStats;
  /** Stops the timer, tries to commit everything (up to timeoutMs, default 5000), journals whatever is left. */
  close(opts?: { timeoutMs?: number }): Promise<void>;
}

interface Segment {
  seq: number;
  path: string;
  header: SegmentHeader;
  /** Records in the file (good lines). */
  count: number;
  /** Records [0, committed) are confirmed by MySQL. */
  committed: number;
  bytes: number;
  /** Rows held in memory (the active segment, or the one being replayed); null → read from disk. rows[0] is record number `base`. */
  rows: Row[] | null;
  base: number;
  createdAt: number;
  /** Open for appends (only the active segment). */
  fh: FileHandle | null;
  sealed: boolean;
}

// Errors that mean "this row is bad", not "the database is unavailable". Everything else is retried.
const ROW_ERRORS = new Set([
  'ER_DATA_TOO_LONG', 'ER_TRUNCATED_WRONG_VALUE', 'ER_TRUNCATED_WRONG_VALUE_FOR_FIELD', 'ER_BAD_NULL_ERROR',
  'ER_WARN_DATA_OUT_OF_RANGE', 'ER_NO_DEFAULT_FOR_FIELD', 'ER_WRONG_VALUE_COUNT_ON_ROW', 'ER_WARN_NULL_TO_NOTNULL',
  'ER_INVALID_CHARACTER_STRING', 'ER_CANNOT_CONVERT_STRING', 'ER_WRONG_VALUE', 'ER_CHECK_CONSTRAINT_VIOLATED',
]);

function isRowError(e: unknown): boolean {
  const code = (e as { code?: unknown }).code;
  return typeof code === 'string' && ROW_ERRORS.has(code);
}

const DOWN_LOG_EVERY_MS = 60_000;
const STREAM_NAME = /^[A-Za-z0-9_-]{1,64}$/;

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as { code?: string }).code === 'EPERM';
  }
}

class Writer<R> implements BatchWriter<R> {
  readonly name: string;
  private readonly spec: TableSpec<R>;
  private readonly header: SegmentHeader;
  private readonly dir: string;
  private readonly db: Db;
  private readonly log: Logger;
  private readonly metrics: Metrics | undefined;
  private readonly batchSize: number;
  private readonly flushIntervalMs: number;
  private readonly fsync: FsyncPolicy;
  private readonly writeTimeoutMs: number;
  private readonly retryMinMs: number;
  private readonly retryMaxMs: number;
  private readonly maxQueue: number;
  private readonly segmentMaxBytes: number;
  private readonly idleRotateMs: number;

  // Memory queue: records mem[head..] are pending (head index keeps shift O(1)). They are mapped to rows
  // when journaled, off the caller's path, so enqueue() is a push.
  private mem: R[] = [];
  private head = 0;
  private segments: Segment[] = [];
  private active: Segment | null = null;
  private nextSeq = 1;

  private timer: NodeJS.Timeout | undefined;
  private loop: Promise<void> | null = null;
  private again = false;
  private journalLock: Promise<void> = Promise.resolve();
  private journalBrokenUntil = 0;
  private retryAt = 0;
  private backoffMs: number;
  private closing = false;
  private closed = false;
  private closeDeadline = Infinity;
  private downSince = 0;
  private lastDownLog = 0;
  private sqlCache = new Map<string, string>();
  private deadLetterText = '';
  private deadLetterWrite: Promise<void> = Promise.resolve();

  private st = {
    written: 0, duplicates: 0, batches: 0, writeErrors: 0, journalErrors: 0, corruptLines: 0,
    deadLetters: 0, rejected: 0, dropped: 0, lastError: undefined as string | undefined,
  };

  constructor(o: BatchWriterOptions<R>) {
    this.name = o.name;
    this.spec = o.spec;
    this.header = { v: 1, table: o.spec.table, columns: [...o.spec.columns], keyColumns: [...o.spec.keyColumns], onDuplicate: o.spec.onDuplicate ?? 'ignore' };
    this.dir = join(o.journalDir, o.name);
    this.db = o.db;
    this.log = o.log.child({ writer: o.name });
    this.metrics = o.metrics;
    this.batchSize = o.batchSize ?? 500;
    this.flushIntervalMs = o.flushIntervalMs ?? 200;
    this.fsync = o.fsync ?? 'batch';
    this.writeTimeoutMs = o.writeTimeoutMs ?? 10_000;
    this.retryMinMs = o.retryMinMs ?? 250;
    this.retryMaxMs = o.retryMaxMs ?? 15_000;
    this.maxQueue = o.maxQueue ?? 200_000;
    this.segmentMaxBytes = o.segmentMaxBytes ?? 1024 * 1024;
    this.idleRotateMs = o.idleRotateMs ?? 5000;
    this.backoffMs = this.retryMinMs;
  }

  // ---- start-up: adopt segments left by a previous run ----

  async open(): Promise<void> {
    try {
      await mkdir(this.dir, { recursive: true });
      await access(this.dir, fsConstants.W_OK | fsConstants.R_OK);
    } catch (e) {
      throw new GwError('GW_ERR_JOURNAL', `journal directory ${this.dir} is not usable: ${describeError(e)}`, { cause: e });
    }
    await this.lock();
    try {
      await this.adopt();
    } catch (e) {
      await unlink(join(this.dir, 'LOCK')).catch(() => undefined);
      throw new GwError('GW_ERR_JOURNAL', `cannot read the journal in ${this.dir}: ${describeError(e)}`, { cause: e });
    }
    this.timer = setInterval(() => this.tick(), this.flushIntervalMs);
    this.timer.unref();
    this.gauges();
    if (this.segments.length > 0) this.kick();
  }

  private async adopt(): Promise<void> {
    const names = (await readdir(this.dir)).map((n) => ({ n, seq: segmentSeq(n) })).filter((x): x is { n: string; seq: number } => x.seq !== undefined);
    names.sort((a, b) => a.seq - b.seq);
    for (const { n, seq } of names) {
      this.nextSeq = Math.max(this.nextSeq, seq + 1);
      const path = join(this.dir, n);
      const text = await readFile(path, 'utf8');
      const parsed = parseSegment(text);
      if (parsed.bad > 0) {
        this.st.corruptLines += parsed.bad;
        this.metrics?.journalCorruptLines.inc({ writer: this.name }, parsed.bad);
        this.log.warn({ file: path, skipped: parsed.bad, torn: parsed.torn, kept: parsed.rows.length }, 'journal: damaged lines skipped');
      }
      if (!parsed.header) {
        if (text.length > 0) {
          // Rows cannot be placed without their header: keep the file for a person, out of the replay path.
          const aside = `${path}.${Date.now()}.bad`;
          await rename(path, aside);
          this.log.error({ file: aside }, 'journal: segment header damaged; file set aside');
        } else {
          await unlink(path);
        }
        continue;
      }
      if (parsed.rows.length === 0) {
        await unlink(path);
        continue;
      }
      this.segments.push({ seq, path, header: parsed.header, count: parsed.rows.length, committed: 0, bytes: Buffer.byteLength(text), rows: null, base: 0, createdAt: Date.now(), fh: null, sealed: true });
    }
    if (this.segments.length > 0) {
      this.log.info({ segments: this.segments.length, records: this.journalRecords() }, 'journal: replaying records left by a previous run');
    }
  }

  // ---- the caller's side ----

  enqueue(record: R): void {
    if (this.closed) {
      this.st.rejected++;
      this.log.error({ table: this.spec.table }, 'record enqueued after close: not written');
      return;
    }
    if (this.mem.length - this.head >= this.maxQueue) {
      this.st.dropped++;
      if (this.st.dropped === 1 || this.st.dropped % 1000 === 0) {
        this.log.error({ dropped: this.st.dropped, record: record as unknown }, 'memory queue full and journal not writable: record dropped');
      }
      return;
    }
    this.mem.push(record);
    if (this.mem.length - this.head >= this.batchSize) this.kick();
  }

  async flush(): Promise<void> {
    this.kick();
    while (this.loop) await this.loop;
  }

  stats(): WriterStats {
    let bytes = 0;
    for (const s of this.segments) bytes += s.bytes;
    return {
      name: this.name, table: this.spec.table, queued: this.mem.length - this.head, journalRecords: this.journalRecords(),
      journalBytes: bytes, journalSegments: this.segments.length, written: this.st.written, duplicates: this.st.duplicates,
      batches: this.st.batches, writeErrors: this.st.writeErrors, journalErrors: this.st.journalErrors,
      corruptLines: this.st.corruptLines, deadLetters: this.st.deadLetters, rejected: this.st.rejected, dropped: this.st.dropped,
      dbUp: this.downSince === 0, lastError: this.st.lastError,
    };
  }

  async close(opts: { timeoutMs?: number } = {}): Promise<void> {
    if (this.closing) {
      while (this.loop) await this.loop;
      return;
    }
    this.closing = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.closeDeadline = Date.now() + (opts.timeoutMs ?? 5000);
    while (this.loop) await this.loop;
    this.retryAt = 0; // one last attempt even inside a backoff
    this.journalBrokenUntil = 0;
    this.kick();
    while (this.loop) await this.loop;
    this.closed = true;
    await this.unlockAfter(async () => this.closeJournal());
  }

  private async closeJournal(): Promise<void> {
    // Whatever MySQL did not take is in the journal for the next start (or, journal broken, lost: say so).
    await this.journalMemory();
    await this.deadLetterWrite;
    const left = this.mem.length - this.head;
    if (left > 0) this.log.error({ lost: left }, 'close: records could be written neither to MySQL nor to the journal');
    for (const s of [...this.segments]) {
      if (s.fh) {
        await s.fh.close().catch(() => undefined);
        s.fh = null;
      }
      s.sealed = true;
      if (s.committed >= s.count) await this.dropSegment(s);
    }
    this.active = null;
    const st = this.stats();
    if (st.journalRecords > 0) this.log.warn({ journalRecords: st.journalRecords }, 'close: records left in the journal; replayed at next start');
    this.gauges();
  }

  // ---- one process per stream directory ----

  /**
   * Two processes on one stream directory would replay (and delete) each other's segments while they are
   * still being appended to. A LOCK file holding the owner's pid keeps a second writer out; a lock left by a
   * process that no longer exists (a crash) is taken over. Advisory: it guards against a second gateway started
   * on the same directory, not against a writer opened twice in one process.
   */
  private async lock(): Promise<void> {
    const path = join(this.dir, 'LOCK');
    for (let tries = 0; tries < 2; tries++) {
      try {
        const fh = await open(path, 'wx');
        await fh.write(`${process.pid}\n`);
        await fh.close();
        return;
      } catch (e) {
        if ((e as { code?: string }).code !== 'EEXIST') throw new GwError('GW_ERR_JOURNAL', `cannot lock ${path}: ${describeError(e)}`, { cause: e });
      }
      const owner = Number((await readFile(path, 'utf8').catch(() => '')).trim());
      if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && pidAlive(owner)) {
        throw new GwError('GW_ERR_JOURNAL', `journal directory ${this.dir} is in use by process ${owner}`);
      }
      // Our own pid: a lock left by an earlier life of this pid (a container's pid 1 restarting); take it over.
      this.log.warn({ file: path, owner }, 'journal: taking over the lock of a process that is gone');
      await unlink(path).catch(() => undefined);
    }
    throw new GwError('GW_ERR_JOURNAL', `cannot lock ${path}`);
  }

  private async unlockAfter(fn: () => Promise<void>): Promise<void> {
    try {
      await fn();
    } finally {
      await unlink(join(this.dir, 'LOCK')).catch(() => undefined);
    }
  }

  // ---- the loop ----

  private tick(): void {
    const now = Date.now();
    const a = this.active;
    const idleDone = a !== null && a.count > 0 && a.committed >= a.count && now - a.createdAt >= this.idleRotateMs;
    if (this.mem.length > this.head || (this.journalRecords() > 0 && now >= this.retryAt) || idleDone) this.kick();
    // While an INSERT hangs, keep moving memory to disk so a slow MySQL never grows the heap.
    if (this.loop && this.mem.length > this.head) {
      this.journalMemory().catch((e: unknown) => this.log.error({ err: describeError(e) }, 'journal: append failed'));
    }
  }

  private kick(): void {
    if (this.loop) {
      this.again = true;
      return;
    }
    this.loop = this.run()
      .catch((e: unknown) => {
        this.log.error({ err: describeError(e) }, 'writer loop failed; will retry');
        this.retryAt = Date.now() + this.retryMinMs;
      })
      .finally(() => {
        this.loop = null;
        this.gauges();
        if (this.again && !this.closed) {
          this.again = false;
          this.kick();
        }
      });
  }

  private async run(): Promise<void> {
    this.again = false;
    for (;;) {
      await this.journalMemory();
      if (this.closing && Date.now() >= this.closeDeadline) return;
      if (Date.now() < this.retryAt) return;
      const seg = this.segments.find((s) => s.committed < s.count);
      if (seg) {
        if (!(await this.writeFromSegment(seg))) return;
        continue;
      }
      // Journal unusable: write memory straight to MySQL (after the journal backlog, so order holds).
      if (this.mem.length > this.head && Date.now() < this.journalBrokenUntil) {
        const recs = this.mem.slice(this.head, this.head + this.batchSize);
        const rows = this.toRows(recs);
        if (rows.length > 0 && !(await this.insert(this.header, rows))) return;
        this.takeMem(recs.length);
        continue;
      }
      // Idle and fully committed: retire the active segment, so a restart has no committed rows to replay.
      const a = this.active;
      if (a && a.count > 0 && a.committed >= a.count && Date.now() - a.createdAt >= this.idleRotateMs) {
        await this.withJournal(() => this.seal(a, true));
      }
      return;
    }
  }

  private async writeFromSegment(seg: Segment): Promise<boolean> {
    if (!seg.rows) {
      try {
        const parsed = parseSegment(await readFile(seg.path, 'utf8'));
        seg.rows = parsed.rows;
        seg.base = 0;
        // A write torn by an I/O error may have left more (or fewer) good lines than were counted.
        seg.count = parsed.rows.length;
      } catch (e) {
        this.st.journalErrors++;
        this.st.lastError = describeError(e);
        if ((e as { code?: string }).code === 'ENOENT') {
          // Removed by hand: nothing left to replay; say how much was lost rather than retry forever.
          this.log.error({ file: seg.path, lost: seg.count - seg.committed }, 'journal: segment disappeared before it was replayed');
          seg.committed = seg.count;
          await this.dropSegment(seg);
          return true;
        }
        this.log.error({ err: this.st.lastError, file: seg.path }, 'journal: cannot read segment; will retry');
        this.retryAt = Date.now() + this.retryMaxMs;
        return false;
      }
      if (seg.committed >= seg.count) {
        if (seg.sealed) await this.dropSegment(seg);
        return true;
      }
    }
    const from = seg.committed - seg.base;
    const rows = seg.rows.slice(from, from + this.batchSize);
    if (rows.length === 0) {
      // Memory and count disagree (never expected): trust the file.
      seg.rows = null;
      if (seg.sealed) return true;
      await this.withJournal(() => this.seal(seg, true));
      return true;
    }
    if (!(await this.insert(seg.header, rows))) return false;
    seg.committed += rows.length;
    if (seg.committed >= seg.count) {
      // Committed rows need not stay in memory; the file keeps them until the segment is deleted.
      if (seg.rows && !seg.sealed) {
        seg.rows = [];
        seg.base = seg.count;
      }
      if (seg.sealed) await this.dropSegment(seg);
      else if (seg.bytes >= this.segmentMaxBytes) await this.withJournal(() => this.seal(seg, true));
    }
    return true;
  }

  /** One multi-row INSERT. True when MySQL has the rows (or they went to the dead-letter file). */
  private async insert(h: SegmentHeader, rows: Row[]): Promise<boolean> {
    try {
      const affected = await this.query(h, rows);
      this.wrote(rows.length, affected, h);
      return true;
    } catch (e) {
      if (isRowError(e)) return this.insertOneByOne(h, rows);
      this.failed(e);
      return false;
    }
  }

  private async insertOneByOne(h: SegmentHeader, rows: Row[]): Promise<boolean> {
    for (const row of rows) {
      try {
        this.wrote(1, await this.query(h, [row]), h);
      } catch (e) {
        if (!isRowError(e)) {
          this.failed(e);
          return false; // the whole batch is retried; rows already in are ignored as duplicates
        }
        try {
          await appendFile(join(this.dir, 'dead-letter.jsonl'), `${JSON.stringify({ at: new Date().toISOString(), table: h.table, columns: h.columns, row, error: describeError(e) })}\n`);
        } catch (e2) {
          this.failed(e2);
          return false;
        }
        this.st.deadLetters++;
        this.metrics?.dbWriteDeadLetters.inc({ writer: this.name });
        this.log.error({ table: h.table, row, err: describeError(e) }, 'row refused by MySQL: kept in dead-letter.jsonl');
      }
    }
    return true;
  }

  private async query(h: SegmentHeader, rows: Row[]): Promise<number> {
    const key = `${rows.length}|${h.table}|${h.onDuplicate}|${h.columns.join(',')}`;
    let sql = this.sqlCache.get(key);
    if (!sql) {
      sql = batchInsertSql(h.table, h.columns, h.keyColumns, rows.length, h.onDuplicate);
      if (this.sqlCache.size > 64) this.sqlCache.clear();
      this.sqlCache.set(key, sql);
    }
    const values: unknown[] = [];
    for (const r of rows) for (const v of r) values.push(v);
    const timeout = this.closing ? Math.max(100, Math.min(this.writeTimeoutMs, this.closeDeadline - Date.now())) : this.writeTimeoutMs;
    let timer: NodeJS.Timeout | undefined;
    try {
      const res = await Promise.race([
        this.db.query({ sql, values, timeout }),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(Object.assign(new Error(`INSERT took longer than ${timeout} ms`), { code: 'WRITE_TIMEOUT' })), timeout + 250);
        }),
      ]);
      const header = res[0] as { affectedRows?: number };
      return header.affectedRows ?? rows.length;
    } finally {
      clearTimeout(timer);
    }
  }

  private wrote(n: number, affected: number, h: SegmentHeader): void {
    this.st.written += n;
    this.st.batches++;
    if (h.onDuplicate === 'ignore' && affected < n) this.st.duplicates += n - affected;
    this.metrics?.dbWriteBatches.inc({ writer: this.name, result: 'ok' });
    this.metrics?.dbWriteRows.inc({ writer: this.name }, n);
    this.backoffMs = this.retryMinMs;
    if (this.downSince !== 0) {
      this.log.info({ downMs: Date.now() - this.downSince, journalRecords: this.journalRecords() }, 'MySQL writes succeed again; replaying the journal');
      this.downSince = 0;
    }
  }

  private failed(e: unknown): void {
    const now = Date.now();
    this.st.writeErrors++;
    this.st.lastError = describeError(e);
    this.metrics?.dbWriteBatches.inc({ writer: this.name, result: 'error' });
    this.retryAt = now + this.backoffMs;
    this.backoffMs = Math.min(this.retryMaxMs, this.backoffMs * 2);
    if (this.downSince === 0) {
      this.downSince = now;
      this.lastDownLog = now;
      this.log.warn({ err: this.st.lastError, code: (e as { code?: unknown }).code }, 'MySQL write failed; records stay in the journal and are retried');
    } else if (now - this.lastDownLog >= DOWN_LOG_EVERY_MS) {
      this.lastDownLog = now;
      this.log.warn({ err: this.st.lastError, downMs: now - this.downSince, journalRecords: this.journalRecords() }, 'MySQL still failing');
    }
  }

  // ---- journal ----

  private withJournal<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.journalLock.then(fn);
    this.journalLock = p.then(() => undefined, () => undefined);
    return p;
  }

  /**
   * Appends everything in memory to the journal: chunks of a few batches, one write each, one fdatasync at the end
   * (so a burst costs one sync, and no single write or segment grows without bound).
   */
  private journalMemory(): Promise<void> {
    return this.withJournal(async () => {
      const chunk = Math.max(1000, this.batchSize * 4);
      let wrote = false;
      while (this.mem.length > this.head && Date.now() >= this.journalBrokenUntil) {
        const n = Math.min(chunk, this.mem.length - this.head);
        const rows = this.toRows(this.mem.slice(this.head, this.head + n));
        if (rows.length === 0) {
          this.takeMem(n);
          continue;
        }
        let seg = this.active;
        let text = '';
        let bytes = 0;
        try {
          if (!seg) seg = await this.newSegment();
          if (seg.count === 0 && seg.bytes === 0) text += encodeLine(seg.header);
          for (const r of rows) text += encodeLine(r);
          bytes = Buffer.byteLength(text);
          await seg.fh!.write(text);
          // Sync before the segment is closed, and once the queue is drained.
          if (this.fsync === 'batch' && (seg.bytes + bytes >= this.segmentMaxBytes || this.mem.length - this.head <= n)) {
            await seg.fh!.datasync();
          }
        } catch (e) {
          this.st.journalErrors++;
          this.st.lastError = describeError(e);
          this.journalBrokenUntil = Date.now() + this.retryMaxMs;
          this.log.error({ err: this.st.lastError, dir: this.dir }, 'journal write failed; writing to MySQL directly until it works again');
          // A failed append may have left part of a line: never append after it.
          if (seg) await this.seal(seg, false).catch(() => undefined);
          break;
        }
        wrote = true;
        seg.bytes += bytes;
        seg.count += rows.length;
        if (seg.rows) for (const r of rows) seg.rows.push(r);
        this.takeMem(n);
        if (seg.bytes >= this.segmentMaxBytes) await this.seal(seg, seg.committed >= seg.count);
      }
      if (wrote) this.gauges();
    });
  }

  private async newSegment(): Promise<Segment> {
    const seq = this.nextSeq++;
    const path = join(this.dir, segmentName(seq));
    const fh = await open(path, 'ax');
    if (this.fsync === 'batch') {
      // Make the new file's directory entry durable too.
      const d = await open(this.dir, 'r');
      await d.sync().catch(() => undefined);
      await d.close();
    }
    const seg: Segment = { seq, path, header: this.header, count: 0, committed: 0, bytes: 0, rows: [], base: 0, createdAt: Date.now(), fh, sealed: false };
    this.segments.push(seg);
    this.active = seg;
    return seg;
  }

  /** No more appends to this segment; delete it when every row is committed. Call under the journal lock. */
  private async seal(seg: Segment, dropIfDone: boolean): Promise<void> {
    if (this.active === seg) this.active = null;
    seg.sealed = true;
    if (seg.fh) {
      const fh = seg.fh;
      seg.fh = null;
      await fh.close().catch(() => undefined);
    }
    // count 0: nothing of it was acknowledged (a failed first append); its rows are still in memory.
    if (seg.count === 0 || (dropIfDone && seg.committed >= seg.count)) {
      await this.dropSegment(seg);
      return;
    }
    // Keep rows in memory only for the segment being replayed; others are re-read when their turn comes.
    if (this.segments.find((s) => s.committed < s.count) !== seg) seg.rows = null;
    // If the file on disk holds a different number of lines than counted (torn append), re-read it at replay.
    const size = await stat(seg.path).then((s) => s.size, () => seg.bytes);
    if (size !== seg.bytes) {
      seg.bytes = size;
      seg.rows = null;
    }
  }

  private async dropSegment(seg: Segment): Promise<void> {
    const i = this.segments.indexOf(seg);
    if (i >= 0) this.segments.splice(i, 1);
    if (this.active === seg) this.active = null;
    if (seg.fh) {
      await seg.fh.close().catch(() => undefined);
      seg.fh = null;
    }
    await unlink(seg.path).catch((e: unknown) => {
      if ((e as { code?: string }).code !== 'ENOENT') this.log.error({ err: describeError(e), file: seg.path }, 'journal: cannot delete a committed segment');
    });
    this.gauges();
  }

  /** Records → rows; a record the mapper throws on is refused (counted, logged), never retried. */
  private toRows(recs: R[]): Row[] {
    const rows: Row[] = [];
    for (const rec of recs) {
      try {
        rows.push(this.spec.toRow(rec));
      } catch (e) {
        this.st.rejected++;
        this.log.error({ err: describeError(e), record: rec as unknown }, 'record rejected by the row mapper: kept in dead-letter.jsonl');
        let json: string;
        try {
          json = JSON.stringify(rec) ?? String(rec);
        } catch {
          json = JSON.stringify(String(rec));
        }
        this.deadLetterText += `{"at":${JSON.stringify(new Date().toISOString())},"table":${JSON.stringify(this.spec.table)},"record":${json},"error":${JSON.stringify(describeError(e))}}\n`;
      }
    }
    if (this.deadLetterText) {
      const text = this.deadLetterText;
      this.deadLetterText = '';
      this.deadLetterWrite = this.deadLetterWrite
        .then(() => appendFile(join(this.dir, 'dead-letter.jsonl'), text))
        .catch((e: unknown) => this.log.error({ err: describeError(e) }, 'cannot write dead-letter.jsonl'));
    }
    return rows;
  }

  private takeMem(n: number): void {
    this.head += n;
    if (this.head === this.mem.length) {
      this.mem = [];
      this.head = 0;
    } else if (this.head > 4096 && this.head * 2 > this.mem.length) {
      this.mem = this.mem.slice(this.head);
      this.head = 0;
    }
  }

  private journalRecords(): number {
    let n = 0;
    for (const s of this.segments) n += s.count - s.committed;
    return n;
  }

  private gauges(): void {
    const m = this.metrics;
    if (!m) return;
    const s = this.stats();
    m.dbWriteQueueDepth.set({ writer: this.name }, s.queued);
    m.journalRecords.set({ writer: this.name }, s.journalRecords);
    m.journalBytes.set({ writer: this.name }, s.journalBytes);
  }
}

/**
 * Opens a writer: creates <journalDir>/<name>/, adopts segments left by an earlier run (they are replayed
 * first, in order) and starts the flush timer. Throws GW_ERR_JOURNAL only when the directory is unusable;
 * MySQL being down at start is fine (records wait in the journal).
 */
export async function openBatchWriter<R>(opts: BatchWriterOptions<R>): Promise<BatchWriter<R>> {
  if (!STREAM_NAME.test(opts.name)) throw new GwError('GW_ERR_JOURNAL', `writer name "${opts.name}" must be 1-64 letters, digits, "_" or "-"`);
  const w = new Writer(opts);
  await w.open();
  return w;
}
