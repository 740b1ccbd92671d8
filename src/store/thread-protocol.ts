// Messages between the main thread and the writer thread (store/thread.ts ↔ store/thread-host.ts).
import type { SegmentHeader } from './journal.js';
import type { Row } from './spec.js';
import type { FsyncPolicy, WriterStats } from './writer.js';

/** What the writer thread needs to open a writer: plain data (a spec's row mapper stays on the main thread). */
export interface HostedWriterSpec {
  name: string;
  header: Pick<SegmentHeader, 'table' | 'columns' | 'keyColumns' | 'onDuplicate'>;
  journalDir: string;
  batchSize?: number;
  flushIntervalMs?: number;
  fsync?: FsyncPolicy;
  writeTimeoutMs?: number;
  retryMinMs?: number;
  retryMaxMs?: number;
  maxQueue?: number;
  segmentMaxBytes?: number;
  idleRotateMs?: number;
}

export interface ThreadData {
  db: { url: string; poolSize?: number; connectTimeoutMs?: number };
  logLevel: string;
  statsMs: number;
}

export type ToHost =
  | { t: 'open'; id: number; w: number; spec: HostedWriterSpec }
  /** Rows for several writers, in enqueue order per writer. */
  | { t: 'rows'; batches: Array<[number, Row[]]> }
  /** A record the row mapper threw on: dead-lettered by the writer. */
  | { t: 'refuse'; w: number; json: string; reason: string }
  | { t: 'flush'; id: number; w: number }
  | { t: 'close'; id: number; w: number; timeoutMs?: number }
  | { t: 'end'; id: number };

export interface HostedStats { w: number; stats: WriterStats; taken: number }

export type FromHost =
  | { t: 'reply'; id: number; ok: true; state?: HostedStats }
  | { t: 'reply'; id: number; ok: false; code: string; message: string }
  | { t: 'stats'; list: HostedStats[] }
  /** One pino line (JSON) of the writer thread, re-logged by the main thread's logger. */
  | { t: 'log'; line: string };
