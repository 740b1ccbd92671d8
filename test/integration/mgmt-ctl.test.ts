// `a2b-gateway ctl` against a real management server on loopback.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCtl } from '../../src/cli/ctl.js';
import { Dispatcher } from '../../src/dispatch/dispatcher.js';
import { createMgmtServer, type MgmtServer } from '../../src/mgmt/server.js';
import { configSchema } from '../../src/config/schema.js';
import { silentLogger } from '../../src/log.js';

const TOKEN = 'ctl-test-token-0123456789';

async function ctl(argv: string[], conn: { url?: string; token?: string }) {
  let out = '';
  let err = '';
  const code = await runCtl(argv, { ...conn, out: (s) => { out += s; }, err: (s) => { err += s; } });
  return { code, out, err };
}

/** A loopback port nobody listens on. */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe('ctl', () => {
  const dispatcher = new Dispatcher({ config: configSchema.parse({}).dispatch, log: silentLogger() });
  dispatcher.load([
    { id: 1, setid: 1, destination: 'sip:10.0.0.1:5060;transport=udp', state: 0, weight: 1, priority: 0, attrs: '', description: 'asterisk one' },
    { id: 2, setid: 1, destination: 'sip:10.0.0.2:5060;transport=tcp', state: 3, weight: 2, priority: 1, attrs: '', description: 'asterisk two' },
  ]);
  const dialogs = new Map([['abc@host', { callId: 'abc@host', accountcode: '4242424242', targetId: '1', answeredAt: 1_700_000_000_000 }]]);
  let server: MgmtServer;
  let url: string;

  beforeAll(async () => {
    server = createMgmtServer({
      host: '127.0.0.1', port: 0, token: TOKEN, log: silentLogger(),
      actions: {
        dispatcher: { list: () => dispatcher.list(), setState: (id, s) => dispatcher.setState(id, s) },
        reloadDispatcher: async () => ({ destinations: 2, problems: [] }),
        listDialogs: () => [...dialogs.values()],
        endDialog: (id) => dialogs.delete(id),
        lastReconcile: () => ({ billingDay: '2026-11-21', status: 'done', callsTotal: 1200, discrepancies: 3 }),
      },
    });
    url = (await server.listen()).url;
  });
  afterAll(async () => { await server.close(); });

  it('prints health as key/value lines', async () => {
    const r = await ctl(['health'], { url, token: TOKEN });
    expect(r).toMatchObject({ code: 0, err: '' });
    expect(r.out).toMatch(/^uptimeSec: +\d+\nstatus: +ok\n$/);
  });

  it('lists destinations as a table', async () => {
    const r = await ctl(['dispatcher', 'list'], { url, token: TOKEN });
    expect(r.code).toBe(0);
    const lines = r.out.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ID +SET +URI +STATE +WEIGHT +PRIO +ACTIVE/);
    expect(lines[1]).toMatch(/^1 +1 +sip:10\.0\.0\.1:5060;transport=udp +active +1 +0 +0 .*asterisk one$/);
    expect(lines[2]).toMatch(/^2 +1 +sip:10\.0\.0\.2:5060;transport=tcp +disabled +2 +1 .*asterisk two$/);
    expect(lines[1]!.indexOf('active')).toBe(lines[0]!.indexOf('STATE'));
  });

  it('sets a state and the dispatcher follows', async () => {
    const r = await ctl(['dispatcher', 'set', '2', 'active'], { url, token: TOKEN });
    expect(r).toMatchObject({ code: 0, out: 'destination 2 (sip:10.0.0.2:5060;transport=tcp) is now active\n' });
    expect(dispatcher.get('2')!.state).toBe('active');
  });

  it('reloads, lists and ends dialogs, shows the last reconciliation', async () => {
    expect(await ctl(['reload', 'dispatcher'], { url, token: TOKEN })).toMatchObject({ code: 0, out: 'reloaded dispatcher (destinations 2)\n' });
    const list = await ctl(['dialogs', 'list'], { url, token: TOKEN });
    expect(list.out).toMatch(/^CALLID +ACCOUNTCODE +TARGETID +ANSWEREDAT\nabc@host +4242424242 +1 +1700000000000\n$/);
    expect(await ctl(['dialogs', 'end', 'abc@host'], { url, token: TOKEN })).toMatchObject({ code: 0, out: 'ended dialog abc@host\n' });
    expect(await ctl(['dialogs', 'list'], { url, token: TOKEN })).toMatchObject({ out: 'no dialogs\n' });
    const rec = await ctl(['reconcile', 'last'], { url, token: TOKEN });
    expect(rec.out).toBe('billingDay:    2026-11-21\nstatus:        done\ncallsTotal:    1200\ndiscrepancies: 3\n');
    const json = await ctl(['--json', 'reconcile', 'last'], { url, token: TOKEN });
    expect(JSON.parse(json.out)).toEqual({ run: { billingDay: '2026-11-21', status: 'done', callsTotal: 1200, discrepancies: 3 } });
  });

  it('fails with one clear line and a non-zero exit code', async () => {
    const cases: Array<[string[], { url?: string; token?: string }, number, RegExp]> = [
      [['dispatcher', 'set', '9', 'active'], { url, token: TOKEN }, 1, /^a2b-gateway ctl: POST \/dispatcher\/9\/state: HTTP 404: no destination with id 9\n$/],
      [['dispatcher', 'set', 'x', 'active'], { url, token: TOKEN }, 2, /destination id must be a number, got "x"/],
      [['dispatcher', 'set', '1', 'sleepy'], { url, token: TOKEN }, 2, /state must be one of active, inactive, probing, disabled, got "sleepy"/],
      [['reload', 'everything'], { url, token: TOKEN }, 2, /reload what\? one of dispatcher, auth, credentials/],
      [['reload', 'auth'], { url, token: TOKEN }, 1, /HTTP 501: reloading auth is not available/],
      [['dialogs', 'end', 'nope'], { url, token: TOKEN }, 1, /HTTP 404: no dialog with Call-ID "nope"/],
      [['health'], { url, token: 'wrong-token-wrong-token' }, 1, /HTTP 401: invalid bearer token \(check --token/],
      [['health', '--url', 'ftp://x'], { token: TOKEN }, 2, /--url must be an http:\/\/ URL/],
      [['frobnicate'], { url, token: TOKEN }, 2, /unknown command 'frobnicate'/],
    ];
    for (const [argv, conn, code, msg] of cases) {
      const r = await ctl(argv, conn);
      expect({ argv, code: r.code, err: r.err }).toEqual({ argv, code, err: expect.stringMatching(msg) });
    }
  });

  it('finds the address and token in the config file when not given', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'a2b-ctl-'));
    try {
      const file = join(dir, 'gw.yaml');
      writeFileSync(file, `mgmt:\n  host: 127.0.0.1\n  port: ${new URL(url).port}\n  token: ${TOKEN}\n`);
      const r = await ctl(['-c', file, 'dispatcher', 'list'], {});
      expect(r.code).toBe(0);
      expect(r.out).toMatch(/^ID +SET/);
      writeFileSync(file, 'mgmt:\n  port: "eighty"\n');
      const bad = await ctl(['-c', file, 'health'], {});
      expect(bad.code).toBe(2);
      expect(bad.err).toMatch(/^a2b-gateway ctl: cannot read the configuration \(use --url\/--token\): .*mgmt\.port/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('says in one line when the server is down', async () => {
    const down = `http://127.0.0.1:${await closedPort()}`;
    const r = await ctl(['dispatcher', 'list'], { url: down, token: TOKEN });
    expect(r.code).toBe(1);
    expect(r.out).toBe('');
    expect(r.err).toBe(`a2b-gateway ctl: cannot reach the management interface at ${down} (ECONNREFUSED)\n`);
  });
});
