// Toll-fraud reconnaissance with the REAL sipvicious tools (Debian package `sipvicious` 0.3.x: svmap, svwar,
// svcrack) against the whole gateway (startGateway, seeded MariaDB), on loopback, with its DEFAULT abuse
// config: sipvicious always sends `User-Agent: friendly-scanner`, which abuse.scannerUserAgents drops before
// anything is answered, so the scanner learns nothing — not even that a SIP server listens there.
// A missing tool FAILS these tests with a clear message: they never skip. Every run has a kill timer.
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SEED } from '../../src/devdb/seed.js';
import { digestInvite, finish, startTestGateway, type TestGateway } from '../helpers/gateway.js';

interface Run { code: number | null; out: string; killed: boolean }

/** Runs a tool with a hard kill timer; a tool that is not installed rejects with the package to install. */
function runTool(cmd: string, args: string[], timeoutMs: number): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let killed = false;
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { out += d.toString(); });
    const timer = setTimeout(() => { killed = true; child.kill('SIGKILL'); }, timeoutMs);
    child.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(e.code === 'ENOENT'
        ? new Error(`${cmd} is not installed (not on PATH): apt-get install sipvicious — the security e2e tests need the real tool`)
        : e);
    });
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, out, killed }); });
  });
}

const ALICE = { user: SEED.cards.alice.sip.name, password: SEED.cards.alice.sip.secret };
/** The scanner's own address: untrusted, not a box (boxes are whitelisted), one per tool so counters stay apart. */
const SVMAP_IP = '127.0.71.1';
const SVWAR_IPS = ['127.0.71.2', '127.0.71.12'];
const SVCRACK_IP = '127.0.71.3';

let h: TestGateway;

async function metric(name: string, labels: string): Promise<number> {
  const text = await h.gw.metrics.text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(labels));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}

beforeAll(async () => {
  h = await startTestGateway({
    callees: [{ behaviour: { kind: 'answer' } }],
    config: { billing: { creditCheck: false }, mgmt: { enabled: false } },
  });
});

afterAll(async () => {
  await h?.stop();
});

describe('sipvicious against the gateway with default abuse settings (scanner User-Agent dropped)', () => {
  it('svmap finds no SIP device on the gateway port, and the drops are counted as scanner', async () => {
    const before = await metric('a2b_abuse_drops_total', 'reason="scanner"');
    const r = await runTool('svmap', ['-b', SVMAP_IP, '-p', String(h.udp.port), '127.0.0.1'], 12_000);
    expect(r.killed, r.out).toBe(false);
    expect(r.out).toMatch(/found nothing/);
    expect(r.out).not.toMatch(/127\.0\.0\.1:\d+\s*\|/); // no result row "| 127.0.0.1:PORT | <User-Agent> |"
    const after = await metric('a2b_abuse_drops_total', 'reason="scanner"');
    expect(after - before).toBeGreaterThanOrEqual(1);
  });

  it('svmap with INVITE instead of OPTIONS: still nothing', async () => {
    const before = await metric('a2b_abuse_drops_total', 'reason="scanner"');
    const r = await runTool('svmap', ['-b', SVMAP_IP, '-m', 'INVITE', '-e', '15551234567', '-p', String(h.udp.port), '127.0.0.1'], 12_000);
    expect(r.killed, r.out).toBe(false);
    expect(r.out).toMatch(/found nothing/);
    expect(await metric('a2b_abuse_drops_total', 'reason="scanner"')).toBeGreaterThan(before);
    expect(h.callees[0]!.invites()).toEqual([]);
  });

  it('svwar (extension enumeration, REGISTER and INVITE) gets no answer at all: it cannot tell alice from nobody', async () => {
    const dict = join(h.dir, 'svwar-users.txt');
    await writeFile(dict, ['1000', ALICE.user, '2000', '5555000002', '9999'].join('\n') + '\n');
    const before = await metric('a2b_abuse_drops_total', 'reason="scanner"');
    // both methods at once (own source addresses): each run waits out its own silence
    const runs = await Promise.all(['REGISTER', 'INVITE'].map((method, i) =>
      runTool('svwar', ['-b', SVWAR_IPS[i]!, '-m', method, '-d', dict, '--maximumtime', '2', '-p', String(h.udp.port), '127.0.0.1'], 15_000)));
    for (const r of runs) {
      expect(r.killed, r.out).toBe(false);
      expect(r.out).not.toContain(ALICE.user);
      expect(r.out).toMatch(/no server response|found nothing/i);
    }
    expect(await metric('a2b_abuse_drops_total', 'reason="scanner"')).toBeGreaterThanOrEqual(before + 2);
    expect(h.callees[0]!.invites()).toEqual([]);
  });

  it('svcrack gets no server response: not one password can be tried', async () => {
    const words = join(h.dir, 'svcrack-words.txt');
    await writeFile(words, ['123456', 'password', ALICE.password].join('\n') + '\n');
    const r = await runTool('svcrack', ['-b', SVCRACK_IP, '-m', 'INVITE', '-u', ALICE.user, '-d', words,
      '--requesturi', `sip:15551234567@127.0.0.1:${h.udp.port}`, '-p', String(h.udp.port), '127.0.0.1'], 20_000);
    expect(r.killed, r.out).toBe(false);
    expect(r.out).not.toContain(ALICE.password);
    expect(r.out).toMatch(/no server response/);
    expect(h.callees[0]!.invites()).toEqual([]);
  });

  it('the scanners banned nobody else: a normal digest call still goes through', async () => {
    const caller = await h.caller({ host: '127.0.71.9' });
    const to = h.ruri('15551234567');
    const { second } = await digestInvite(caller, { to, via: h.udp, user: ALICE.user, password: ALICE.password });
    expect((await finish(second)).status).toBe(200);
    expect(h.gw.auth.listBans().map((b) => b.source)).not.toContain('127.0.71.9');
  });
});
