// Outages at random moments: while records stream in, the writer's MySQL account is locked and its connections
// killed, then unlocked, several times (seeded, so a failure replays). At the end every record is in the table
// exactly once and in enqueue order.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDb, type Db } from '../../src/db/pool.js';
import { silentLogger } from '../../src/log.js';
import { openBatchWriter } from '../../src/store/index.js';
import { createTestDb, withDatabase, type TestDb } from '../helpers/db.js';
import { PROBE_DDL, probe, probeTable } from '../unit/store/fixtures/probe-table.js';

let t: TestDb;
let user: string;
let url: string;
let tmp: string;

beforeAll(async () => {
  t = await createTestDb({ seed: false });
  await t.db.query(PROBE_DDL);
  user = `sc_${randomBytes(4).toString('hex')}`;
  const password = randomBytes(9).toString('base64url');
  await t.db.query('CREATE USER ?@? IDENTIFIED BY ?', [user, '%', password]);
  await t.db.query(`GRANT SELECT, INSERT ON \`${t.name}\`.store_probe TO ?@?`, [user, '%']);
  url = withDatabase(t.rootUrl, t.name, { user, password });
  tmp = await mkdtemp(join(tmpdir(), 'a2b-store-chaos-'));
});

afterAll(async () => {
  await t?.db.query('DROP USER IF EXISTS ?@?', [user, '%']).catch(() => undefined);
  await t?.drop();
  await rm(tmp, { recursive: true, force: true });
});

/** mulberry32: a tiny seeded PRNG so a failing run can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), a | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

async function setLocked(locked: boolean): Promise<void> {
  await t.db.query(`ALTER USER ?@? ACCOUNT ${locked ? 'LOCK' : 'UNLOCK'}`, [user, '%']);
  if (!locked) return;
  const [procs] = await t.db.query('SELECT ID AS id FROM information_schema.PROCESSLIST WHERE USER = ?', [user]);
  for (const p of procs as Array<{ id: number }>) await t.db.query(`KILL CONNECTION ${Number(p.id)}`).catch(() => undefined);
}

describe('batched writer under repeated outages', () => {
  for (const seed of [1, 2, 3]) {
    it(`seed ${seed}: every record lands once, in order`, async () => {
      const rnd = prng(seed);
      const run = `chaos${seed}`;
      const db: Db = createDb({ url, poolSize: 3, connectTimeoutMs: 500 });
      const w = await openBatchWriter({
        name: `chaos${seed}`, spec: probeTable, db, journalDir: tmp, log: silentLogger(),
        batchSize: 1 + Math.floor(rnd() * 40), flushIntervalMs: 10, writeTimeoutMs: 800, retryMinMs: 20, retryMaxMs: 80,
        segmentMaxBytes: 1024 + Math.floor(rnd() * 8192),
      });
      let seq = 0;
      let locked = false;
      try {
        for (let phase = 0; phase < 10; phase++) {
          const n = Math.floor(rnd() * 120);
          for (let i = 0; i < n; i++) {
            w.enqueue(probe(run, seq++));
            if (rnd() < 0.05) await new Promise((r) => setTimeout(r, Math.floor(rnd() * 15)));
          }
          if (rnd() < 0.5) {
            locked = !locked;
            await setLocked(locked);
          }
          await new Promise((r) => setTimeout(r, Math.floor(rnd() * 60)));
        }
        if (locked) await setLocked(false);
        const end = Date.now() + 15_000;
        while ((w.stats().queued > 0 || w.stats().journalRecords > 0) && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
        await w.close();
        const st = w.stats();
        expect(st.writeErrors).toBeGreaterThan(0); // the outages did hit writes
        const [rows] = await t.db.query('SELECT seq FROM store_probe WHERE run = ? ORDER BY id', [run]);
        expect((rows as Array<{ seq: number }>).map((r) => r.seq)).toEqual(Array.from({ length: seq }, (_, i) => i));
      } finally {
        await setLocked(false);
        await w.close();
        await db.end().catch(() => undefined);
      }
    }, 30_000);
  }
});
