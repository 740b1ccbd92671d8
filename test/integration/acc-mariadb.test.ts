// Accounting end to end into MariaDB as the least-privilege gateway user: the rows of answered, rejected,
// cancelled and failed-over calls, with durations, and a restart with MySQL down in between.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openAccounting } from '../../src/acc/index.js';
import { callRef } from '../../src/callref.js';
import { configSchema } from '../../src/config/schema.js';
import { createDb, type Db } from '../../src/db/pool.js';
import { silentLogger } from '../../src/log.js';
import { createMetrics } from '../../src/metrics.js';
import type { CallEvent } from '../../src/proxy/hooks.js';
import { createTestDb, type TestDb } from '../helpers/db.js';
import { T0, alice, answeredCall, box1, box2, dialog, facts } from '../unit/acc/events.js';

let t: TestDb;
let gw: Db;
let dir: string;

beforeAll(async () => {
  t = await createTestDb({ seed: true });
  gw = createDb({ url: t.gwUrl, poolSize: 2, connectTimeoutMs: 1000 });
  dir = await mkdtemp(join(tmpdir(), 'a2b-acc-'));
});

afterAll(async () => {
  await gw?.end().catch(() => undefined);
  await t?.drop();
  await rm(dir, { recursive: true, force: true });
});

function config(journalDir: string) {
  return configSchema.parse({ acc: { journalDir, batchSize: 50, flushIntervalMs: 20, writeTimeoutMs: 1000 }, dialog: { defaultMaxLifetimeSec: 3600 } });
}

async function q<T>(sql: string, args: unknown[] = []): Promise<T[]> {
  const [rows] = await t.db.query(sql, args);
  return rows as T[];
}

describe('accounting into MariaDB', () => {
  it('writes gw_acc, gw_missed_calls and gw_cdr rows with the right durations', async () => {
    const metrics = createMetrics();
    const acc = await openAccounting({ config: config(join(dir, 'a')), db: gw, log: silentLogger(), metrics });
    const feed = (evs: CallEvent[]): void => evs.forEach((e) => acc.onCallEvent(e));

    feed(answeredCall(facts({ callId: 'answered-1' }), { answerAfterMs: 2350, talkMs: 61_999, maxDurationSec: 5400 }));
    feed(answeredCall(facts({ callId: 'failover-1' }), { answerAfterMs: 900, talkMs: 30_500, failover: true, reason: 'bye-callee' }));
    const rej = facts({ callId: 'rejected-1' });
    feed([
      { type: 'start', facts: rej, auth: alice, at: T0 },
      { type: 'failed', facts: rej, auth: alice, target: box1, status: 486, reason: 'Busy Here', at: T0 + 3000, cancelled: false },
    ]);
    const can = facts({ callId: 'cancelled-1' });
    feed([
      { type: 'start', facts: can, auth: alice, at: T0 },
      { type: 'transaction', facts: facts({ callId: 'cancelled-1', method: 'CANCEL' }), status: 200, reason: 'OK', at: T0 + 4000 },
      { type: 'failed', facts: can, auth: alice, target: box2, status: 487, reason: 'Request Terminated', at: T0 + 4010, cancelled: true },
    ]);
    await acc.close();

    const cdr = await q<Record<string, unknown>>('SELECT callid, callref, created, answered, ended, setup_ms, duration_sec, duration_ms, end_reason, sip_code, accountcode, card_id, src_user, dst_user, src_ip, auth_method, destination, max_duration_sec FROM gw_cdr ORDER BY callid');
    expect(cdr).toEqual([
      { callid: 'answered-1', callref: callRef('answered-1'), created: '2026-11-22 08:00:00.000', answered: '2026-11-22 08:00:02.350', ended: '2026-11-22 08:01:04.349',
        setup_ms: 2350, duration_sec: 61, duration_ms: 61_999, end_reason: 'bye-caller', sip_code: 200, accountcode: '4242424242', card_id: 1,
        src_user: 'alice', dst_user: '4420123456', src_ip: '192.0.2.10', auth_method: 'digest', destination: box1.uri, max_duration_sec: 5400 },
      expect.objectContaining({ callid: 'cancelled-1', answered: null, setup_ms: null, duration_sec: 0, duration_ms: 0, end_reason: 'cancelled', sip_code: 487, destination: box2.uri, max_duration_sec: null }),
      expect.objectContaining({ callid: 'failover-1', setup_ms: 900, duration_sec: 30, duration_ms: 30_500, end_reason: 'bye-callee', destination: box2.uri }),
      expect.objectContaining({ callid: 'rejected-1', duration_sec: 0, end_reason: 'failed', sip_code: 486, ended: '2026-11-22 08:00:03.000' }),
    ]);
    const missed = await q<{ callid: string; sip_code: number; attempt: number; destination: string }>('SELECT callid, sip_code, attempt, destination FROM gw_missed_calls ORDER BY callid, attempt');
    expect(missed).toEqual([
      { callid: 'cancelled-1', sip_code: 487, attempt: 1, destination: box2.uri },
      { callid: 'failover-1', sip_code: 503, attempt: 1, destination: box1.uri },
      { callid: 'rejected-1', sip_code: 486, attempt: 1, destination: box1.uri },
    ]);
    const accRows = await q<{ callid: string; method: string; sip_code: number; time: string }>('SELECT callid, method, sip_code, time FROM gw_acc ORDER BY id');
    expect(accRows.map((r) => `${r.callid} ${r.method} ${r.sip_code}`)).toEqual([
      'answered-1 INVITE 200', 'answered-1 BYE 200', 'failover-1 INVITE 200', 'failover-1 BYE 200', 'cancelled-1 CANCEL 200',
    ]);
    expect(accRows[0]!.time).toBe('2026-11-22 08:00:02.350');
    expect(await metrics.text()).toMatch(/a2b_db_write_rows_total\{writer="cdr"\} 4/);
  });

  it('a 2xx crossing the CANCEL leaves one gw_cdr row, the answered one', async () => {
    const acc = await openAccounting({ config: config(join(dir, 'c')), db: gw, log: silentLogger() });
    const f = facts({ callId: 'crossed-1' });
    const evs: CallEvent[] = [
      { type: 'start', facts: f, auth: alice, at: T0 },
      { type: 'failed', facts: f, auth: alice, target: box1, status: 487, reason: 'Request Terminated', at: T0 + 3001, cancelled: true, attempt: 1 },
    ];
    evs.forEach((e) => acc.onCallEvent(e));
    await acc.writers.cdr.flush(); // the cancelled CDR is in the table first
    const [first] = await q<{ end_reason: string }>("SELECT end_reason FROM gw_cdr WHERE callid = 'crossed-1'");
    expect(first!.end_reason).toBe('cancelled');
    acc.onCallEvent({ type: 'answered', facts: f, auth: alice, target: box1, status: 200, reason: 'OK', at: T0 + 3002, dialog: dialog(f, box1, T0, T0 + 3002) });
    acc.onCallEvent({ type: 'ended', callId: f.callId, fromTag: f.fromTag, toTag: 'as5e1b2c', reason: 'bye-callee', at: T0 + 3002 + 12_345 });
    await acc.close();
    const rows = await q<Record<string, unknown>>("SELECT end_reason, duration_sec, sip_code, answered FROM gw_cdr WHERE callid = 'crossed-1'");
    expect(rows).toEqual([{ end_reason: 'bye-callee', duration_sec: 12, sip_code: 200, answered: '2026-11-22 08:00:03.002' }]);
  });

  it('calls accounted while MySQL is unreachable survive a restart of the gateway and land once', async () => {
    const jdir = join(dir, 'b');
    const dead = createDb({ url: 'mysql://nobody:x@127.0.0.1:1/none', poolSize: 1, connectTimeoutMs: 300 });
    const acc1 = await openAccounting({ config: config(jdir), db: dead, log: silentLogger() });
    for (let i = 0; i < 20; i++) {
      for (const e of answeredCall(facts({ callId: `down-${i}` }), { answerAfterMs: 1000, talkMs: 10_000 + i * 1000, start: T0 + i })) acc1.onCallEvent(e);
    }
    await acc1.close({ timeoutMs: 300 });
    await dead.end();
    expect(acc1.writerStats().map((s) => [s.name, s.journalRecords])).toEqual([['acc', 40], ['missed', 0], ['cdr', 20]]);

    const acc2 = await openAccounting({ config: config(jdir), db: gw, log: silentLogger() });
    const until = Date.now() + 10_000;
    while (acc2.writerStats().some((s) => s.journalRecords > 0) && Date.now() < until) await new Promise((r) => setTimeout(r, 25));
    await acc2.close();
    const rows = await q<{ callid: string; duration_sec: number }>("SELECT callid, duration_sec FROM gw_cdr WHERE callid LIKE 'down-%' ORDER BY created");
    expect(rows.map((r) => r.duration_sec)).toEqual(Array.from({ length: 20 }, (_, i) => 10 + i));
    const [n] = await q<{ n: number }>("SELECT COUNT(*) AS n FROM gw_acc WHERE callid LIKE 'down-%'");
    expect(n!.n).toBe(40);
  });
});
