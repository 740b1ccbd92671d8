// Password guessing and extension enumeration by a DISGUISED sipvicious (Debian package `sipvicious` 0.3.x) against
// the whole gateway (startGateway, seeded MariaDB, default scanner list), on loopback.
// Real attackers change the User-Agent, so the scanner list alone cannot be the defence. The tools run from
// Debian's own Python modules through a tiny shim that changes two things only:
//   - the User-Agent 'friendly-scanner' → 'Zoiper rv2.10.11' (so abuse.scannerUserAgents does not match);
//   - svcrack computes its digest over the Request-URI it sends (`--requesturi`): svcrack 0.3.3 always hashes
//     `sip:<host>`, which the gateway refuses (uri must equal the Request-URI, 400) before any password is
//     checked, so the unpatched tool cannot try a single password here; the fix is what an attacker would do.
// What must hold: svwar cannot tell alice from an unknown user (every INVITE is challenged alike, REGISTER is not
// served), and svcrack is banned by abuse.authFailures before it reaches alice's password (listed last).
// A positive control (a two-word list from another address) proves the same shim DOES find the password when the
// ban does not intervene, so these tests can fail. A missing tool FAILS the tests; every run has a kill timer.
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SEED } from '../../src/devdb/seed.js';
import { challengesOf, digestAnswer, sleep, startTestGateway, type TestGateway } from '../helpers/gateway.js';

interface Run { code: number | null; out: string; killed: boolean }

/** Where Debian installs sipvicious' modules (dh-python private directory). */
const SIPVICIOUS_DIR = '/usr/share/sipvicious';
const SHIM = String.raw`
import sys
sys.path.insert(0, '${SIPVICIOUS_DIR}')
try:
    import importlib
    tool = importlib.import_module('sipvicious.' + sys.argv[1])
except ImportError as e:
    print('SHIM: sipvicious is not installed (%s): apt-get install sipvicious' % e)
    sys.exit(97)
orig = tool.makeRequest
def disguised(*a, **kw):
    kw['useragent'] = 'Zoiper rv2.10.11'
    ruri = kw.get('requesturi')
    if ruri and ruri.startswith('sip:') and len(a) > 3:
        a = list(a)
        a[3] = ruri[4:]          # makeRequest hashes 'sip:' + dsthost: make that the Request-URI
        kw['requesturi'] = None
    return orig(*a, **kw)
tool.makeRequest = disguised
if hasattr(tool, 'ASipOfRedWine'):
    init = tool.ASipOfRedWine.__init__
    def bound(self, *a, **kw):
        init(self, *a, **kw)
        # svcrack 0.3.3's main() never passes -b on: bind where the test says (one source address per attacker)
        self.bindingip = self.externalip = sys.argv[2]
        self.sock.settimeout(2)   # svcrack waits 10 s for a last answer once it gives up; 2 s keeps the test short
    tool.ASipOfRedWine.__init__ = bound
sys.argv = [sys.argv[1]] + sys.argv[3:]
sys.exit(tool.main())
`;

/** Runs a sipvicious tool through the shim from source address `bind` (also passed as -b). */
function runDisguised(tool: 'svwar' | 'svcrack' | 'svmap', bind: string, args: string[], timeoutMs: number): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn('python3', ['-c', SHIM, tool, bind, '-b', bind, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let killed = false;
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { out += d.toString(); });
    const timer = setTimeout(() => { killed = true; child.kill('SIGKILL'); }, timeoutMs);
    child.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(e.code === 'ENOENT' ? new Error('python3 is not installed: apt-get install sipvicious (it depends on python3)') : e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code === 97) reject(new Error(out.trim()));
      else resolve({ code, out, killed });
    });
  });
}

const ALICE = { user: SEED.cards.alice.sip.name, password: SEED.cards.alice.sip.secret, accountcode: SEED.cards.alice.username };
const MAX_FAILURES = 3;
const SVMAP_IP = '127.0.72.1';
const SVWAR_IP = '127.0.72.2';
const SVWAR_REGISTER_IP = '127.0.72.12';
const CRACK_IP = '127.0.72.3';
const CONTROL_IP = '127.0.72.4';

let h: TestGateway;
let ruri: string;

async function metricText(): Promise<string> {
  return h.gw.metrics.text();
}

beforeAll(async () => {
  h = await startTestGateway({
    callees: [{ behaviour: { kind: 'answer' } }],
    config: {
      billing: { creditCheck: false },
      mgmt: { enabled: false },
      // MD5 first: sipvicious answers the first challenge and knows MD5 only
      auth: { algorithms: ['MD5', 'SHA-256'] },
      abuse: { authFailures: { maxFailures: MAX_FAILURES, windowSec: 600, banSec: 600 } },
    },
  });
  ruri = `sip:15551234567@127.0.0.1:${h.udp.port}`;
});

afterAll(async () => {
  await h?.stop();
});

describe('a disguised sipvicious (User-Agent changed) against the gateway', () => {
  it('svmap now sees the gateway (the disguise works; svmap output would show a found device)', async () => {
    const r = await runDisguised('svmap', SVMAP_IP, ['-p', String(h.udp.port), '127.0.0.1'], 12_000);
    expect(r.killed, r.out).toBe(false);
    expect(r.out).toMatch(new RegExp(`127\\.0\\.0\\.1:${h.udp.port}`));
    expect(r.out).not.toMatch(/found nothing/);
  });

  it('svwar cannot tell alice from unknown users: INVITE is challenged alike for all, REGISTER is not served', async () => {
    const dict = join(h.dir, 'svwar-users.txt');
    await writeFile(dict, ['1000', ALICE.user, '2000', '5555000002', '9999'].join('\n') + '\n');
    // both methods at once, from two addresses (each run waits out its own --maximumtime)
    const [invite, register] = await Promise.all([runDisguised('svwar', SVWAR_IP, ['-m', 'INVITE', '--force', '-d', dict, '--maximumtime', '2', '--debug',
      '-p', String(h.udp.port), '127.0.0.1'], 15_000), runDisguised('svwar', SVWAR_REGISTER_IP, ['-m', 'REGISTER', '-d', dict, '--maximumtime', '2',
      '-p', String(h.udp.port), '127.0.0.1'], 15_000)]);
    expect(invite.killed, invite.out).toBe(false);
    expect(invite.out).not.toMatch(/exists/);
    expect(invite.out).toMatch(/found nothing/);
    // --debug prints every answer: all finals are the same 407 (the random user's and the first dictionary user's;
    // svwar then stops, seeing no difference). Stateless challenges: no retransmitted 407s among them.
    const finals = [...invite.out.matchAll(/SIP\/2\.0 ([2-6]\d\d) /g)].map((m) => m[1]);
    expect(finals.length).toBeGreaterThanOrEqual(2);
    expect(new Set(finals)).toEqual(new Set(['407']));

    expect(register.killed, register.out).toBe(false);
    expect(register.out).not.toMatch(/exists/);
    expect(register.out).not.toContain(ALICE.user);
    // challenges are not failures: enumeration alone bans nobody and no call reached a box
    expect(h.gw.auth.listBans()).toEqual([]);
    expect(h.callees[0]!.invites()).toEqual([]);
  });

  it('positive control: with fewer wrong guesses than the ban threshold svcrack DOES find alice\'s password', async () => {
    const words = join(h.dir, 'control-words.txt');
    await writeFile(words, ['123456', ALICE.password].join('\n') + '\n');
    const r = await runDisguised('svcrack', CONTROL_IP, ['-m', 'INVITE', '-u', ALICE.user, '-d', words,
      '--requesturi', ruri, '--maximumtime', '2', '-p', String(h.udp.port), '127.0.0.1'], 15_000);
    expect(r.killed, r.out).toBe(false);
    expect(r.out, r.out).toMatch(new RegExp(`\\|\\s*${ALICE.user}\\s*\\|\\s*${ALICE.password}\\s*\\|`)); // svcrack's result table
    expect(h.callees[0]!.invites().map((m) => m.headerLines('p-accountcode'))).toEqual([[ALICE.accountcode]]);
  });

  it('svcrack with alice\'s password last: banned after the failures threshold, the password is never found', async () => {
    const words = join(h.dir, 'svcrack-words.txt');
    await writeFile(words, ['123456', 'password', 'alice', '4242424242', 'qwerty', 'letmein', ALICE.password].join('\n') + '\n');
    const invitesBefore = h.callees[0]!.invites().length;
    const r = await runDisguised('svcrack', CRACK_IP, ['-m', 'INVITE', '-u', ALICE.user, '-d', words,
      '--requesturi', ruri, '--maximumtime', '2', '-p', String(h.udp.port), '127.0.0.1'], 20_000);
    expect(r.killed, r.out).toBe(false);
    expect(r.out, r.out).not.toContain(ALICE.password);
    expect(r.out, r.out).toMatch(/found nothing/);
    expect(h.gw.auth.listBans()).toEqual([expect.objectContaining({ source: CRACK_IP, reason: 'auth' })]);
    expect(h.callees[0]!.invites().length).toBe(invitesBefore);
    const text = await metricText();
    expect(text).toMatch(/a2b_bans_total\{reason="auth-failures"\} 1\b/);
    expect(text).toMatch(/a2b_abuse_drops_total\{reason="banned"\} [1-9]/);
  });

  it('the banned source gets no answer even with the right password', async () => {
    const caller = await h.caller({ host: CRACK_IP });
    const from = `sip:${ALICE.user}@${CRACK_IP}`;
    const first = caller.invite({ to: ruri, via: h.udp, from });
    await expect(first.final(800)).rejects.toThrow();
    // the challenge another address gets is not accepted from the banned one either
    const other = await h.caller({ host: '127.0.72.9' });
    const r1 = await other.invite({ to: ruri, via: h.udp, from: `sip:${ALICE.user}@127.0.72.9` }).final();
    expect(r1.status).toBe(407);
    const auth = digestAnswer(challengesOf(r1)[0]!, { method: 'INVITE', uri: ruri, user: ALICE.user, password: ALICE.password });
    const second = caller.invite({ to: ruri, via: h.udp, from, headers: [['Proxy-Authorization', auth]] });
    await expect(second.final(800)).rejects.toThrow();
    await sleep(50);
    expect(h.callees[0]!.invites().filter((m) => m.callId === second.callId)).toEqual([]);
  });
});
