// Reconciliation on a real MariaDB: a generated day with every discrepancy class (and the noise that must not
// be reported), run as the least-privilege gateway user; every call lands in its class; a rerun replaces the
// run; A2Billing's tables are never written.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { genDay, type GenResult } from '../../bench/gen-day.js';
import { runReconcileCli } from '../../src/cli/reconcile.js';
import { createDb, type Db } from '../../src/db/pool.js';
import { silentLogger } from '../../src/log.js';
import { runReconcile } from '../../src/reconcile/job.js';
import { createReconcileSchedule, RECONCILE_LOCK } from '../../src/reconcile/schedule.js';
import { CALL_CLASSES, DISCREPANCY_CLASSES } from '../../src/reconcile/types.js';
import { createTestDb, type TestDb } from '../helpers/db.js';

const DAY = '2026-11-21';
const TZ = 'Europe/Berlin';

describe('reconciliation against MariaDB', () => {
  let t: TestDb;
  let gwDb: Db;
  let gen: GenResult;
  let out: string;

  const a2bChecksum = async (): Promise<string> => {
    const [rows] = await t.db.query('CHECKSUM TABLE cc_call, cc_card, cc_ratecard, cc_tariffgroup_plan');
    return JSON.stringify(rows);
  };
  const items = async (runId: number): Promise<Array<{ class: string; callid: string; amount: string }>> =>
    (await gwDb.query('SELECT class, callid, amount_at_risk AS amount FROM gw_reconcile_item WHERE run_id = ? ORDER BY id', [runId]))[0] as Array<{ class: string; callid: string; amount: string }>;

  beforeAll(async () => {
    t = await createTestDb({ seed: true });
    gen = await genDay(t.db, { day: DAY, tz: TZ, calls: 3000, seed: 7, faultScale: 10, keepExpected: true, cardCount: 12 });
    gwDb = createDb({ url: t.gwUrl, poolSize: 8 });
    out = mkdtempSync(join(tmpdir(), 'a2b-reconcile-'));
  });
  afterAll(async () => {
    await gwDb?.end();
    await t?.drop();
    rmSync(out, { recursive: true, force: true });
  });

  it('puts every call of the day in exactly its class, as the gateway user, without touching A2Billing', async () => {
    for (const c of DISCREPANCY_CLASSES) expect(gen.expected[c], `generated day has ${c}`).toBeGreaterThan(0);
    const before = await a2bChecksum();
    const r = await runReconcile({ db: gwDb, day: DAY, timezone: TZ, toleranceSec: 2, outputDir: out, log: silentLogger() });
    expect(await a2bChecksum()).toBe(before);

    const counts = Object.fromEntries(CALL_CLASSES.map((c) => [c, r.summary.classes[c].count]));
    expect(counts).toEqual(gen.expected);
    expect(r.summary.calls).toBe(gen.perCall.size);

    const rows = await items(r.runId);
    expect(rows).toHaveLength(r.summary.discrepancies);
    // Calls the gateway saw are reported under their Call-ID, each once, in the generator's class.
    const seen = new Set<string>();
    for (const row of rows) {
      if (row.class === 'bypass') continue;
      expect(seen.has(row.callid), `${row.callid} reported twice`).toBe(false);
      seen.add(row.callid);
      expect([row.callid, row.class]).toEqual([row.callid, gen.perCall.get(row.callid)]);
    }
    for (const [callid, cls] of gen.perCall) if (cls !== 'matched' && cls !== 'bypass') expect(seen.has(callid), `${callid} (${cls}) reported`).toBe(true);
    for (const row of rows.filter((x) => x.class === 'bypass' && x.callid)) expect(gen.perCall.get(row.callid)).toBe('bypass');

    // Money: unbilled and bypass calls carry a price; explained AMI gaps carry none.
    expect(r.summary.classes.unbilled.amount).toBeGreaterThan(0);
    expect(r.summary.classes.bypass.amount).toBeGreaterThan(0);
    expect(r.summary.classes.ami_missing_gap.amount).toBe(0);
    expect(r.summary.amiGaps).toEqual([{ box: 'box2', from: gen.gap.from.slice(0, 19), to: gen.gap.to.slice(0, 19), seconds: 1200 }]);

    // Files
    const csv = readFileSync(r.files!.csv, 'utf8').trim().split('\r\n');
    expect(csv).toHaveLength(r.summary.discrepancies + 1);
    const json = JSON.parse(readFileSync(r.files!.json, 'utf8')) as { items: unknown[]; summary: { calls: number } };
    expect(json.items).toHaveLength(r.summary.discrepancies);
    expect(json.summary.calls).toBe(r.summary.calls);
    expect(readFileSync(r.files!.html, 'utf8')).toContain('<table id="summary">');

    // The run row
    const [runs] = await gwDb.query('SELECT id, status, calls_total AS calls, summary, window_start AS ws, window_end AS we FROM gw_reconcile_run WHERE billing_day = ? AND timezone = ?', [DAY, TZ]);
    expect(runs).toHaveLength(1);
    const run = (runs as Array<{ id: number; status: string; calls: number; summary: string; ws: string; we: string }>)[0]!;
    expect(run).toMatchObject({ id: r.runId, status: 'done', calls: r.summary.calls, ws: '2026-11-20 23:00:00', we: '2026-11-21 23:00:00' });
    expect(JSON.parse(run.summary).classes.unbilled.count).toBe(gen.expected.unbilled);
  });

  it('a rerun of the same day gives the same result and replaces the previous run and its rows', async () => {
    const [[{ n: before }]] = (await gwDb.query('SELECT COUNT(*) AS n FROM gw_reconcile_item')) as unknown as [[{ n: number }]];
    const r1 = await runReconcile({ db: gwDb, day: DAY, timezone: TZ, toleranceSec: 2, outputDir: null });
    const r2 = await runReconcile({ db: gwDb, day: DAY, timezone: TZ, toleranceSec: 2, outputDir: null });
    expect(r2.runId).not.toBe(r1.runId);
    expect(r2.summary.classes).toEqual(r1.summary.classes);
    const [runs] = await gwDb.query('SELECT id FROM gw_reconcile_run WHERE billing_day = ? AND timezone = ?', [DAY, TZ]);
    expect((runs as Array<{ id: number }>).map((x) => x.id)).toEqual([r2.runId]);
    const [[{ n: after }]] = (await gwDb.query('SELECT COUNT(*) AS n FROM gw_reconcile_item')) as unknown as [[{ n: number }]];
    expect(Number(after)).toBe(Number(before));
    expect((await items(r1.runId))).toHaveLength(0);
    // Connections go back to the shared pool with the server's session settings (time zone, sort buffer).
    const conns = await Promise.all(Array.from({ length: 8 }, () => gwDb.getConnection()));
    for (const c of conns) {
      const [[v]] = (await c.query('SELECT @@session.time_zone = @@global.time_zone AS tz, @@session.sort_buffer_size = @@global.sort_buffer_size AS sb')) as unknown as [[{ tz: number; sb: number }]];
      expect(v).toEqual({ tz: 1, sb: 1 });
    }
    conns.forEach((c) => c.release());
    expect(await items(r2.runId)).toHaveLength(r2.summary.discrepancies);
  });

  it('a failed run rolls back and keeps the previous result', async () => {
    const [[prev]] = (await gwDb.query('SELECT id FROM gw_reconcile_run WHERE billing_day = ? AND timezone = ?', [DAY, TZ])) as unknown as [[{ id: number }]];
    const broken = createDb({ url: t.gwUrl, poolSize: 8 });
    let n = 0;
    // The fourth connection (a source stream) dies: the run must fail cleanly.
    const orig = broken.getConnection.bind(broken);
    broken.getConnection = (async () => {
      const c = await orig();
      if (++n === 5) c.connection.destroy();
      return c;
    }) as typeof broken.getConnection;
    await expect(runReconcile({ db: broken, day: DAY, timezone: TZ, toleranceSec: 2, outputDir: null })).rejects.toThrow();
    await broken.end();
    const [runs] = await gwDb.query('SELECT id, status FROM gw_reconcile_run WHERE billing_day = ? AND timezone = ?', [DAY, TZ]);
    expect(runs).toEqual([{ id: prev.id, status: 'done' }]);
    expect((await items(prev.id)).length).toBeGreaterThan(0);
  });

  it('the CLI reconciles a day and prints the summary; bad options are named', async () => {
    let stdout = '';
    let stderr = '';
    const io = { out: (s: string) => { stdout += s; }, err: (s: string) => { stderr += s; }, env: {} };
    const code = await runReconcileCli(['--date', DAY, '--tz', TZ, '--db', t.gwUrl, '--out', out], io);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout).toContain(`Reconciliation ${DAY} (${TZ})`);
    expect(stdout).toMatch(new RegExp(`Answered but unbilled\\s+${gen.expected.unbilled}\\s`));

    const run = async (argv: string[]): Promise<[number, string]> => {
      let e = '';
      const c = await runReconcileCli(argv, { out: () => undefined, err: (s) => { e += s; }, env: {} });
      return [c, e];
    };
    expect(await run(['--date', '2026-13-01', '--db', t.gwUrl])).toEqual([2, expect.stringContaining('--date: "2026-13-01" is not a date')]);
    expect(await run(['--date', DAY, '--tz', 'Mars/Olympus', '--db', t.gwUrl])).toEqual([2, expect.stringContaining('--tz: unknown time zone "Mars/Olympus"')]);
    expect(await run(['--from', '2026-11-22', '--to', '2026-11-21', '--db', t.gwUrl])).toEqual([2, expect.stringContaining('--to: 2026-11-21 is before --from')]);
    expect(await run(['--date', DAY, '--bogus'])).toEqual([2, expect.stringContaining("'--bogus'")]);
    expect(await run(['--date', DAY])).toEqual([2, expect.stringContaining('--db: missing')]);
    expect(await run([])).toEqual([2, expect.stringContaining('--date: missing')]);
  });

  it('the schedule runs under the cluster lock: a second instance gets nothing to do', async () => {
    const cfg = { enabled: true, schedule: '30 2 * * *', timezone: TZ, durationToleranceSec: 2, outputDir: out, marginSec: 900 };
    const fakeNow = Date.parse('2026-11-22T01:30:00Z');
    const sched = createReconcileSchedule({ db: gwDb, config: cfg, log: silentLogger(), now: () => fakeNow });
    const holder = await gwDb.getConnection();
    await holder.query('SELECT GET_LOCK(?, 0)', [RECONCILE_LOCK]);
    expect(await sched.runNow()).toBeNull();
    await holder.query('SELECT RELEASE_LOCK(?)', [RECONCILE_LOCK]);
    holder.release();
    const r = await sched.runNow();
    expect(r?.summary.day).toBe(DAY);
    // Fired again right after (another instance's clock): the day was just done, so it is skipped.
    expect(await sched.runNow(undefined, { skipIfDoneSinceMs: fakeNow - 60_000 })).toBeNull();
    sched.start();
    expect(sched.nextRun()).toBeInstanceOf(Date);
    await sched.stop();
    expect(() => createReconcileSchedule({ db: gwDb, config: { ...cfg, schedule: 'every night' }, log: silentLogger() })).toThrow(/reconcile\.schedule/);
  });
});
