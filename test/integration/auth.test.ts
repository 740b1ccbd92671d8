// The auth stage against a real MariaDB with the A2Billing fixture, the gateway's views and the seed
// data (bob is IP-authenticated, alice by digest, carol's card is inactive), read as the least-privilege
// gateway user.
import { createServer, connect, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { computeResponse, parseCredentials, type DigestAlgorithm } from '../../src/auth/digest.js';
import { createAuthStage, type AuthStage, type AuthStageOptions } from '../../src/auth/stage.js';
import { configSchema } from '../../src/config/schema.js';
import { createDb, parseDbUrl, type Db } from '../../src/db/pool.js';
import { SEED } from '../../src/devdb/seed.js';
import { silentLogger } from '../../src/log.js';
import { createMetrics } from '../../src/metrics.js';
import type { AuthDecision } from '../../src/proxy/hooks.js';
import { createTestDb, type TestDb } from '../helpers/db.js';
import { facts, type FactsInit } from '../unit/auth/facts.js';

const SECRET = 'integration-secret-0123456789abcdef';
const RURI = 'sip:15551234567@gw.example.net';
const alice = SEED.cards.alice;
const bob = SEED.cards.bob;

function cfg(over: { auth?: Record<string, unknown>; abuse?: Record<string, unknown> } = {}) {
  return configSchema.parse({ auth: { nonceSecret: SECRET, ...over.auth }, abuse: over.abuse ?? {} });
}

let t: TestDb;
let gw: Db;
const stages: AuthStage[] = [];

function stage(opts: Partial<AuthStageOptions> & { config?: ReturnType<typeof cfg> } = {}): AuthStage {
  const s = createAuthStage({ config: cfg(), db: gw, log: silentLogger(), ...opts });
  stages.push(s);
  return s;
}

function nonceOf(d: AuthDecision): string {
  if (d.kind !== 'challenge') throw new Error(`expected a challenge, got ${JSON.stringify(d)}`);
  const r = parseCredentials([d.headers[0]![1]]);
  if (!r.ok) throw new Error('unparseable challenge');
  return r.credentials[0]!.params.get('nonce')!;
}

interface Answer {
  user: string;
  password: string;
  nonce: string;
  algorithm?: DigestAlgorithm;
  nc?: number;
  uri?: string;
  realm?: string;
  cnonce?: string;
}

/** The Proxy-Authorization a phone would send back. */
function credentials(a: Answer): string {
  const algorithm = a.algorithm ?? 'SHA-256';
  const nc = (a.nc ?? 1).toString(16).padStart(8, '0');
  const uri = a.uri ?? RURI;
  const realm = a.realm ?? 'a2b-gateway';
  const cnonce = a.cnonce ?? 'f2/wE4q74E6zIJEt';
  const response = computeResponse({ algorithm, username: a.user, realm, password: a.password, method: 'INVITE', uri, nonce: a.nonce, nc, cnonce, qop: 'auth' });
  const q = (s: string) => `"${s.replace(/[\\"]/g, '\\$&')}"`;
  return `Digest username=${q(a.user)}, realm=${q(realm)}, nonce=${q(a.nonce)}, uri=${q(uri)}, response="${response}", algorithm=${algorithm}, cnonce=${q(cnonce)}, qop=auth, nc=${nc}`;
}

function withAuth(value: string, init: FactsInit = {}): ReturnType<typeof facts> {
  return facts({ ruri: RURI, fromUser: alice.username, ...init, headers: { 'Proxy-Authorization': [value] } });
}

async function challengeFrom(s: AuthStage): Promise<string> {
  return nonceOf(await s.authenticate(facts({ ruri: RURI, fromUser: alice.username })));
}

beforeAll(async () => {
  t = await createTestDb({ seed: true });
  gw = createDb({ url: t.gwUrl, poolSize: 4 });
});

afterAll(async () => {
  for (const s of stages) s.stop();
  await gw?.end();
  await t?.drop();
});

describe('IP authentication from the address view', () => {
  it('trusts IP peers of active cards and gw_trusted ranges, and nothing else', async () => {
    const s = stage();
    const r = await s.reload();
    expect(r).toMatchObject({ entries: 2, rejected: 0, conflicts: 0 });
    expect(await s.authenticate(facts({ ip: '127.0.0.2', port: 5060 }))).toEqual({ kind: 'ok', method: 'ip', accountcode: bob.username, cardId: bob.id });
    expect(await s.authenticate(facts({ ip: '127.0.10.77', port: 40000, proto: 'tcp' }))).toEqual({ kind: 'ok', method: 'ip', accountcode: bob.username, cardId: bob.id });
    expect(await s.authenticate(facts({ ip: '::ffff:127.0.0.2' }))).toMatchObject({ kind: 'ok', accountcode: bob.username });
    for (const ip of ['127.0.0.3' /* carol: inactive card */, '127.0.0.4' /* hand-made peer, no card */, '127.0.0.1', '127.0.11.1', '::1']) {
      expect((await s.authenticate(facts({ ip }))).kind, ip).toBe('challenge');
    }
  });

  it('picks up changes on the periodic refresh and on reload()', async () => {
    const s = stage({ config: cfg({ auth: { ipRefreshSec: 1 } }) });
    await s.start();
    const from = facts({ ip: '127.0.20.5' });
    expect((await s.authenticate(from)).kind).toBe('challenge');
    const [ins] = await t.db.query('INSERT INTO gw_trusted (ip_addr, mask, accountcode, description) VALUES (?, ?, ?, ?)', ['127.0.20.0', 24, alice.username, 'refresh test']);
    const id = (ins as { insertId: number }).insertId;
    const deadline = Date.now() + 5000;
    let d = await s.authenticate(from);
    while (d.kind !== 'ok' && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      d = await s.authenticate(from);
    }
    expect(d).toEqual({ kind: 'ok', method: 'ip', accountcode: alice.username, cardId: alice.id });
    s.stop();
    await t.db.query('DELETE FROM gw_trusted WHERE id = ?', [id]);
    expect((await s.authenticate(from)).kind).toBe('ok'); // stopped: no refresh
    await s.reload();
    expect((await s.authenticate(from)).kind).toBe('challenge');
  });
});

describe('digest authentication against the subscriber view', () => {
  it('challenges with one Proxy-Authenticate per algorithm, SHA-256 first, same nonce', async () => {
    const d = await stage().authenticate(facts());
    expect(d.kind).toBe('challenge');
    if (d.kind !== 'challenge') return;
    expect(d.status).toBe(407);
    expect(d.headers.map(([n]) => n)).toEqual(['Proxy-Authenticate', 'Proxy-Authenticate']);
    expect(d.headers[0]![1]).toMatch(/^Digest realm="a2b-gateway", nonce="[A-Za-z0-9_-]{68}", algorithm=SHA-256, qop="auth"$/);
    expect(d.headers[1]![1]).toMatch(/algorithm=MD5, qop="auth"$/);
    expect(nonceOf({ ...d, headers: [d.headers[1]!] })).toBe(nonceOf(d));
    const md5Only = await stage({ config: cfg({ auth: { algorithms: ['MD5'], realm: 'voip.example' } }) }).authenticate(facts());
    expect(md5Only.kind === 'challenge' && md5Only.headers.map(([, v]) => v.replace(/nonce="[^"]+"/, 'nonce=N'))).toEqual(['Digest realm="voip.example", nonce=N, algorithm=MD5, qop="auth"']);
  });

  it('admits alice with SHA-256 and with MD5, billing her account', async () => {
    const s = stage();
    for (const algorithm of ['SHA-256', 'MD5'] as const) {
      const nonce = await challengeFrom(s);
      const d = await s.authenticate(withAuth(credentials({ user: alice.username, password: alice.sip.secret, nonce, algorithm })));
      expect(d).toEqual({ kind: 'ok', method: 'digest', accountcode: alice.username, cardId: alice.id, username: alice.username });
    }
  });

  it('answers a wrong password, an unknown user and an inactive card identically', async () => {
    const s = stage();
    const answers: AuthDecision[] = [];
    for (const [user, password] of [[alice.username, 'wrong'], ['nobody-here', 'x'], ['carol-phone', 'carol-Phone-3'], [SEED.cards.carol.username, SEED.cards.carol.sip.secret], [SEED.handmade.name, SEED.handmade.secret]]) {
      const nonce = await challengeFrom(s);
      answers.push(await s.authenticate(withAuth(credentials({ user: user!, password: password!, nonce }), { fromUser: user! })));
    }
    for (const a of answers) expect(a).toEqual({ kind: 'reject', status: 403, reason: 'Forbidden' });
  });

  it('compares the username exactly (the column collation would fold case and pad spaces)', async () => {
    const s = stage();
    for (const user of [alice.username + ' ', ` ${alice.username}`]) {
      const nonce = await challengeFrom(s);
      expect((await s.authenticate(withAuth(credentials({ user, password: alice.sip.secret, nonce }), { fromUser: user }))).kind).toBe('reject');
    }
  });

  it('refuses a replayed nonce-count with stale=true and accepts the next count', async () => {
    const s = stage();
    const nonce = await challengeFrom(s);
    const first = withAuth(credentials({ user: alice.username, password: alice.sip.secret, nonce, nc: 1 }));
    expect((await s.authenticate(first)).kind).toBe('ok');
    const replay = await s.authenticate(first);
    expect(replay.kind).toBe('challenge');
    expect(replay.kind === 'challenge' && replay.headers[0]![1]).toMatch(/, stale=true$/);
    expect((await s.authenticate(withAuth(credentials({ user: alice.username, password: alice.sip.secret, nonce, nc: 2 })))).kind).toBe('ok');
    expect((await s.authenticate(withAuth(credentials({ user: alice.username, password: alice.sip.secret, nonce, nc: 2 })))).kind).toBe('challenge');
  });

  it('answers an expired nonce with stale=true, and a tampered one with a fresh challenge', async () => {
    let now = Date.now();
    const s = stage({ now: () => now });
    const nonce = await challengeFrom(s);
    now += 301_000;
    const stale = await s.authenticate(withAuth(credentials({ user: alice.username, password: alice.sip.secret, nonce })));
    expect(stale.kind === 'challenge' && stale.headers.every(([, v]) => v.endsWith(', stale=true'))).toBe(true);

    const fresh = await challengeFrom(s);
    const tampered = (fresh[10] === 'A' ? 'B' : 'A');
    const forged = fresh.slice(0, 10) + tampered + fresh.slice(11);
    const d = await s.authenticate(withAuth(credentials({ user: alice.username, password: alice.sip.secret, nonce: forged })));
    expect(d.kind).toBe('challenge');
    expect(d.kind === 'challenge' && d.headers.some(([, v]) => v.includes('stale'))).toBe(false);
  });

  it("accepts another instance's nonce when both share auth.nonceSecret", async () => {
    const a = stage();
    const b = stage();
    const other = stage({ config: cfg({ auth: { nonceSecret: 'a-different-secret-0123456789' } }) });
    const nonce = await challengeFrom(a);
    const value = credentials({ user: alice.username, password: alice.sip.secret, nonce });
    expect((await b.authenticate(withAuth(value))).kind).toBe('ok');
    expect((await other.authenticate(withAuth(value))).kind).toBe('challenge');
  });

  it('requires the From user to be the authenticated user unless configured otherwise', async () => {
    const strict = stage();
    let nonce = await challengeFrom(strict);
    const value = () => credentials({ user: alice.username, password: alice.sip.secret, nonce });
    expect(await strict.authenticate(withAuth(value(), { fromUser: bob.username }))).toEqual({ kind: 'reject', status: 403, reason: 'Forbidden' });
    const lax = stage({ config: cfg({ auth: { requireFromMatch: false } }) });
    nonce = await challengeFrom(lax);
    expect((await lax.authenticate(withAuth(value(), { fromUser: 'anything' }))).kind).toBe('ok');
  });

  it('refuses credentials whose uri is not the Request-URI, and malformed ones, with 400', async () => {
    const s = stage();
    const nonce = await challengeFrom(s);
    const bad = (v: string) => s.authenticate(withAuth(v));
    expect(await bad(credentials({ user: alice.username, password: alice.sip.secret, nonce, uri: 'sip:19005550100@gw.example.net' }))).toMatchObject({ kind: 'reject', status: 400 });
    expect(await bad('Digest username="unterminated')).toMatchObject({ kind: 'reject', status: 400 });
    expect(await bad(`Digest username="x", realm="a2b-gateway", nonce="${nonce}"`)).toMatchObject({ kind: 'reject', status: 400 });
    expect(await bad(credentials({ user: alice.username, password: alice.sip.secret, nonce }) + ', username="other"')).toMatchObject({ kind: 'reject', status: 400 });
    // credentials for another proxy's realm, or another scheme, are no credentials for us
    expect((await bad(credentials({ user: alice.username, password: alice.sip.secret, nonce, realm: 'upstream' }))).kind).toBe('challenge');
    expect((await bad('Basic dXNlcjpwYXNz')).kind).toBe('challenge');
    // the scheme and host of the uri compare case-insensitively
    expect((await bad(credentials({ user: alice.username, password: alice.sip.secret, nonce, uri: 'SIP:15551234567@GW.example.net' }))).kind).toBe('ok');
  });

  it('finds nothing and breaks nothing with SQL injection in username, realm and uri', async () => {
    const s = stage();
    const injections = ["' OR '1'='1", "4242424242' -- ", "x'; DROP TABLE cc_card; --", '4242424242\\', "' UNION SELECT 1,2,3,4,5,6 -- "];
    for (const inj of injections) {
      const nonce = await challengeFrom(s);
      const ruri = `sip:${encodeURIComponent(inj)}@gw.example.net`;
      expect(await s.authenticate(withAuth(credentials({ user: inj, password: 'x', nonce, uri: ruri }), { ruri, fromUser: inj })), inj)
        .toEqual({ kind: 'reject', status: 403, reason: 'Forbidden' });
      expect((await s.authenticate(withAuth(credentials({ user: alice.username, password: alice.sip.secret, nonce, realm: inj })))).kind).toBe('challenge');
      expect((await s.authenticate(withAuth(credentials({ user: alice.username, password: alice.sip.secret, nonce, uri: inj })))).kind).toBe('reject');
    }
    const [rows] = await t.db.query('SELECT COUNT(*) AS n FROM cc_card');
    expect((rows as Array<{ n: number }>)[0]!.n).toBe(5);
    const nonce = await challengeFrom(s);
    expect((await s.authenticate(withAuth(credentials({ user: alice.username, password: alice.sip.secret, nonce })))).kind).toBe('ok');
  });
});

describe('abuse protection through the stage', () => {
  it('bans a source after repeated failures, counts it in metrics, and never bans an IP-trusted source', async () => {
    const metrics = createMetrics();
    const s = stage({ metrics, config: cfg({ abuse: { authFailures: { maxFailures: 3 }, banAnswer: '403' } }) });
    await s.reload();
    const src = { ip: '192.0.2.66' };
    for (let i = 0; i < 3; i++) {
      expect(s.screen(facts(src))).toEqual({ kind: 'pass' });
      const nonce = await challengeFrom(s);
      await s.authenticate(withAuth(credentials({ user: alice.username, password: 'guess' + i, nonce }), src));
    }
    expect(s.screen(facts(src))).toEqual({ kind: 'reject', status: 403, reason: 'Forbidden' });
    expect(s.listBans()).toEqual([expect.objectContaining({ source: '192.0.2.66', reason: 'auth' })]);
    expect(s.screen(facts({ ip: '127.0.0.2', userAgent: 'friendly-scanner' }))).toEqual({ kind: 'drop', reason: 'scanner' });
    expect((await metrics.bans.get()).values).toEqual([expect.objectContaining({ labels: { reason: 'auth-failures' }, value: 1 })]);
    const results = (await metrics.authResults.get()).values;
    expect(results.find((v) => v.labels.outcome === 'fail')?.value).toBe(3);
    expect(results.find((v) => v.labels.outcome === 'challenge')?.value).toBe(3);
    expect((await metrics.abuseDrops.get()).values.map((v) => [v.labels.reason, v.value]).sort()).toEqual([['banned', 1], ['scanner', 1]]);
    // bob's trunk floods far beyond the limit and stays admitted
    const flood = stage({ config: cfg({ abuse: { pike: { maxRequests: 5 } } }) });
    await flood.reload();
    for (let i = 0; i < 50; i++) expect(flood.screen(facts({ ip: '127.0.0.2' })).kind).toBe('pass');
    for (let i = 0; i < 5; i++) flood.screen(facts({ ip: '192.0.2.70' }));
    expect(flood.screen(facts({ ip: '192.0.2.70' }))).toEqual({ kind: 'drop', reason: 'flood' });
  });
});

/** A TCP relay in front of MariaDB that the test can cut, so the database becomes really unreachable. */
async function relay(target: { host: string; port: number }) {
  const sockets = new Set<Socket>();
  let server: Server | undefined;
  let port = 0;
  const open = async () => {
    server = createServer((c) => {
      const up = connect(target.port, target.host);
      sockets.add(c);
      sockets.add(up);
      const kill = () => { c.destroy(); up.destroy(); sockets.delete(c); sockets.delete(up); };
      c.on('error', kill).on('close', kill);
      up.on('error', kill).on('close', kill);
      c.pipe(up).pipe(c);
    });
    await new Promise<void>((resolve) => server!.listen(port, '127.0.0.1', resolve));
    port = (server.address() as { port: number }).port;
  };
  await open();
  return {
    get port() { return port; },
    open,
    async cut() {
      for (const s of sockets) s.destroy();
      sockets.clear();
      await new Promise<void>((resolve) => server!.close(() => resolve()));
    },
  };
}

describe('database trouble', () => {
  it('keeps the last address table and cached credentials, and never admits what it cannot verify', async () => {
    const target = parseDbUrl(t.gwUrl);
    const r = await relay({ host: target.host, port: target.port });
    const u = new URL(t.gwUrl);
    u.hostname = '127.0.0.1';
    u.port = String(r.port);
    const pool = createDb({ url: u.toString(), poolSize: 2, connectTimeoutMs: 1000 });
    try {
      const s = stage({ db: pool, config: cfg({ auth: { credentialCacheSec: 0, dbTimeoutMs: 1000 } }) });
      await s.start();
      const aliceOk = async () => {
        const nonce = await challengeFrom(s);
        return s.authenticate(withAuth(credentials({ user: alice.username, password: alice.sip.secret, nonce })));
      };
      expect((await aliceOk()).kind).toBe('ok');
      // unknown user, seen while the database was up
      let nonce = await challengeFrom(s);
      expect((await s.authenticate(withAuth(credentials({ user: 'ghost', password: 'x', nonce }), { fromUser: 'ghost' }))).kind).toBe('reject');

      await r.cut();
      await expect(s.reload()).rejects.toThrow();
      expect(s.stats().lastReloadError).toBeTruthy();
      expect(await s.authenticate(facts({ ip: '127.0.0.2' }))).toMatchObject({ kind: 'ok', method: 'ip', accountcode: bob.username });
      expect(await aliceOk()).toMatchObject({ kind: 'ok', accountcode: alice.username });
      // dave was never looked up: cannot verify now
      const dave = SEED.cards.dave;
      nonce = await challengeFrom(s);
      const daveTry = () => s.authenticate(withAuth(credentials({ user: dave.username, password: dave.sip.secret, nonce, nc: 1 + daveTries++ }), { fromUser: dave.username }));
      let daveTries = 0;
      expect(await daveTry()).toEqual({ kind: 'reject', status: 503, reason: 'Service Unavailable', headers: [['Retry-After', '5']] });
      // a wrong password for a cached user is still refused, the known-unknown user still refused
      nonce = await challengeFrom(s);
      expect(await s.authenticate(withAuth(credentials({ user: alice.username, password: 'nope', nonce })))).toMatchObject({ status: 403 });
      nonce = await challengeFrom(s);
      expect(await s.authenticate(withAuth(credentials({ user: 'ghost', password: 'x', nonce }), { fromUser: 'ghost' }))).toMatchObject({ status: 403 });

      await r.open();
      await new Promise((res) => setTimeout(res, 1100)); // past the fail-fast pause after the last error
      nonce = await challengeFrom(s);
      daveTries = 0;
      expect(await daveTry()).toMatchObject({ kind: 'ok', accountcode: dave.username });
      expect((await s.reload()).entries).toBe(2);
      expect(s.stats().lastReloadError).toBeUndefined();
      s.stop();
    } finally {
      await pool.end().catch(() => undefined);
      await r.cut().catch(() => undefined);
    }
  });
});

