// Interop with a real third-party SIP client: sipsak (Debian package `sipsak`, installed by CI).
// The gateway listens on a fixed 4-digit port here, not port 0: sipsak 0.9.8.1 drops the last digit of a
// 5-digit port when it writes the Request-URI and To (sip:u@127.0.0.1:48154 → :4815).
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callRef } from '../../src/proxy/callref.js';
import type { SipUa } from '../helpers/sip-ua.js';
import { startCallee, startGateway, type Gateway } from './proxy-harness.js';

interface Run { code: number; stdout: string; stderr: string }

function sipsak(args: string[], timeoutMs = 8000): Promise<Run> {
  return new Promise((resolve, reject) => {
    execFile('sipsak', args, { timeout: timeoutMs }, (err, stdout, stderr) => {
      if (err && (err as NodeJS.ErrnoException).code === 'ENOENT') {
        reject(new Error('sipsak is not installed (apt-get install sipsak); the interop tests need it'));
        return;
      }
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

let gw: Gateway;
let answer: { ua: SipUa; target: Gateway['hooks']['targets'][number] };
let busy: { ua: SipUa; target: Gateway['hooks']['targets'][number] };
let dir: string;
let port: number;

beforeAll(async () => {
  answer = await startCallee({ id: 'answer', behaviour: { kind: 'answer', ringMs: 20 } });
  busy = await startCallee({ id: 'busy', behaviour: { kind: 'reject', status: 486, reason: 'Busy Here' } });
  let lastErr: unknown;
  for (let i = 0; i < 30; i++) {
    port = 2000 + Math.floor(Math.random() * 7999);
    try {
      gw = await startGateway({
        targets: [answer.target],
        sip: { listen: [{ proto: 'udp', host: '127.0.0.1', port }, { proto: 'tcp', host: '127.0.0.1', port }] },
      });
      break;
    } catch (e) {
      lastErr = e;
    }
  }
  if (!gw) throw lastErr;
  dir = await mkdtemp(join(tmpdir(), 'sipsak-'));
});

afterAll(async () => {
  await gw?.proxy.stop();
  await answer?.ua.close();
  await busy?.ua.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function inviteFile(callId: string, extra: string[] = []): Promise<string> {
  const text = [
    `INVITE sip:100@127.0.0.1:${port} SIP/2.0`,
    'From: <sip:sipsak@127.0.0.1>;tag=sk1',
    `To: <sip:100@127.0.0.1:${port}>`,
    `Call-ID: ${callId}`,
    'CSeq: 1 INVITE',
    'Contact: <sip:sipsak@127.0.0.1>',
    'Max-Forwards: 70',
    ...extra,
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
  const file = join(dir, `${callId}.sip`);
  await writeFile(file, text);
  return file;
}

describe('sipsak against the gateway', () => {
  // Fails (never skips) when the tool is missing: CI installs it, and every test below fails with the same message.
  it('sipsak is installed', async () => {
    const v = await sipsak(['--version']);
    expect(v.stdout + v.stderr).toMatch(/sipsak \d+\.\d+/);
  });

  it('OPTIONS to the gateway over UDP gets 200 (sipsak exit code 0)', async () => {
    const r = await sipsak(['-vv', '-s', `sip:monitor@127.0.0.1:${port}`]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('SIP/2.0 200 OK');
    expect(r.stdout).toContain('Server: a2b-gateway');
  });

  it('OPTIONS to the gateway over TCP gets 200', async () => {
    const r = await sipsak(['-vv', '-E', 'tcp', '-s', `sip:monitor@127.0.0.1:${port}`]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('SIP/2.0 200 OK');
    expect(r.stdout).toContain('Via: SIP/2.0/TCP');
  });

  it('Max-Forwards 0 gets 483 (exit code 1), and traceroute mode sees 483 then 200', async () => {
    const r = await sipsak(['-vv', '-m', '0', '-s', `sip:monitor@127.0.0.1:${port}`]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('SIP/2.0 483 Too Many Hops');
    const t = await sipsak(['-T', '-s', `sip:monitor@127.0.0.1:${port}`]);
    expect(t.code).toBe(0);
    expect(t.stdout).toMatch(/483 Too Many Hops[\s\S]*200 OK/);
  });

  it('an INVITE from sipsak reaches the callee with one trusted P-Accountcode, is answered 200, and its ACK is loose-routed', async () => {
    gw.hooks.targets = [answer.target];
    const callId = `sipsak-call-${Date.now()}@127.0.0.1`;
    const file = await inviteFile(callId, ['P-Accountcode: 666', 'p-accountcode: 777']);
    const r = await sipsak(['-vv', '-f', file, '-s', `sip:100@127.0.0.1:${port}`]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('SIP/2.0 180 Ringing');
    expect(r.stdout).toContain('SIP/2.0 200 OK');
    expect(r.stdout).toMatch(new RegExp(`Record-Route: <sip:127\\.0\\.0\\.1:${port};lr;ftag=sk1;sig=[\\w-]{22}>`));
    const inv = await answer.ua.waitFor((m) => m.method === 'INVITE' && m.callId === callId);
    expect(inv.headerLines('p-accountcode')).toEqual(['4242424242']);
    expect(inv.header('x-a2b-callref')).toBe(callRef(callId));
    // sipsak ACKs the 2xx itself (with its own Call-ID mangling), through our Record-Route
    const ack = await answer.ua.waitFor((m) => m.method === 'ACK' && m.source.port === gw.udp.port);
    expect(ack.headerValues('route')).toEqual([]);
    expect(ack.headerLines('p-accountcode')).toEqual([]);
    const types = gw.hooks.events.filter((e) => 'facts' in e && e.facts.callId === callId).map((e) => e.type);
    expect(types).toEqual(['start', 'answered']);
  });

  it('a busy callee: sipsak gets 486 (exit code 1) and the gateway ACKs the 486 hop by hop', async () => {
    gw.hooks.targets = [busy.target];
    const callId = `sipsak-busy-${Date.now()}@127.0.0.1`;
    const r = await sipsak(['-vv', '-f', await inviteFile(callId), '-s', `sip:100@127.0.0.1:${port}`]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('SIP/2.0 486 Busy Here');
    const inv = await busy.ua.waitFor((m) => m.method === 'INVITE' && m.callId === callId);
    const ack = await busy.ua.waitFor((m) => m.method === 'ACK' && m.callId === callId);
    expect(ack.topBranch).toBe(inv.topBranch);
    gw.hooks.targets = [answer.target];
  });
});
