// The local state file (dialog.stateDir/dialogs.jsonl): an append-only log of dialog upserts and deletions,
// one JSON object per line, compacted by rewriting it (temp file + fsync + rename) when it grows.
// Writes are asynchronous and coalesced (one write per ~10 ms burst), in order, one at a time. A write that
// has returned is in the kernel's page cache, so it survives SIGKILL of the gateway (not a power cut:
// gw_dialog, written within dialog.dbFlushMs, covers that). A torn last line after a crash is skipped.
import { mkdir, open, readFile, rename, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { isDialogRecord, type DialogRecord } from './record.js';

export const STATE_FILE = 'dialogs.jsonl';

/** Lines serialised per step of a compaction (~1 ms of work at ~1 KB per record). */
const COMPACT_CHUNK = 200;

export type StateLine = { op: 'up'; rec: DialogRecord } | { op: 'del'; key: string; updated: number };

export interface LoadedState {
  records: Map<string, DialogRecord>;
  /** Deleted dialogs whose deletion gw_dialog may not have seen yet: key → time of deletion. */
  tombstones: Map<string, number>;
  badLines: number;
}

export interface StateFileOptions {
  dir: string;
  log: Logger;
  metrics?: Metrics;
  /** Coalescing delay of appends (ms). */
  delayMs?: number;
}

/** What Dialogs needs from its local store (StateFile; an in-memory double in unit tests). */
export interface DialogStateStore {
  readonly path: string;
  readonly lines: number;
  load(): Promise<LoadedState>;
  /** `recJson`: JSON.stringify(line.rec), when the caller has it already (an 'up' line is serialised once). */
  append(line: StateLine, recJson?: string): void;
  flush(): Promise<void>;
  compact(lines: StateLine[]): Promise<void>;
  close(): Promise<void>;
}

export class StateFile implements DialogStateStore {
  readonly path: string;
  private readonly delayMs: number;
  private handle: FileHandle | undefined;
  private pending: string[] = [];
  private timer: NodeJS.Timeout | undefined;
  private chain: Promise<void> = Promise.resolve();
  private linesInFile = 0;
  private bytes = 0;
  private failing = false;
  private closed = false;

  constructor(private readonly opts: StateFileOptions) {
    this.path = join(opts.dir, STATE_FILE);
    this.delayMs = opts.delayMs ?? 10;
  }

  /** Lines in the file since the last compaction (drives compaction). */
  get lines(): number {
    return this.linesInFile + this.pending.length;
  }

  /** Replays the file: the last operation on a key wins (the newer by `updated` when both are known). */
  async load(): Promise<LoadedState> {
    const out: LoadedState = { records: new Map(), tombstones: new Map(), badLines: 0 };
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return out;
      throw e;
    }
    let n = 0;
    for (const line of text.split('\n')) {
      if (line.length === 0) continue;
      n++;
      let parsed: StateLine;
      try {
        parsed = JSON.parse(line) as StateLine;
      } catch {
        out.badLines++;
        continue;
      }
      if (parsed.op === 'up' && isDialogRecord(parsed.rec)) {
        const rec = parsed.rec;
        const dead = out.tombstones.get(rec.key);
        if (dead !== undefined && dead > rec.updated) continue;
        out.tombstones.delete(rec.key);
        out.records.set(rec.key, rec);
      } else if (parsed.op === 'del' && typeof parsed.key === 'string' && typeof parsed.updated === 'number') {
        const live = out.records.get(parsed.key);
        if (live && live.updated > parsed.updated) continue;
        out.records.delete(parsed.key);
        out.tombstones.set(parsed.key, parsed.updated);
      } else out.badLines++;
    }
    this.linesInFile = n;
    this.bytes = Buffer.byteLength(text);
    if (out.badLines > 0) this.opts.log.warn({ path: this.path, badLines: out.badLines }, 'dialog state file: unreadable lines skipped');
    return out;
  }

  /** Queues a line; it reaches the file within delayMs (plus the write itself). */
  append(line: StateLine, recJson?: string): void {
    if (this.closed) return;
    this.pending.push(line.op === 'up' && recJson !== undefined ? `{"op":"up","rec":${recJson}}` : JSON.stringify(line));
    if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        void this.flush();
      }, this.delayMs);
    }
  }

  /** Writes what is queued now; resolves when it (and every earlier write) is in the file. */
  flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.pending.length > 0) {
      const lines = this.pending;
      this.pending = [];
      this.chain = this.chain.then(() => this.write(lines));
    }
    return this.chain;
  }

  /**
   * Replaces the file with exactly these lines (atomic rename); appends queued meanwhile are written after it.
   * Serialised and written COMPACT_CHUNK lines at a time, the loop free between chunks: in one go, 750 live calls
   * were a ~5 ms stall every few seconds and 90 000 (two-minute calls at 750/s) would be most of a second. A
   * record changed or deleted while its chunk waits is serialised as it is then, and its newer line is appended
   * after the rename anyway: replay keeps the last.
   */
  compact(lines: StateLine[]): Promise<void> {
    this.chain = this.chain.then(() => this.rewrite(lines));
    return this.flush();
  }

  async close(): Promise<void> {
    await this.flush();
    this.closed = true;
    const h = this.handle;
    this.handle = undefined;
    await h?.close().catch(() => undefined);
  }

  private async ensureOpen(): Promise<FileHandle> {
    if (this.handle) return this.handle;
    await mkdir(this.opts.dir, { recursive: true });
    this.handle = await open(this.path, 'a');
    return this.handle;
  }

  private async write(lines: string[]): Promise<void> {
    const text = `${lines.join('\n')}\n`;
    try {
      const h = await this.ensureOpen();
      await h.write(text);
      this.linesInFile += lines.length;
      this.bytes += Buffer.byteLength(text);
      this.gauge();
      if (this.failing) this.opts.log.info({ path: this.path }, 'dialog state file writable again');
      this.failing = false;
    } catch (e) {
      // Keep the lines for the next attempt, in order; log once per outage.
      this.pending = lines.concat(this.pending);
      if (!this.failing) this.opts.log.error({ path: this.path, err: (e as Error).message }, 'dialog state file write failed; will retry');
      this.failing = true;
      if (!this.timer && !this.closed) {
        this.timer = setTimeout(() => {
          this.timer = undefined;
          void this.flush();
        }, 1000);
      }
    }
  }

  private async rewrite(lines: StateLine[]): Promise<void> {
    const tmp = `${this.path}.tmp`;
    try {
      await mkdir(this.opts.dir, { recursive: true });
      const h = await open(tmp, 'w');
      let bytes = 0;
      try {
        for (let i = 0; i < lines.length; i += COMPACT_CHUNK) {
          let text = '';
          const end = Math.min(lines.length, i + COMPACT_CHUNK);
          for (let j = i; j < end; j++) text += `${JSON.stringify(lines[j])}\n`;
          bytes += Buffer.byteLength(text);
          await h.write(text); // the loop runs other work while the thread pool writes
        }
        await h.datasync();
      } finally {
        await h.close();
      }
      const old = this.handle;
      this.handle = undefined;
      await old?.close().catch(() => undefined);
      await rename(tmp, this.path);
      this.linesInFile = lines.length;
      this.bytes = bytes;
      this.gauge();
    } catch (e) {
      // The old file is still whole and still correct (appends go on to it): compaction is only an optimisation.
      this.opts.log.error({ path: this.path, err: (e as Error).message }, 'dialog state file compaction failed');
    }
  }

  private gauge(): void {
    this.opts.metrics?.journalBytes.set({ writer: 'dialog' }, this.bytes);
    this.opts.metrics?.journalRecords.set({ writer: 'dialog' }, this.linesInFile);
  }
}
