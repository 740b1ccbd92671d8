// Batch writers on the writer thread, against a real MariaDB: rows land in order with the metrics counted on the
// main thread, an outage is journaled by the thread and replayed once, a mapper failure is dead-lettered, an
// unusable journal directory fails open() with a clear error, and a thread that dies mid-outage loses nothing:
// the writers reopen on the calling thread, adopt the thread's journal and re-queue what it had not journaled.
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDb, type Db } from '../../src/db/pool.js';
import { isGwError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { createMetrics, type Metrics } from '../../src/metrics.js';
import { defineTable, openBatchWriter, WriterThread, type BatchWriter, type BatchWriterOptions } from '../../src/store/index.js';
import { createTestDb, withDatabase, type TestDb } from '../helpers/db.js';
import { PROBE_DDL, probe, probeTable, type ProbeRecord } from '../unit/store/fixtures/probe-table.js';

let t: TestDb;
let user: string;
let writerUrl: string;
let tmp: string;
const pools: Db[] = [];
const threads: WriterThread[] = [];

async function lockWriterAccount(): Promise<void> {
  await t.db.query('ALTER USER ?@? ACCOUNT LOCK', [user, '%']);
  const [procs] = await t.db.query('SELECT ID AS id FROM information_schema.PROCESSLIST WHERE USER = ?', [user]);
  for (const p of procs as Array<{ id: number }>) await t.db.query(`KILL CONNECTION ${Number(p.id)}`).catch(() => undefined);
}

async function unlockWriterAccount(): Promise<void> {
  await t.db.query('ALTER USER ?@? ACCOUNT UNLOCK', [user, '%']);
}

function thread(metrics?: Metrics): WriterThread {
  const th = new WriterThread({ db: { url: writerUrl, poolSize: 2, connectTimeoutMs: 1000 }, log: silentLogger(), metrics });
  threads.push(th);
  return th;
}

async function open(th: WriterThread, dir: string, over: Partial<BatchWriterOptions<ProbeRecord>> = {}): Promise<BatchWriter<ProbeRecord>> {
  const db = createDb({ url: writerUrl, poolSize: 2, connectTimeoutMs: 1000 });
  pools.push(db);
  return openBatchWriter({
    name: 'probe', spec: probeTable, db, journalDir: dir, log: silentLogger(), thread: th,
    batchSize: 100, flushIntervalMs: 20, writeTimeoutMs: 1500, retryMinMs: 50, retryMaxMs: 200, ...over,
  });
}

async function seqsOf(run: string): Promise<number[]> {
  const [rows] = await t.db.query('SELECT seq FROM store_probe WHERE run = ? ORDER BY id', [run]);
  return (rows as Array<{ seq: number }>).map((r) => r.seq);
}

async function until(cond: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 25));
  }
}

const seqs = (n: number, from = 0): number[] => Array.from({ length: n }, (_, i) => from + i);

beforeAll(async () => {
  t = await createTestDb({ seed: false });
  await t.db.query(PROBE_DDL);
  user = `st_${randomBytes(4).toString('hex')}`;
  const password = randomBytes(9).toString('base64url');
  await t.db.query('CREATE USER ?@? IDENTIFIED BY ?', [user, '%', password]);
  await t.db.query(`GRANT SELECT, INSERT, UPDATE ON \`${t.name}\`.store_probe TO ?@?`, [user, '%']);
  writerUrl = withDatabase(t.rootUrl, t.name, { user, password });
  tmp = await mkdtemp(join(tmpdir(), 'a2b-thread-'));
});

afterAll(async () => {
  for (const th of threads) await th.close().catch(() => undefined);
  for (const p of pools) await p.end().catch(() => undefined);
  await t?.db.query('DROP USER IF EXISTS ?@?', [user, '%']).catch(() => undefined);
  await t?.drop();
  await rm(tmp, { recursive: true, force: true });
});

describe('batch writers on the writer thread', () => {
  it('rows land in order; flush() waits for the commit; stats and metrics are kept on the main thread', async () => {
    const metrics = createMetrics();
    const th = thread(metrics);
    const w = await open(th, join(tmp, 'a'), { metrics, flushIntervalMs: 60_000 });
    for (const i of seqs(250)) w.enqueue(probe('thr', i));
    expect(w.stats().queued).toBe(250); // mapped and waiting for the hand-off
    await w.flush();
    expect(await seqsOf('thr')).toEqual(seqs(250));
    const st = w.stats();
    expect(st.written).toBe(250);
    expect(st.queued).toBe(0);
    expect(st.batches).toBeGreaterThanOrEqual(3);
    await w.close();
    expect((await readdir(join(tmp, 'a', 'probe'))).filter((f) => f.endsWith('.jnl'))).toEqual([]);
    const text = await metrics.text();
    expect(text).toMatch(/a2b_db_write_rows_total\{writer="probe"\} 250/);
    expect(text).toMatch(/a2b_writer_thread_up 1/);
    w.enqueue(probe('thr', 999)); // after close: refused, counted
    expect(w.stats().rejected).toBe(1);
    await th.close();
    expect(await metrics.text()).toMatch(/a2b_writer_thread_up 0/);
  });

  it('MySQL refusing the writer: the thread journals the rows and replays each once, in order', async () => {
    const th = thread();
    const w = await open(th, join(tmp, 'b'), { segmentMaxBytes: 4096 });
    await lockWriterAccount();
    for (const i of seqs(300)) w.enqueue(probe('thr-outage', i));
    await w.flush();
    await until(() => w.stats().queued === 0 && w.stats().journalRecords === 300);
    expect(w.stats().dbUp).toBe(false);
    expect(w.stats().writeErrors).toBeGreaterThan(0);
    expect(await seqsOf('thr-outage')).toEqual([]);
    await unlockWriterAccount();
    await until(() => w.stats().journalRecords === 0);
    await w.close();
    expect(await seqsOf('thr-outage')).toEqual(seqs(300));
    await th.close();
  });

  it('a record the row mapper throws on is dead-lettered by the thread; the others land', async () => {
    const th = thread();
    const dir = join(tmp, 'c');
    const picky = defineTable<ProbeRecord>({
      ...probeTable,
      toRow: (r) => {
        if (r.seq === 3) throw new Error('seq 3 is not welcome');
        return probeTable.toRow(r);
      },
    });
    const db = createDb({ url: writerUrl, poolSize: 1 });
    pools.push(db);
    const w = await openBatchWriter({ name: 'probe', spec: picky, db, journalDir: dir, log: silentLogger(), thread: th, flushIntervalMs: 20 });
    for (const i of seqs(5)) w.enqueue(probe('thr-picky', i));
    await w.flush();
    expect(await seqsOf('thr-picky')).toEqual([0, 1, 2, 4]);
    await until(() => w.stats().rejected === 1);
    await until(async () => (await readFile(join(dir, 'probe', 'dead-letter.jsonl'), 'utf8').catch(() => '')).includes('seq 3 is not welcome'));
    const line = JSON.parse((await readFile(join(dir, 'probe', 'dead-letter.jsonl'), 'utf8')).trim()) as { record: ProbeRecord; table: string };
    expect(line.table).toBe('store_probe');
    expect(line.record.seq).toBe(3);
    await w.close();
    await th.close();
  });

  it('an unusable journal directory fails open() with an error naming it', async () => {
    const th = thread();
    const file = join(tmp, 'not-a-dir');
    await writeFile(file, 'x');
    const err = await open(th, file).then(() => undefined, (e: unknown) => e);
    expect(isGwError(err, 'GW_ERR_JOURNAL')).toBe(true);
    expect((err as Error).message).toContain(join(file, 'probe'));
    expect(th.running).toBe(true); // the thread carries on for other writers
    await th.close();
  });

  it('the thread dying mid-outage loses nothing: the writer reopens here, adopts its journal and re-queues the rest', async () => {
    const metrics = createMetrics();
    const th = thread(metrics);
    const dir = join(tmp, 'd');
    const w = await open(th, dir, { metrics, flushIntervalMs: 100 });
    for (const i of seqs(50)) w.enqueue(probe('thr-crash', i));
    await w.flush();
    await lockWriterAccount();
    for (const i of seqs(200, 50)) w.enqueue(probe('thr-crash', i));
    await w.flush(); // journaled by the thread
    for (const i of seqs(150, 250)) w.enqueue(probe('thr-crash', i)); // some handed over, some not, none acknowledged
    th.handoff();
    await th.crashForTest();
    expect(th.running).toBe(false);
    expect(await metrics.text()).toMatch(/a2b_writer_thread_up 0/);
    for (const i of seqs(100, 400)) w.enqueue(probe('thr-crash', i)); // after the crash, straight to the local writer
    await until(() => w.stats().journalRecords > 0 && w.stats().queued === 0);
    await unlockWriterAccount();
    await until(() => w.stats().journalRecords === 0 && w.stats().queued === 0);
    await w.flush();
    const got = await seqsOf('thr-crash');
    expect(got.length).toBe(500);
    expect([...got].sort((a, b) => a - b)).toEqual(seqs(500));
    expect(w.stats().written).toBeGreaterThanOrEqual(500); // thread's count plus the local writer's
    await w.close();
    await th.close();
    expect((await readdir(join(dir, 'probe'))).filter((f) => f.endsWith('.jnl'))).toEqual([]);
  });

  it('close() of the thread closes writers still open and journals what MySQL did not take', async () => {
    const th = thread();
    const dir = join(tmp, 'e');
    await mkdir(dir, { recursive: true });
    const w = await open(th, dir, { flushIntervalMs: 60_000 });
    await lockWriterAccount();
    for (const i of seqs(40)) w.enqueue(probe('thr-end', i));
    await th.close();
    await unlockWriterAccount();
    const files = (await readdir(join(dir, 'probe'))).filter((f) => f.endsWith('.jnl'));
    expect(files.length).toBeGreaterThan(0);
    // The next start replays them.
    const th2 = thread();
    const w2 = await open(th2, dir);
    await until(() => w2.stats().journalRecords === 0);
    await w2.close();
    await th2.close();
    expect(await seqsOf('thr-end')).toEqual(seqs(40));
    await chmod(dir, 0o755);
  });
});
