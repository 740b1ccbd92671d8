// The batched writer against a real MariaDB: batches land, an outage (account locked, connections killed) and a
// hung INSERT (table locked) lose nothing and duplicate nothing, a SIGKILLed process's journal replays exactly
// once with its torn last line skipped, and close() flushes.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFile, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDb, type Db } from '../../src/db/pool.js';
import { silentLogger } from '../../src/log.js';
import { createMetrics } from '../../src/metrics.js';
import { openBatchWriter, type BatchWriter, type BatchWriterOptions } from '../../src/store/index.js';
import { createTestDb, withDatabase, type TestDb } from '../helpers/db.js';
import { PROBE_DDL, probe, probeTable, type ProbeRecord } from '../unit/store/fixtures/probe-table.js';

let t: TestDb;
let user: string;
let writerUrl: string;
let tmp: string;
const pools: Db[] = [];

async function lockWriterAccount(): Promise<void> {
  await t.db.query('ALTER USER ?@? ACCOUNT LOCK', [user, '%']);
  const [procs] = await t.db.query('SELECT ID AS id FROM information_schema.PROCESSLIST WHERE USER = ?', [user]);
  for (const p of procs as Array<{ id: number }>) await t.db.query(`KILL CONNECTION ${Number(p.id)}`).catch(() => undefined);
}

async function unlockWriterAccount(): Promise<void> {
  await t.db.query('ALTER USER ?@? ACCOUNT UNLOCK', [user, '%']);
}

function writerPool(): Db {
  const db = createDb({ url: writerUrl, poolSize: 2, connectTimeoutMs: 1000 });
  pools.push(db);
  return db;
}

async function open(dir: string, over: Partial<BatchWriterOptions<ProbeRecord>> = {}): Promise<BatchWriter<ProbeRecord>> {
  return openBatchWriter({
    name: 'probe', spec: probeTable, db: writerPool(), journalDir: dir, log: silentLogger(),
    batchSize: 100, flushIntervalMs: 20, writeTimeoutMs: 1500, retryMinMs: 50, retryMaxMs: 200, ...over,
  });
}

async function rowsOf(run: string): Promise<Array<{ seq: number; payload: string }>> {
  const [rows] = await t.db.query('SELECT seq, payload FROM store_probe WHERE run = ? ORDER BY id', [run]);
  return rows as Array<{ seq: number; payload: string }>;
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
  user = `sw_${randomBytes(4).toString('hex')}`;
  const password = randomBytes(9).toString('base64url');
  await t.db.query('CREATE USER ?@? IDENTIFIED BY ?', [user, '%', password]);
  await t.db.query(`GRANT SELECT, INSERT, UPDATE ON \`${t.name}\`.store_probe TO ?@?`, [user, '%']);
  writerUrl = withDatabase(t.rootUrl, t.name, { user, password });
  tmp = await mkdtemp(join(tmpdir(), 'a2b-store-'));
});

afterAll(async () => {
  for (const p of pools) await p.end().catch(() => undefined);
  await t?.db.query('DROP USER IF EXISTS ?@?', [user, '%']).catch(() => undefined);
  await t?.drop();
  await rm(tmp, { recursive: true, force: true });
});

describe('batched writer on MariaDB', () => {
  it('writes records as multi-row batches, in order, and leaves no journal behind', async () => {
    const metrics = createMetrics();
    const w = await open(join(tmp, 'a'), { metrics, flushIntervalMs: 60_000 });
    for (const i of seqs(250)) w.enqueue(probe('batched', i));
    await w.flush();
    await w.close();
    const rows = await rowsOf('batched');
    expect(rows.map((r) => r.seq)).toEqual(seqs(250));
    expect(rows[7]!.payload).toBe('p7 "quoted"\nline\u00e9');
    const st = w.stats();
    expect(st.written).toBe(250);
    expect(st.batches).toBeGreaterThanOrEqual(3);
    expect(st.batches).toBeLessThanOrEqual(4);
    expect(st.journalRecords).toBe(0);
    expect((await readdir(join(tmp, 'a', 'probe'))).filter((f) => f.endsWith('.jnl'))).toEqual([]);
    const text = await metrics.text();
    expect(text).toMatch(/a2b_db_write_rows_total\{writer="probe"\} 250/);
    expect(text).toMatch(/a2b_journal_records\{writer="probe"\} 0/);
  });

  it('MySQL refusing the writer mid-run: records wait in the journal and each lands exactly once, in order', async () => {
    const w = await open(join(tmp, 'b'), { segmentMaxBytes: 4096 });
    for (const i of seqs(100)) w.enqueue(probe('outage', i));
    await w.flush();
    expect(await rowsOf('outage')).toHaveLength(100);

    await lockWriterAccount();
    for (const i of seqs(300, 100)) {
      w.enqueue(probe('outage', i));
      if (i % 50 === 0) await new Promise((r) => setTimeout(r, 5));
    }
    await w.flush();
    await until(() => w.stats().queued === 0 && w.stats().journalRecords === 300);
    const down = w.stats();
    expect(down.dbUp).toBe(false);
    expect(down.writeErrors).toBeGreaterThan(0);
    expect(down.journalSegments).toBeGreaterThan(1); // small segments: replay crosses files
    expect(down.journalBytes).toBeGreaterThan(0);
    expect(await rowsOf('outage')).toHaveLength(100);

    await unlockWriterAccount();
    for (const i of seqs(50, 400)) w.enqueue(probe('outage', i)); // newer records queue behind the backlog
    await until(() => w.stats().journalRecords === 0 && w.stats().queued === 0);
    await w.close();
    expect((await rowsOf('outage')).map((r) => r.seq)).toEqual(seqs(450));
    expect(w.stats().dbUp).toBe(true);
    expect(w.stats().journalSegments).toBe(0);
  });

  it('an INSERT that hangs (table locked) times out into the journal; nothing is doubled when it lands late', async () => {
    const w = await open(join(tmp, 'c'), { writeTimeoutMs: 300 });
    const locker = await t.db.getConnection();
    try {
      await locker.query('LOCK TABLES store_probe WRITE');
      for (const i of seqs(120)) w.enqueue(probe('slow', i));
      await until(() => w.stats().writeErrors > 0 && w.stats().queued === 0, 5000);
      expect(w.stats().journalRecords).toBe(120);
    } finally {
      await locker.query('UNLOCK TABLES');
      locker.release();
    }
    await until(() => w.stats().journalRecords === 0);
    await w.close();
    await new Promise((r) => setTimeout(r, 200)); // let a late, timed-out INSERT finish if the server still runs it
    expect((await rowsOf('slow')).map((r) => r.seq).sort((a, b) => a - b)).toEqual(seqs(120));
  });

  it('while an INSERT is slow, new records keep moving from memory to the journal', async () => {
    const w = await open(join(tmp, 'slow2'), { writeTimeoutMs: 8000 });
    const locker = await t.db.getConnection();
    try {
      await locker.query('LOCK TABLES store_probe WRITE');
      for (const i of seqs(50)) w.enqueue(probe('slow2', i));
      await until(() => w.stats().journalRecords === 50 && w.stats().queued === 0, 3000); // the INSERT now waits
      for (const i of seqs(50, 50)) w.enqueue(probe('slow2', i));
      await until(() => w.stats().journalRecords === 100 && w.stats().queued === 0, 3000);
      expect(w.stats().writeErrors).toBe(0); // still inside the first INSERT: slow, not failed
    } finally {
      await locker.query('UNLOCK TABLES');
      locker.release();
    }
    await until(() => w.stats().journalRecords === 0);
    await w.close();
    expect((await rowsOf('slow2')).map((r) => r.seq)).toEqual(seqs(100));
    expect(w.stats().writeErrors).toBe(0);
  });

  it('a process killed with records in its journal: the next writer replays them once, skipping the torn line', async () => {
    const dir = join(tmp, 'd');
    const args = { writerUrl, rootUrl: t.url, user, journalDir: dir, run: 'crash', committed: 30, journaled: 70 };
    const child = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, '../unit/store/fixtures/crash-child.ts'), JSON.stringify(args)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    try {
      await until(() => out.includes('"ready":true') || child.exitCode !== null, 20_000);
      expect(out, err).toContain('"ready":true');
    } finally {
      child.kill('SIGKILL');
      await exited;
    }
    const report = JSON.parse(out.trim()) as { after: { journalRecords: number; written: number } };
    expect(report.after.written).toBe(30);
    expect(report.after.journalRecords).toBe(70);
    expect(await rowsOf('crash')).toHaveLength(30);

    // The kill landed in the middle of a write: half a line at the end of the newest segment.
    const files = (await readdir(join(dir, 'probe'))).filter((f) => f.endsWith('.jnl')).sort();
    expect(files.length).toBeGreaterThan(0);
    await appendFile(join(dir, 'probe', files[files.length - 1]!), '1234abcd ["deadbeef","crash",99');

    await unlockWriterAccount();
    const metrics = createMetrics();
    const w = await open(dir, { metrics });
    expect(w.stats().corruptLines).toBe(1);
    expect(await metrics.text()).toMatch(/a2b_journal_corrupt_lines_total\{writer="probe"\} 1\n/);
    await until(() => w.stats().journalRecords === 0);
    await w.close();
    // The 30 rows committed before the crash were still in the (uncompacted) segment: replayed as no-ops.
    expect(w.stats().duplicates).toBe(30);
    expect((await rowsOf('crash')).map((r) => r.seq)).toEqual(seqs(100));
    expect((await readdir(join(dir, 'probe'))).filter((f) => f.endsWith('.jnl'))).toEqual([]);
  });

  it('deletes a fully committed segment once the writer is idle, without waiting for close()', async () => {
    const dir = join(tmp, 'f');
    const w = await open(dir, { idleRotateMs: 300 });
    for (const i of seqs(30)) w.enqueue(probe('idle', i));
    await w.flush();
    expect(w.stats().journalRecords).toBe(0);
    await until(async () => (await readdir(join(dir, 'probe'))).filter((f) => f.endsWith('.jnl')).length === 0, 2000);
    expect(w.stats()).toMatchObject({ journalSegments: 0, journalRecords: 0, written: 30 });
    w.enqueue(probe('idle', 30)); // the next record starts a new segment
    await w.flush();
    expect((await rowsOf('idle')).map((r) => r.seq)).toEqual(seqs(31));
    await w.close();
  });

  it('a row MySQL refuses as data goes to the dead-letter file and the rest of its batch lands', async () => {
    // A trigger makes the server refuse one row with "data too long", as a bad value would.
    await t.db.query(`CREATE TRIGGER store_probe_poison BEFORE INSERT ON store_probe FOR EACH ROW
      IF NEW.run = 'poison' AND NEW.seq = 3 THEN SIGNAL SQLSTATE '22001' SET MYSQL_ERRNO = 1406, MESSAGE_TEXT = 'poisoned row'; END IF`);
    try {
      const dir = join(tmp, 'g');
      const metrics = createMetrics();
      const w = await open(dir, { metrics });
      for (const i of seqs(10)) w.enqueue(probe('poison', i));
      await w.flush();
      await w.close();
      expect((await rowsOf('poison')).map((r) => r.seq)).toEqual([0, 1, 2, 4, 5, 6, 7, 8, 9]);
      expect(w.stats()).toMatchObject({ deadLetters: 1, journalRecords: 0 });
      expect(await metrics.text()).toMatch(/a2b_db_write_dead_letters_total\{writer="probe"\} 1\n/);
      const dead = (await readFile(join(dir, 'probe', 'dead-letter.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { row: unknown[]; error: string });
      expect(dead).toHaveLength(1);
      expect(dead[0]!.row[2]).toBe(3);
      expect(dead[0]!.error).toMatch(/poisoned row/);

      // A record the row mapper cannot map never reaches MySQL and is kept beside the other refused rows.
      const w2 = await open(dir);
      w2.enqueue(probe('poison', 10));
      w2.enqueue(null as never); // the mapper throws on it
      await w2.flush();
      await w2.close();
      expect(w2.stats()).toMatchObject({ rejected: 1, written: 1 });
      const lines = (await readFile(join(dir, 'probe', 'dead-letter.jsonl'), 'utf8')).trim().split('\n');
      expect(lines).toHaveLength(2);
      expect(JSON.parse(lines[1]!)).toMatchObject({ table: 'store_probe', record: null });
    } finally {
      await t.db.query('DROP TRIGGER IF EXISTS store_probe_poison');
    }
  });

  it('journal unwritable (its directory vanished): records still reach MySQL directly, in order', async () => {
    const dir = join(tmp, 'h');
    const w = await open(dir, { segmentMaxBytes: 200 });
    for (const i of seqs(10)) w.enqueue(probe('nojournal', i));
    await w.flush();
    await rm(join(dir, 'probe'), { recursive: true, force: true });
    for (const i of seqs(20, 10)) w.enqueue(probe('nojournal', i));
    await w.flush();
    await until(() => w.stats().queued === 0);
    expect(w.stats().journalErrors).toBeGreaterThan(0);
    await w.close();
    expect((await rowsOf('nojournal')).map((r) => r.seq)).toEqual(seqs(30));
  });

  it('close() writes what is queued, or journals it when MySQL is down, for the next start', async () => {
    const w1 = await open(join(tmp, 'e'), { flushIntervalMs: 60_000 });
    for (const i of seqs(10)) w1.enqueue(probe('close-up', i));
    await w1.close();
    expect((await rowsOf('close-up')).map((r) => r.seq)).toEqual(seqs(10));

    await lockWriterAccount();
    const w2 = await open(join(tmp, 'e'), { flushIntervalMs: 60_000 });
    for (const i of seqs(10)) w2.enqueue(probe('close-down', i));
    await w2.close({ timeoutMs: 500 });
    expect(w2.stats().journalRecords).toBe(10);
    expect(await rowsOf('close-down')).toHaveLength(0);
    w2.enqueue(probe('close-down', 99)); // after close: refused and counted, never silently kept
    expect(w2.stats().rejected).toBe(1);

    await unlockWriterAccount();
    const w3 = await open(join(tmp, 'e'));
    await until(() => w3.stats().journalRecords === 0);
    await w3.close();
    expect((await rowsOf('close-down')).map((r) => r.seq)).toEqual(seqs(10));
  });
});
