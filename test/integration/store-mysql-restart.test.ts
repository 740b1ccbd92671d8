// The writer across a real MySQL crash: a private MariaDB is SIGKILLed in the middle of a run of records and
// started again on the same datadir (InnoDB crash recovery included); every record arrives exactly once, in order.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDb, type Db } from '../../src/db/pool.js';
import { findMariadbd, startPrivateMariaDb, type PrivateMariaDb } from '../../src/devdb/private-mariadb.js';
import { silentLogger } from '../../src/log.js';
import { openBatchWriter } from '../../src/store/index.js';
import { PROBE_DDL, probe, probeTable } from '../unit/store/fixtures/probe-table.js';

let server: PrivateMariaDb;
let restarted: ChildProcess | undefined;
let root: Db;
let tmp: string;

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ host: '127.0.0.1', port });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

async function until(cond: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 25));
  }
}

beforeAll(async () => {
  server = await startPrivateMariaDb();
  const admin = createDb({ url: server.rootUrl, poolSize: 1 });
  await admin.query('CREATE DATABASE restart_test');
  await admin.end();
  root = createDb({ url: `${server.rootUrl}restart_test`, poolSize: 1, connectTimeoutMs: 1000 });
  await root.query(PROBE_DDL);
  tmp = await mkdtemp(join(tmpdir(), 'a2b-store-restart-'));
});

afterAll(async () => {
  await root?.end().catch(() => undefined);
  if (restarted && restarted.exitCode === null && restarted.signalCode === null) {
    const gone = new Promise((r) => restarted!.once('exit', r));
    restarted.kill('SIGTERM');
    await gone;
  }
  // The first mariadbd was SIGKILLed by the test: only its directory is left to remove.
  if (server) await rm(dirname(server.dataDir), { recursive: true, force: true });
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe('batched writer across a MariaDB crash and restart', () => {
  it('journals while the server is dead and replays every record exactly once when it is back', async () => {
    const db = createDb({ url: `${server.rootUrl}restart_test`, poolSize: 2, connectTimeoutMs: 500 });
    const w = await openBatchWriter({ name: 'probe', spec: probeTable, db, journalDir: tmp, log: silentLogger(), batchSize: 50, flushIntervalMs: 20, writeTimeoutMs: 1000, retryMinMs: 50, retryMaxMs: 300 });
    try {
      for (let i = 0; i < 100; i++) w.enqueue(probe('restart', i));
      await w.flush();
      expect(w.stats().written).toBe(100);

      process.kill(server.pid, 'SIGKILL');
      await until(async () => !(await portOpen(server.port)));
      for (let i = 100; i < 300; i++) {
        w.enqueue(probe('restart', i));
        if (i % 40 === 0) await new Promise((r) => setTimeout(r, 10));
      }
      await w.flush();
      await until(() => w.stats().queued === 0 && w.stats().writeErrors > 0);
      expect(w.stats().journalRecords).toBe(200);
      expect(w.stats().dbUp).toBe(false);

      // Same datadir, same port: InnoDB recovers and the writer's pool reconnects by itself.
      const user = process.getuid?.() === 0 ? ['--user=root'] : [];
      restarted = spawn(findMariadbd()!, [`--defaults-file=${join(dirname(server.dataDir), 'my.cnf')}`, ...user], { stdio: 'ignore' });
      await until(() => spawnSync('mariadb-admin', ['--no-defaults', `--socket=${server.socket}`, '-uroot', 'ping'], { stdio: 'ignore' }).status === 0, 60_000);
      for (let i = 300; i < 320; i++) w.enqueue(probe('restart', i));
      await until(() => w.stats().journalRecords === 0 && w.stats().queued === 0);
      await w.close();
      expect(w.stats().dbUp).toBe(true);

      const [rows] = await root.query('SELECT seq FROM store_probe WHERE run = ? ORDER BY id', ['restart']);
      expect((rows as Array<{ seq: number }>).map((r) => r.seq)).toEqual(Array.from({ length: 320 }, (_, i) => i));
    } finally {
      await w.close();
      await db.end().catch(() => undefined);
    }
  });
});
