// `a2b-gateway start` as systemd runs it: SIGHUP reloads (a broken config is refused and the gateway goes on),
// SIGTERM stops gracefully with every accounting record flushed to MySQL.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { stringify as toYaml } from 'yaml';
import { freePort } from '../../src/devdb/private-mariadb.js';
import { SEED } from '../../src/devdb/seed.js';
import { createTestDb, type TestDb } from '../helpers/db.js';
import { SipUa } from '../helpers/sip-ua.js';

const ROOT = join(import.meta.dirname, '..', '..');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('a2b-gateway start: signals', () => {
  let t: TestDb;
  let child: ChildProcess | undefined;
  afterAll(async () => {
    child?.kill('SIGKILL');
    await t?.drop();
  });

  it('SIGHUP with a broken config keeps it running; SIGTERM flushes every CDR and exits 0', async () => {
    t = await createTestDb({ seed: true });
    const box = await SipUa.start({ name: 'box', behaviour: { kind: 'answer' } });
    await t.db.query('INSERT INTO gw_dispatcher (setid, destination) VALUES (1, ?)', [`sip:127.0.0.1:${box.address('udp').port}`]);
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'a2b-signals-'));
    const configFile = join(dir, 'gateway.yaml');
    const cfg = {
      log: { level: 'info', format: 'json' },
      db: { url: t.gwUrl },
      sip: { listen: [{ proto: 'udp', host: '127.0.0.1', port }] },
      auth: { nonceSecret: 'signals-nonce-secret-0123' },
      abuse: { whitelist: ['127.0.0.0/8'] },
      // A long flush interval: only a graceful stop gets the last records out in time.
      acc: { journalDir: join(dir, 'journal'), flushIntervalMs: 60_000, batchSize: 10_000 },
      dialog: { stateDir: join(dir, 'dialogs') },
      reconcile: { enabled: false }, mgmt: { enabled: false },
    };
    writeFileSync(configFile, toYaml(cfg));
    const logFile = join(dir, 'stdout.log');
    child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli/main.ts'), 'start', '--config', configFile], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => { out += d.toString(); writeFileSync(logFile, out); });
    child.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
    const caller = await SipUa.start({ name: 'bob', host: SEED.cards.bob.sip.host });
    try {
      const via = { host: '127.0.0.1', port, proto: 'udp' as const };
      const deadline = Date.now() + 20_000;
      while (Date.now() < deadline && !out.includes('a2b-gateway started')) await sleep(100);
      expect(out).toContain('a2b-gateway started');

      writeFileSync(configFile, 'sip:\n  listen: nonsense\n');
      child.kill('SIGHUP');
      await sleep(800);
      expect(out).toContain('config reload refused; the running config stays');
      writeFileSync(configFile, toYaml(cfg));

      const callIds: string[] = [];
      for (let i = 0; i < 3; i++) {
        const call = caller.invite({ to: `sip:1555000200${i}@127.0.0.1:${port}`, via });
        expect((await call.final(5000)).status).toBe(200);
        call.ack();
        expect((await call.dialog!.request('BYE').final()).status).toBe(200);
        callIds.push(call.callId);
      }
      const exited = new Promise<number | null>((r) => child!.once('exit', (code) => r(code)));
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      child = undefined;
      const [rows] = await t.db.query('SELECT callid FROM gw_cdr ORDER BY id');
      expect((rows as Array<{ callid: string }>).map((r) => r.callid).sort()).toEqual([...callIds].sort());
      expect(readFileSync(logFile, 'utf8')).toContain('a2b-gateway stopped');
    } finally {
      await caller.close();
      await box.close();
    }
  }, 60_000);
});
