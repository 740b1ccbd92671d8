// Cost of one auth decision: source-IP match, screening, a 407 challenge, a digest verification
// (SHA-256 and MD5, credentials cached), and the unknown-user path (which must cost the same).
// Runs the real stage on in-memory rows (the database is not what is measured here).
// Run: npx tsx bench/auth-cost.ts [seconds-per-case]
import { cpus } from 'node:os';
import { computeResponse, parseCredentials, type DigestAlgorithm } from '../src/auth/digest.js';
import type { AddressRow } from '../src/auth/address.js';
import type { SubscriberRow } from '../src/auth/credentials.js';
import { createAuthStage } from '../src/auth/stage.js';
import { configSchema } from '../src/config/schema.js';
import { silentLogger } from '../src/log.js';
import type { AuthDecision, RequestFacts } from '../src/proxy/hooks.js';

const SECONDS = Number(process.argv[2] ?? 1);
const RURI = 'sip:15551234567@gw.example.net';

function facts(ip: string, headers: Record<string, string[]> = {}, fromUser = 'user500'): RequestFacts {
  return {
    method: 'INVITE', ruri: RURI, ruriUser: '15551234567', ruriHost: 'gw.example.net', callId: 'bench@x', fromUser, fromDomain: 'gw.example.net',
    fromTag: 't', toUser: '15551234567', toDomain: 'gw.example.net', cseq: 1, userAgent: 'Bench/1.0', source: { ip, port: 5060, proto: 'udp' },
    header: (n: string) => headers[n.toLowerCase()] ?? [],
  };
}

// 10,000 address rows: /32 hosts, /24 and /16 ranges, some with ports/protos, and IPv6.
const rows: AddressRow[] = [];
for (let i = 0; i < 10_000; i++) {
  const a = 10 + (i % 200), b = (i >> 3) & 255, c = i & 255;
  const kind = i % 10;
  const ip = kind < 6 ? `${a}.${b}.${c}.${i % 250 + 1}` : kind < 8 ? `${a}.${b}.${c}.0` : kind < 9 ? `${a}.${b}.0.0` : `2001:db8:${i.toString(16)}::`;
  const mask = kind < 6 ? 32 : kind < 8 ? 24 : kind < 9 ? 16 : 48;
  rows.push({ id: `t${i}`, grp: 1, ip_addr: ip, mask, port: i % 7 === 0 ? 5060 : 0, proto: i % 11 === 0 ? 'udp' : 'any', tag: '', accountcode: `acc${i}`, card_id: i, description: '' });
}
const subscribers = new Map<string, SubscriberRow[]>();
for (let i = 0; i < 1000; i++) subscribers.set(`user${i}`, [{ username: `user${i}`, domain: '', password: `secret-${i}`, accountcode: `acc${i}`, card_id: i, card_status: 1 }]);

const stage = createAuthStage({
  config: configSchema.parse({ auth: { nonceSecret: 'bench-secret-0123456789abcdef' }, abuse: { pike: { enabled: true, maxRequests: 1e9 } } }),
  sources: { addressRows: async () => rows, subscribers: async (u) => subscribers.get(u) ?? [] },
  log: silentLogger(),
});

interface Figure { name: string; opsPerSec: number; usPerOp: number; cpuUsPerOp: number }
const figures: Figure[] = [];

/** Runs op for SECONDS (or exactly `count` times when given, for ops that can be done only once). */
async function measure(name: string, op: (i: number) => unknown | Promise<unknown>, isAsync: boolean, count?: number): Promise<void> {
  if (count === undefined) for (let i = 0; i < 2000; i++) await op(i); // warm-up
  let n = 0;
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const end = t0 + BigInt(Math.round(SECONDS * 1e9));
  while (count === undefined ? process.hrtime.bigint() < end : n < count) {
    for (let k = 0; k < 500; k++, n++) {
      if (isAsync) await op(n);
      else op(n);
    }
  }
  const ns = Number(process.hrtime.bigint() - t0);
  const cpu = process.cpuUsage(cpu0);
  figures.push({ name, opsPerSec: Math.round((n * 1e9) / ns), usPerOp: ns / 1000 / n, cpuUsPerOp: (cpu.user + cpu.system) / n });
}

function expect(d: AuthDecision, kind: AuthDecision['kind']): void {
  if (d.kind !== kind) throw new Error(`bench sanity: expected ${kind}, got ${JSON.stringify(d)}`);
}

async function main(): Promise<void> {
  await stage.reload();
  expect(await stage.authenticate(facts('10.0.0.1')), 'ok');
  const hosts = rows.filter((_, i) => i % 10 < 6).slice(0, 1000).map((r) => r.ip_addr);
  const misses = Array.from({ length: 1000 }, (_, i) => `198.51.${i >> 8}.${i & 255}`);

  await measure('IP auth, trusted source (10k rows, LPM)', (i) => stage.authenticate(facts(hosts[i % hosts.length]!)), true);
  await measure('IP auth miss → 407 challenge (nonce issue)', (i) => stage.authenticate(facts(misses[i % misses.length]!)), true);
  await measure('screen() per request (untrusted source)', (i) => stage.screen(facts(misses[i % misses.length]!)), false);

  for (const algorithm of ['SHA-256', 'MD5'] as DigestAlgorithm[]) {
    // one nonce per 1000 requests, nc counting up, like a busy phone fleet
    const cache: Array<{ nonce: string; user: string }> = [];
    const prepare = async (j: number) => {
      const d = await stage.authenticate(facts('198.51.100.1'));
      if (d.kind !== 'challenge') throw new Error('no challenge');
      const c = parseCredentials([d.headers[0]![1]]);
      cache[j] = { nonce: c.ok ? c.credentials[0]!.params.get('nonce')! : '', user: `user${j % 1000}` };
    };
    const headerFor = (i: number, user: string, password: string, nonce: string) => {
      const nc = ((i % 1000) + 1).toString(16).padStart(8, '0');
      const response = computeResponse({ algorithm, username: user, realm: 'a2b-gateway', password, method: 'INVITE', uri: RURI, nonce, nc, cnonce: 'abcdef', qop: 'auth' });
      return `Digest username="${user}", realm="a2b-gateway", nonce="${nonce}", uri="${RURI}", response="${response}", algorithm=${algorithm}, cnonce="abcdef", qop=auth, nc=${nc}`;
    };
    // Responses are computed outside the timed loop (that is the phone's work): pre-build a pool.
    const pool: RequestFacts[] = [];
    const bad: RequestFacts[] = [];
    for (let j = 0; j < 400; j++) {
      await prepare(j);
      const { nonce, user } = cache[j]!;
      for (let i = 0; i < 50; i++) {
        pool.push(facts('198.51.100.1', { 'proxy-authorization': [headerFor(i, user, `secret-${j % 1000}`, nonce)] }, user));
        bad.push(facts('198.51.100.1', { 'proxy-authorization': [headerFor(i, `ghost${j}`, 'x', nonce)] }, `ghost${j}`));
      }
    }
    // warm-up on the first 2000 (each prepared request is valid once: its nc is then used up)
    for (let i = 0; i < 2000; i++) expect(await stage.authenticate(pool[i]!), 'ok');
    await measure(`digest verify ${algorithm} (parse, nonce HMAC, cached creds, response, nc) → ok`, (i) => stage.authenticate(pool[2000 + i]!), true, pool.length - 2000);
    expect(await stage.authenticate(pool[pool.length - 1]!), 'challenge'); // all used: replays are refused
    await measure(`digest unknown user ${algorithm} (dummy secret)`, (i) => stage.authenticate(bad[i % bad.length]!), true);
  }

  const cpu = cpus()[0]?.model ?? 'unknown cpu';
  console.log(`auth-cost: node ${process.version}, ${cpu}, ${cpus().length} cores, ${SECONDS}s per case, ${new Date().toISOString()}`);
  console.log('| case | ops/s | µs/op (wall) | µs/op (CPU) |');
  console.log('|---|---:|---:|---:|');
  for (const f of figures) console.log(`| ${f.name} | ${f.opsPerSec.toLocaleString('en')} | ${f.usPerOp.toFixed(2)} | ${f.cpuUsPerOp.toFixed(2)} |`);
  stage.stop();
}

void main();
