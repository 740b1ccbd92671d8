// Issue 4 acceptance with a real third-party client: sipsak (Debian package `sipsak`; CI installs it)
// completes digest proxy authentication through the WHOLE gateway (startGateway, seeded MariaDB).
// A missing sipsak FAILS these tests with a clear message: it never skips.
// The gateway listens on a 4-digit port: sipsak 0.9.8.1 drops the last digit of a 5-digit port when it
// writes the Request-URI. UDP only: over TCP sipsak 0.9.8.1 reads one message per segment and drops the
// 407 when it arrives in the same segment as the 100 Trying ("received too much bytes"), then hangs.
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SEED } from '../../src/devdb/seed.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';

const SIPSAK = 'sipsak'; // Debian installs /usr/bin/sipsak
const ALICE = { user: SEED.cards.alice.sip.name, password: SEED.cards.alice.sip.secret, accountcode: SEED.cards.alice.username };
/** sipsak's own address: untrusted (so it is challenged), and not a box address (boxes are never banned). */
const SIPSAK_IP = '127.0.70.1';

interface Run { code: number; stdout: string; stderr: string }

function sipsak(args: string[], timeoutMs = 8000): Promise<Run> {
  return new Promise((resolve, reject) => {
    execFile(SIPSAK, args, { timeout: timeoutMs }, (err, stdout, stderr) => {
      if (err && (err as NodeJS.ErrnoException).code === 'ENOENT') {
        reject(new Error(`sipsak is not installed (not found on PATH): apt-get install sipsak — the interop acceptance test needs it`));
        return;
      }
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

let h: TestGateway;
let port: number;

beforeAll(async () => {
  h = await startTestGateway({
    callees: [{ behaviour: { kind: 'answer', ringMs: 20 } }],
    sipPortRange: [2000, 9999],
    // sipsak reads only the FIRST Proxy-Authenticate and knows MD5 only ("unsupported authentication
    // algorithm" on SHA-256), although RFC 8760 says a client must use the topmost one it supports:
    // operators with such phones list MD5 first; SHA-256 is still offered.
    config: { auth: { algorithms: ['MD5', 'SHA-256'] }, billing: { creditCheck: true }, mgmt: { enabled: false } },
  });
  port = h.udp.port;
});

afterAll(async () => {
  await h?.stop();
});

async function inviteFile(callId: string, dialled: string, fromUser: string): Promise<string> {
  const text = [
    `INVITE sip:${dialled}@127.0.0.1:${port} SIP/2.0`,
    `From: <sip:${fromUser}@${SIPSAK_IP}>;tag=sk${Date.now() % 100000}`,
    `To: <sip:${dialled}@127.0.0.1:${port}>`,
    `Call-ID: ${callId}`,
    'CSeq: 1 INVITE',
    `Contact: <sip:${fromUser}@${SIPSAK_IP}>`,
    'Max-Forwards: 70',
    'P-Accountcode: 6666000003',
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
  const file = join(h.dir, `${callId.replace(/[^\w.-]/g, '_')}.sip`);
  await writeFile(file, text);
  return file;
}

describe('sipsak (a real third-party client) through the whole gateway', () => {
  it('sipsak is installed', async () => {
    const v = await sipsak(['--version']);
    expect(v.stdout + v.stderr).toMatch(/sipsak \d+\.\d+/);
  });

  it('completes digest authentication for alice: 407 answered, 200, the callee gets alice\'s P-Accountcode only', async () => {
    const callId = `sipsak-auth-${Date.now()}@${SIPSAK_IP}`;
    const file = await inviteFile(callId, '15551234567', ALICE.user);
    const r = await sipsak(['-vvv', '--local-ip', SIPSAK_IP, '-f', file, '-s', `sip:15551234567@127.0.0.1:${port}`, '-u', ALICE.user, '-a', ALICE.password]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    // -vvv prints every message: the challenge, sipsak's answer to it (MD5, qop=auth), the 200
    expect(r.stdout).toMatch(/SIP\/2\.0 407 Proxy Authentication Required[\s\S]*Proxy-Authorization: Digest username="4242424242"[^\r\n]*qop=auth[\s\S]*SIP\/2\.0 200 OK/);
    const box = h.callees[0]!;
    const invites = box.invites().filter((m) => m.callId === callId);
    expect(invites).toHaveLength(1);
    expect(invites[0]!.headerLines('p-accountcode')).toEqual([ALICE.accountcode]);
    expect(invites[0]!.headerLines('proxy-authorization')).toEqual([]);
    // sipsak ACKs the 200 itself, through our Record-Route, with its spoofed P-Accountcode: stripped too
    const ack = await box.ua.waitFor((m) => m.method === 'ACK' && m.callId === callId);
    expect(ack.headerLines('p-accountcode')).toEqual([]);
  });

  it('a wrong password: sipsak gets 403 (non-zero exit code) and the callee never sees the call', async () => {
    const callId = `sipsak-bad-${Date.now()}@${SIPSAK_IP}`;
    const file = await inviteFile(callId, '15551234568', ALICE.user);
    const r = await sipsak(['-vvv', '--local-ip', SIPSAK_IP, '-f', file, '-s', `sip:15551234568@127.0.0.1:${port}`, '-u', ALICE.user, '-a', 'not-alices-password']);
    expect(r.code).not.toBe(0);
    expect(r.stdout).toMatch(/SIP\/2\.0 407 [\s\S]*Proxy-Authorization: Digest[\s\S]*SIP\/2\.0 403 Forbidden/);
    expect(h.callees[0]!.invites().filter((m) => m.callId === callId)).toEqual([]);
  });
});
