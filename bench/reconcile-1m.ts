// Times one nightly reconciliation of a day of one million calls on a private MariaDB.
//   npx tsx bench/reconcile-1m.ts [--calls 1000000] [--tz Europe/Berlin] [--keep]
// Generates the day (bench/gen-day.ts), then runs the reconciliation in a child process so its wall time
// and peak RSS are its own, and checks every class count against what the generator planted.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { migrate } from '../src/db/migrate.js';
import { createDb } from '../src/db/pool.js';
import { loadA2BillingFixture } from '../src/devdb/fixture.js';
import { startPrivateMariaDb } from '../src/devdb/private-mariadb.js';
import { seedA2Billing } from '../src/devdb/seed.js';
import { genDay } from './gen-day.js';

const { values: v } = parseArgs({ options: { calls: { type: 'string' }, tz: { type: 'string' }, date: { type: 'string' }, keep: { type: 'boolean' } } });
const calls = Number(v.calls ?? 1_000_000);
const tz = v.tz ?? 'Europe/Berlin';
const day = v.date ?? '2026-11-21';
const log = (m: string): void => { process.stderr.write(`${m}\n`); };

const server = await startPrivateMariaDb({ log });
const out = mkdtempSync(join(tmpdir(), 'a2b-reconcile-bench-'));
try {
  const admin = createDb({ url: server.rootUrl, poolSize: 1 });
  await admin.query('CREATE DATABASE bench CHARACTER SET utf8mb4');
  await admin.end();
  const url = `${server.rootUrl}bench`;
  const db = createDb({ url, poolSize: 4 });
  await loadA2BillingFixture(db);
  await migrate(db);
  await seedA2Billing(db);
  const g0 = Date.now();
  let next = 0;
  const gen = await genDay(db, { day, tz, calls, seed: 42, onProgress: (n) => { if (n >= next) { log(`  generated ${n} calls`); next += 200_000; } } });
  const genSec = (Date.now() - g0) / 1000;
  log(`generated ${calls} calls in ${genSec.toFixed(1)} s: ${JSON.stringify(gen.rows)}`);
  await db.end();

  // CPU seconds of the database server during the run (the box is shared, so wall time depends on the neighbours).
  const serverCpuMs = (): number => {
    const f = readFileSync(`/proc/${server.pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / 100;
  };
  const s0 = serverCpuMs();
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/reconcile-worker.ts', url, day, tz, out], { stdio: ['ignore', 'pipe', 'inherit'] });
  let stdout = '';
  child.stdout.on('data', (b: Buffer) => { stdout += b.toString(); });
  const code = await new Promise<number>((res) => child.on('exit', (c) => res(c ?? 1)));
  if (code !== 0) throw new Error(`reconcile worker exited with ${code}`);
  const dbCpuMs = Math.round(serverCpuMs() - s0);
  const r = JSON.parse(stdout.trim().split('\n').pop()!) as { wallMs: number; rows: number; rowsPerSec: number; calls: number; peakRssMb: number; classes: Record<string, number> };
  const mismatches = Object.entries(gen.expected).filter(([k, n]) => r.classes[k] !== n);
  const report = {
    date: new Date().toISOString(), machine: `${cpus().length} × ${cpus()[0]?.model ?? '?'}, ${(totalmem() / 2 ** 30).toFixed(0)} GB, node ${process.version}`,
    day, tz, callsGenerated: calls, genSeconds: genSec, ...r, dbServerCpuMs: dbCpuMs, expectedClasses: gen.expected, classesMatchGenerator: mismatches.length === 0,
  };
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  if (mismatches.length) { log(`class counts differ from the generator: ${JSON.stringify(mismatches)}`); process.exitCode = 1; }
} finally {
  if (!v.keep) rmSync(out, { recursive: true, force: true });
  await server.stop();
}
