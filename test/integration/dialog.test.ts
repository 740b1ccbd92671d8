// Dialog persistence on a real MariaDB and a real state directory: prompt snapshots, simulated restarts
// (a new Dialogs on the same database and directory), either store missing, and a real SIGKILL.
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { configSchema } from '../../src/config/schema.js';
import { createDb, type Db } from '../../src/db/pool.js';
import { CSEQ_RESTORE_BUMP, Dialogs } from '../../src/dialog/dialogs.js';
import { RECORD_VERSION, dialogKey, sqlTime } from '../../src/dialog/record.js';
import { STATE_FILE } from '../../src/dialog/state-file.js';
import { silentLogger } from '../../src/log.js';
import type { CallEvent, DialogInfo, EndReason, RequestFacts } from '../../src/proxy/hooks.js';
import { createTestDb, type TestDb } from '../helpers/db.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until<T>(fn: () => Promise<T | undefined> | T | undefined, ms: number, step = 5): Promise<T | undefined> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined || Date.now() > end) return v;
    await sleep(step);
  }
}

let n = 0;
function info(answeredAt = Date.now()): DialogInfo {
  const id = `dlg-${process.pid}-${++n}@10.0.0.9`;
  return {
    callId: id, callerTag: `caller-${n}`, calleeTag: `callee-${n}`,
    fromHeader: `"Alice" <sip:4242424242@gw.example>;tag=caller-${n}`, toHeader: `<sip:19995550100@gw.example>;tag=callee-${n}`,
    callerContact: '<sip:4242424242@192.0.2.10:5062;transport=tcp>', calleeContact: '<sip:19995550100@10.0.0.5:5060>',
    callerRouteSet: ['<sip:192.0.2.1;lr>'], calleeRouteSet: ['<sip:10.0.0.1:5060;lr;r2=on>'],
    callerHop: { ip: '192.0.2.10', port: 5062, proto: 'tcp' }, calleeHop: { ip: '10.0.0.5', port: 5060, proto: 'udp' },
    callerCseq: 101, calleeCseq: 7, recordRoute: ['<sip:203.0.113.1;lr>'], accountcode: '4242424242', targetId: '1',
    createdAt: answeredAt - 1500, answeredAt,
  };
}
const target = { id: '1', uri: 'sip:10.0.0.5:5060', host: '10.0.0.5', port: 5060, proto: 'udp' as const };
const answered = (d: DialogInfo): CallEvent => ({ type: 'answered', facts: { callId: d.callId } as unknown as RequestFacts, auth: undefined, target, status: 200, reason: 'OK', at: d.answeredAt, dialog: d });

interface Harness { dialogs: Dialogs; ends: Array<{ info: DialogInfo; reason: EndReason; at: number }>; emitted: CallEvent[] }

describe('dialog persistence and restart', () => {
  let t: TestDb;
  let gw: Db;
  let dir: string;
  const open: Dialogs[] = [];

  function gateway(opts: { db?: Db | null; instance?: string; hang?: boolean; stateDir?: string } = {}): Harness {
    const h: Harness = { dialogs: undefined as unknown as Dialogs, ends: [], emitted: [] };
    const dialog = configSchema.parse({ dialog: { stateDir: opts.stateDir ?? dir, dbFlushMs: 50, instance: opts.instance ?? 'default' } }).dialog;
    h.dialogs = new Dialogs({
      dialog, db: opts.db === null ? undefined : (opts.db ?? gw), log: silentLogger(), emit: (ev) => h.emitted.push(ev),
      actions: {
        endDialog: async (d, reason) => {
          h.ends.push({ info: d, reason, at: Date.now() });
          if (opts.hang) await new Promise(() => {});
        },
      },
    });
    open.push(h.dialogs);
    return h;
  }
  const row = async (callId: string) => {
    const [rows] = await gw.query('SELECT dlg_key, state, accountcode, expires, data FROM gw_dialog WHERE callid = ?', [callId]);
    return (rows as Array<Record<string, unknown>>)[0];
  };

  beforeAll(async () => {
    t = await createTestDb({ seed: true });
    gw = createDb({ url: t.gwUrl, poolSize: 2 });
  });
  afterEach(async () => {
    for (const d of open.splice(0)) await d.close();
    await t.db.query('DELETE FROM gw_dialog');
    if (dir) await rm(dir, { recursive: true, force: true });
  });
  afterAll(async () => {
    await gw?.end();
    await t?.drop();
  });

  it('writes the snapshot to the state file within 100 ms of the answer, and to gw_dialog in the next batch', async () => {
    dir = await mkdtemp(join(tmpdir(), 'a2b-dlg-'));
    const a = gateway();
    await a.dialogs.restore();
    const d = info();
    a.dialogs.setMaxDuration(d.callId, 96);
    const t0 = Date.now();
    a.dialogs.onCallEvent(answered(d));
    const onDisk = await until(async () => {
      const text = await readFile(join(dir, STATE_FILE), 'utf8').catch(() => '');
      return text.includes(JSON.stringify(d.callId)) ? Date.now() - t0 : undefined;
    }, 100, 2);
    expect(onDisk).toBeDefined();
    const r = await until(() => row(d.callId), 1000, 10);
    expect(r).toMatchObject({ dlg_key: dialogKey(d.callId, d.callerTag, d.calleeTag), state: 2, accountcode: '4242424242', expires: sqlTime(d.answeredAt + 96_000) });
    expect(JSON.parse(r!.data as string)).toMatchObject({ v: RECORD_VERSION, instance: 'default', info: d, maxDurationSec: 96 });
  });

  it('a restarted gateway restores confirmed calls (routes, CSeqs, timers) and ends them on time', async () => {
    dir = await mkdtemp(join(tmpdir(), 'a2b-dlg-'));
    const a = gateway({ hang: true });
    await a.dialogs.restore();
    const d = info();
    a.dialogs.setMaxDuration(d.callId, 2);
    a.dialogs.onCallEvent(answered(d));
    a.dialogs.onCallEvent({ type: 'in-dialog', callId: d.callId, fromTag: d.callerTag, toTag: d.calleeTag, method: 'INVITE', cseq: 102, fromCaller: true, at: Date.now() });
    await a.dialogs.flush();
    await sleep(300);

    // The "restart": a new object on the same database and directory (the old one is left as if dead).
    const b = gateway();
    expect(await b.dialogs.restore()).toBe(1);
    expect(b.dialogs.activeCount).toBe(1);
    expect(b.dialogs.list()[0]).toMatchObject({ callId: d.callId, state: 'confirmed', expiresAt: d.answeredAt + 2000, maxDurationSec: 2 });
    const ended = await until(() => b.ends[0], 3000, 10);
    expect(ended!.reason).toBe('max-duration');
    expect(ended!.at - d.answeredAt).toBeGreaterThanOrEqual(2000);
    expect(ended!.at - d.answeredAt).toBeLessThan(2300);
    expect(ended!.info).toEqual({ ...d, callerCseq: 102 + CSEQ_RESTORE_BUMP, calleeCseq: 7 + CSEQ_RESTORE_BUMP });
    await until(() => (b.emitted.length > 0 ? true : undefined), 500);
    expect(b.emitted).toEqual([{ type: 'ended', callId: d.callId, fromTag: d.callerTag, toTag: d.calleeTag, reason: 'max-duration', at: expect.any(Number), dialog: ended!.info }]);
    await b.dialogs.flush();
    expect(await row(d.callId)).toBeUndefined();
    // And a third start finds nothing left to restore.
    expect(await gateway().dialogs.restore()).toBe(0);
  });

  it('a call whose time ran out while the gateway was down is ended at once on restore', async () => {
    dir = await mkdtemp(join(tmpdir(), 'a2b-dlg-'));
    const a = gateway({ hang: true });
    await a.dialogs.restore();
    const d = info(Date.now() - 10_000);
    a.dialogs.setMaxDuration(d.callId, 5);
    a.dialogs.onCallEvent(answered(d));
    await a.dialogs.flush();
    const b = gateway();
    const before = Date.now();
    expect(await b.dialogs.restore()).toBe(1);
    const ended = await until(() => b.ends.find((e) => e.reason === 'max-duration' && e.info.callId === d.callId), 500);
    expect(ended!.at - before).toBeLessThan(200);
    await until(() => (b.emitted.length > 0 ? true : undefined), 500);
    expect(b.emitted[0]).toMatchObject({ type: 'ended', callId: d.callId, reason: 'max-duration' });
  });

  it('restores from gw_dialog when the state file is lost', async () => {
    dir = await mkdtemp(join(tmpdir(), 'a2b-dlg-'));
    const a = gateway({ hang: true });
    await a.dialogs.restore();
    const d = info();
    a.dialogs.onCallEvent(answered(d));
    await a.dialogs.flush();
    await rm(join(dir, STATE_FILE));
    const b = gateway();
    expect(await b.dialogs.restore()).toBe(1);
    expect(b.dialogs.get(d.callId)).toMatchObject({ callId: d.callId, calleeRouteSet: d.calleeRouteSet, calleeHop: d.calleeHop });
  });

  it('restores from the state file when MySQL is down, and writes gw_dialog once it is back', async () => {
    dir = await mkdtemp(join(tmpdir(), 'a2b-dlg-'));
    const dead = createDb({ url: 'mysql://gw:x@127.0.0.1:1/none', poolSize: 1, connectTimeoutMs: 300 });
    try {
      const a = gateway({ db: dead, hang: true });
      await a.dialogs.restore();
      const d = info();
      a.dialogs.onCallEvent(answered(d));
      await a.dialogs.flush();
      const b = gateway({ db: dead });
      expect(await b.dialogs.restore()).toBe(1);
      // Back on a working database, the restored dialog reaches gw_dialog.
      const c = gateway();
      expect(await c.dialogs.restore()).toBe(1);
      expect(await until(() => row(d.callId), 1000, 10)).toMatchObject({ state: 2 });
    } finally {
      for (const d of open.splice(0)) await d.close();
      await dead.end().catch(() => undefined);
    }
  });

  it('a BYE removes the dialog from both stores; another instance\'s rows are left alone', async () => {
    dir = await mkdtemp(join(tmpdir(), 'a2b-dlg-'));
    const other = gateway({ instance: 'gw2', hang: true, stateDir: join(dir, 'gw2') });
    const mine = gateway({ hang: true });
    await mine.dialogs.restore();
    const theirs = info();
    const d = info();
    other.dialogs.onCallEvent(answered(theirs));
    mine.dialogs.onCallEvent(answered(d));
    await mine.dialogs.flush();
    await other.dialogs.flush();
    expect(await row(d.callId)).toBeDefined();
    mine.dialogs.onCallEvent({ type: 'ended', callId: d.callId, fromTag: d.callerTag, toTag: d.calleeTag, reason: 'bye-caller', at: Date.now() });
    await mine.dialogs.flush();
    expect(await row(d.callId)).toBeUndefined();
    expect(await row(theirs.callId)).toBeDefined();
    const again = gateway();
    expect(await again.dialogs.restore()).toBe(0);
  });

  it('an oversized (attacker-chosen) Call-ID does not block the gw_dialog batch', async () => {
    dir = await mkdtemp(join(tmpdir(), 'a2b-dlg-'));
    const a = gateway({ hang: true });
    await a.dialogs.restore();
    const long = { ...info(), callId: `${'x'.repeat(400)}@evil` };
    const normal = info();
    a.dialogs.onCallEvent(answered(long));
    a.dialogs.onCallEvent(answered(normal));
    await a.dialogs.flush();
    expect(await row(normal.callId)).toBeDefined();
    const [rows] = await gw.query('SELECT callid, data FROM gw_dialog WHERE dlg_key = ?', [dialogKey(long.callId, long.callerTag, long.calleeTag)]);
    const r = (rows as Array<{ callid: string; data: string }>)[0]!;
    expect(r.callid).toHaveLength(255);
    expect(JSON.parse(r.data).info.callId).toBe(long.callId);
    const b = gateway();
    expect(await b.dialogs.restore()).toBe(2);
    expect(b.dialogs.get(long.callId)?.callId).toBe(long.callId);
  });

  it('survives SIGKILL 100 ms after the answer', async () => {
    dir = await mkdtemp(join(tmpdir(), 'a2b-dlg-'));
    const root = resolve(import.meta.dirname, '../..');
    const d = info();
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', `
      import { configSchema } from ${JSON.stringify(`${root}/src/config/schema.ts`)};
      import { Dialogs } from ${JSON.stringify(`${root}/src/dialog/dialogs.ts`)};
      import { silentLogger } from ${JSON.stringify(`${root}/src/log.ts`)};
      const [dir, json] = process.argv.slice(1);
      const dialog = configSchema.parse({ dialog: { stateDir: dir } }).dialog;
      const dialogs = new Dialogs({ dialog, log: silentLogger(), actions: { endDialog: async () => {} } });
      await dialogs.restore();
      const info = JSON.parse(json);
      dialogs.setMaxDuration(info.callId, 60);
      dialogs.onCallEvent({ type: 'answered', facts: { callId: info.callId }, auth: undefined, target: {}, status: 200, reason: 'OK', at: info.answeredAt, dialog: info });
      process.stdout.write('answered\\n');
      setInterval(() => {}, 1000);
    `, dir, JSON.stringify(d)], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      await new Promise<void>((ok, fail) => {
        const timer = setTimeout(() => fail(new Error('child did not start')), 10_000);
        child.stdout.on('data', (b: Buffer) => { if (b.toString().includes('answered')) { clearTimeout(timer); ok(); } });
        child.on('exit', (code) => fail(new Error(`child exited ${code}`)));
      });
      await sleep(100);
    } finally {
      child.kill('SIGKILL');
    }
    await new Promise((r) => child.once('exit', r));
    const b = gateway({ db: null });
    expect(await b.dialogs.restore()).toBe(1);
    expect(b.dialogs.list()[0]).toMatchObject({ callId: d.callId, expiresAt: d.answeredAt + 60_000 });
  }, 15_000);
});
