// The two failures an operator fears most: MySQL going away in the middle of traffic (every record must still
// arrive, exactly once) and the gateway itself being killed with calls up (they must still be ended on time).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { stringify as toYaml } from 'yaml';
import { validateConfig } from '../../src/config/load.js';
import { migrate, planGrants, runSteps } from '../../src/db/migrate.js';
import { createDb, type Db } from '../../src/db/pool.js';
import { loadA2BillingFixture } from '../../src/devdb/fixture.js';
import { freePort, startPrivateMariaDb, type PrivateMariaDb } from '../../src/devdb/private-mariadb.js';
import { SEED, seedA2Billing } from '../../src/devdb/seed.js';
import { startGateway } from '../../src/gateway.js';
import { silentLogger } from '../../src/log.js';
import { createTestDb, type TestDb } from '../helpers/db.js';
import { SipUa } from '../helpers/sip-ua.js';

const ROOT = join(import.meta.dirname, '..', '..');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function count(db: Db, sql: string): Promise<number> {
  const [r] = await db.query(sql);
  return Number((r as Array<{ n: number }>)[0]!.n);
}

describe('MySQL stopped in the middle of a run of calls', () => {
  let server: PrivateMariaDb;
  afterAll(async () => { await server?.stop(); });

  it('every acc row and CDR arrives exactly once after MySQL comes back', async () => {
    server = await startPrivateMariaDb();
    const admin = createDb({ url: server.rootUrl, poolSize: 1 });
    await admin.query('CREATE DATABASE a2b');
    await admin.end();
    const root = createDb({ url: `${server.rootUrl}a2b`, poolSize: 2 });
    await loadA2BillingFixture(root);
    await migrate(root);
    await seedA2Billing(root);
    await runSteps(root, planGrants('a2b', { user: 'gw', host: '%', password: 'gw-pw' }));
    const box = await SipUa.start({ name: 'box', behaviour: { kind: 'answer' } });
    await root.query('INSERT INTO gw_dispatcher (setid, destination) VALUES (1, ?)', [`sip:127.0.0.1:${box.address('udp').port}`]);
    await root.end();

    const dir = mkdtempSync(join(tmpdir(), 'a2b-outage-'));
    const gw = await startGateway({
      log: silentLogger(),
      config: validateConfig({
        db: { url: `mysql://gw:gw-pw@127.0.0.1:${server.port}/a2b`, connectTimeoutMs: 1000 },
        sip: { listen: [{ proto: 'udp', host: '127.0.0.1', port: 0 }] },
        auth: { nonceSecret: 'outage-nonce-secret-0123' },
        abuse: { pike: { enabled: false } },
        // Credit checks fail closed while MySQL is away; this operator leaves credit to A2Billing's AGI.
        billing: { creditCheck: false },
        acc: { journalDir: join(dir, 'journal'), flushIntervalMs: 50, writeTimeoutMs: 1000 },
        dialog: { stateDir: join(dir, 'dialogs') },
        reconcile: { enabled: false }, mgmt: { enabled: false },
      }),
    });
    const caller = await SipUa.start({ name: 'bob', host: SEED.cards.bob.sip.host });
    const via = { host: '127.0.0.1', port: gw.proxy.address('udp').port, proto: 'udp' as const };
    const callIds: string[] = [];
    const oneCall = async (i: number): Promise<void> => {
      const call = caller.invite({ to: `sip:1555000${1000 + i}@127.0.0.1:${via.port}`, via });
      expect((await call.final()).status).toBe(200);
      call.ack();
      expect((await call.dialog!.request('BYE').final()).status).toBe(200);
      callIds.push(call.callId);
    };
    try {
      for (let i = 0; i < 10; i++) await oneCall(i);
      await server.halt(); // MySQL gone: calls go on, records go to the journal
      for (let i = 10; i < 30; i++) await oneCall(i);
      await sleep(300);
      const journaled = gw.accounting.writerStats().reduce((n, s) => n + s.journalRecords, 0);
      expect(journaled).toBeGreaterThan(0);
      await server.start();
      for (let i = 30; i < 40; i++) await oneCall(i);

      const check = createDb({ url: `${server.rootUrl}a2b`, poolSize: 1 });
      const deadline = Date.now() + 30_000;
      const total = async (): Promise<number> => (await count(check, 'SELECT COUNT(*) n FROM gw_cdr')) + (await count(check, 'SELECT COUNT(*) n FROM gw_acc'));
      // Each writer (acc, cdr) replays its own journal: wait for both.
      while (Date.now() < deadline && (await total()) < 120) await sleep(200);
      expect(await count(check, 'SELECT COUNT(*) n FROM gw_cdr')).toBe(40);
      expect(await count(check, 'SELECT COUNT(DISTINCT callid) n FROM gw_cdr')).toBe(40);
      expect(await count(check, "SELECT COUNT(*) n FROM gw_acc WHERE method = 'INVITE'")).toBe(40);
      expect(await count(check, "SELECT COUNT(*) n FROM gw_acc WHERE method = 'BYE'")).toBe(40);
      const [r] = await check.query('SELECT callid FROM gw_cdr');
      expect(new Set((r as Array<{ callid: string }>).map((x) => x.callid))).toEqual(new Set(callIds));
      await check.end();
    } finally {
      await caller.close();
      await gw.stop();
      await box.close();
    }
  }, 60_000);
});

describe('the gateway killed (SIGKILL) with a call up', () => {
  let t: TestDb;
  let child: ChildProcess | undefined;
  afterAll(async () => {
    child?.kill('SIGKILL');
    await t?.drop();
  });

  function startChild(configFile: string): ChildProcess {
    const c = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli/main.ts'), 'start', '--config', configFile], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    c.stderr!.on('data', () => undefined);
    return c;
  }

  async function waitUp(ua: SipUa, port: number): Promise<void> {
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      const r = await ua.request('OPTIONS', { to: `sip:127.0.0.1:${port}`, via: { host: '127.0.0.1', port, proto: 'udp' } }).final(300).catch(() => undefined);
      if (r?.status === 200) return;
      await sleep(200);
    }
    throw new Error('the gateway did not come up');
  }

  it('still knows the call after a restart and ends it with BYE on both sides when its credit runs out', async () => {
    t = await createTestDb({ seed: true });
    // A card with credit for 6 s on prefix 1999 (0.06/min in 6 s blocks), IP-authenticated from 127.0.0.42.
    await t.db.query(`INSERT INTO cc_card (id, username, useralias, uipass, credit, tariff, activated, status, typepaid, creditlimit, firstname, lastname, address, city, state, country, zipcode, phone, email, fax, redial, loginkey, tag, email_notification, company_name, company_website, traffic_target)
      VALUES (42, '9000000042', '9000000042', 'x', 0.006, 1, 't', 1, 0, 0, '', '', '', '', '', '', '', '', '', '', '', '', '', '', '', '', '')`);
    await t.db.query(`INSERT INTO cc_sip_buddies (id_cc_card, name, accountcode, secret, username, host, regexten, callerid, context, fromuser, fromdomain, insecure, mailbox, md5secret, deny, mask, allow, musiconhold, fullcontact, setvar)
      VALUES (42, '9000000042', '9000000042', 'pw', '9000000042', '127.0.0.42', '', '', 'a2billing', '', '', '', '', '', '', '', '', '', '', '')`);
    const box = await SipUa.start({ name: 'box', behaviour: { kind: 'answer' } });
    await t.db.query('INSERT INTO gw_dispatcher (setid, destination) VALUES (1, ?)', [`sip:127.0.0.1:${box.address('udp').port}`]);
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'a2b-kill-'));
    const configFile = join(dir, 'gateway.yaml');
    writeFileSync(configFile, toYaml({
      log: { level: 'warn', format: 'json' },
      db: { url: t.gwUrl },
      sip: { listen: [{ proto: 'udp', host: '127.0.0.1', port }] },
      auth: { nonceSecret: 'kill-test-nonce-secret-0123' },
      abuse: { whitelist: ['127.0.0.0/8'] },
      acc: { journalDir: join(dir, 'journal'), flushIntervalMs: 50 },
      dialog: { stateDir: join(dir, 'dialogs') },
      reconcile: { enabled: false }, mgmt: { enabled: false },
    }));
    const caller = await SipUa.start({ name: 'frank', host: '127.0.0.42' });
    try {
      child = startChild(configFile);
      await waitUp(caller, port);
      const call = caller.invite({ to: `sip:19995550042@127.0.0.1:${port}`, via: { host: '127.0.0.1', port, proto: 'udp' } });
      expect((await call.final(5000)).status).toBe(200);
      call.ack();
      const answeredAt = Date.now();
      await sleep(1500);
      child.kill('SIGKILL');
      await new Promise((r) => child!.once('exit', r));
      child = startChild(configFile);
      await waitUp(caller, port);

      const byeToCaller = await caller.waitFor((m) => m.method === 'BYE' && m.callId === call.callId, 12_000);
      const byeToCallee = await box.waitFor((m) => m.method === 'BYE' && m.callId === call.callId, 3000);
      const elapsed = Date.now() - answeredAt;
      expect(byeToCaller.callId).toBe(call.callId);
      expect(byeToCallee.callId).toBe(call.callId);
      expect(elapsed).toBeGreaterThan(5500);
      expect(elapsed).toBeLessThan(9000);
    } finally {
      await caller.close();
      await box.close();
    }
  }, 60_000);
});
