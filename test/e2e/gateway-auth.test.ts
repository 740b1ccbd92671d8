// Issue 4 acceptance (authentication) through the WHOLE gateway: startGateway with the seed data in a real
// MariaDB, real UDP sockets on loopback, a test callee standing in for Asterisk.
// Callers sit on their own loopback addresses so abuse counters (pike, failure bans) of one test never
// touch another: 127.0.0.2 = bob's IP peer, 127.0.10.x = the trusted range (bob), 127.0.60.x = untrusted.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callRef } from '../../src/callref.js';
import { SEED } from '../../src/devdb/seed.js';
import { challengesOf, digestAnswer, digestInvite, finish, sleep, startTestGateway, type Challenge, type TestGateway } from '../helpers/gateway.js';
import type { UaMessage } from '../helpers/sip-ua.js';

const ALICE = { user: SEED.cards.alice.sip.name, password: SEED.cards.alice.sip.secret, accountcode: SEED.cards.alice.username };
const BOB = SEED.cards.bob.username;
const NONCE_TTL_SEC = 10; // the schema's minimum

let h: TestGateway;
/** A challenge taken at start-up: it is stale by the time the stale test runs (last). */
let early: { ch: Challenge; at: number };

beforeAll(async () => {
  h = await startTestGateway({
    callees: [{ behaviour: { kind: 'answer' } }],
    config: {
      auth: { nonceTtlSec: NONCE_TTL_SEC, credentialCacheSec: 0, dbTimeoutMs: 1000 },
      abuse: {
        pike: { maxRequests: 30, windowSec: 2, banSec: 2 },
        authFailures: { maxFailures: 4, windowSec: 60, banSec: 2 },
      },
      // The outage test needs calls to pass with the database gone: credit checks would (rightly) refuse them.
      billing: { creditCheck: false },
    },
  });
  const c = await h.caller();
  const r = await c.invite({ to: h.ruri('15550001111'), via: h.udp, from: `sip:${ALICE.user}@${c.host}` }).final();
  early = { ch: challengesOf(r)[0]!, at: Date.now() };
});

afterAll(async () => {
  await h?.stop();
});

const box = (): TestGateway['callees'][number] => h.callees[0]!;
/** The INVITE of this Call-ID as the callee got it, if it got one. */
const atCallee = (callId: string): UaMessage | undefined => box().invites().find((m) => m.callId === callId);

describe('issue 4: authentication through the whole gateway', () => {
  it('IP-authenticated call from bob\'s peer address carries bob\'s account code', async () => {
    const caller = await h.caller({ host: '127.0.0.2' });
    const call = caller.invite({ to: h.ruri('15551230001'), via: h.udp });
    const res = await finish(call);
    expect(res.status).toBe(200);
    expect(call.responses.some((r) => r.status === 407)).toBe(false);
    expect(atCallee(call.callId)!.headerLines('p-accountcode')).toEqual([BOB]);
  });

  it('the 407 challenge is stateless: one datagram per INVITE (no 100, no retransmission), no state kept, its ACK absorbed', async () => {
    const caller = await h.caller();
    const before = h.gw.proxy.state()!.serverTransactions;
    const call = caller.invite({ to: h.ruri('15550009999'), via: h.udp, from: `sip:${ALICE.user}@${caller.host}` });
    const r = await call.final();
    expect(r.status).toBe(407);
    expect(r.toTag).toMatch(/^sl[0-9a-f]{6}-/);
    await sleep(1000); // (a source that never ACKs, the amplification case, is tested in proxy-sanity.test.ts)
    expect(call.responses.map((x) => x.status)).toEqual([407]);
    expect(h.gw.proxy.state()!.serverTransactions).toBeLessThanOrEqual(before);
    expect(atCallee(call.callId)).toBeUndefined(); // neither the INVITE nor its ACK went anywhere
    const text = await h.gw.metrics.text();
    expect(text).not.toMatch(/a2b_sip_dropped_total\{reason="no-transaction"\}/);
  });

  it('the trusted range 127.0.10.0/24 authenticates as bob too', async () => {
    const caller = await h.caller({ host: '127.0.10.77' });
    const call = caller.invite({ to: h.ruri('15551230002'), via: h.udp });
    expect((await finish(call)).status).toBe(200);
    expect(atCallee(call.callId)!.headerLines('p-accountcode')).toEqual([SEED.trusted.accountcode]);
  });

  it('a trusted source added at runtime counts after POST /reload/auth, and only from its port', async () => {
    const exact = await h.caller({ host: '127.0.12.5' });
    const otherPort = await h.caller({ host: '127.0.12.5' });
    const to = h.ruri('15551230030');
    await h.db.db.query('INSERT INTO gw_trusted (grp, ip_addr, mask, port, proto, accountcode, description) VALUES (1, ?, 24, ?, ?, ?, ?)',
      ['127.0.12.0', exact.address('udp').port, 'udp', SEED.cards.erin.username, 'e2e office']);
    expect((await exact.invite({ to, via: h.udp }).final()).status).toBe(407);
    const res = await fetch(`${h.mgmtUrl}/reload/auth`, { method: 'POST' });
    expect(res.status).toBe(200);
    const call = exact.invite({ to, via: h.udp });
    expect((await finish(call)).status).toBe(200);
    expect(atCallee(call.callId)!.headerLines('p-accountcode')).toEqual([SEED.cards.erin.username]);
    expect((await otherPort.invite({ to, via: h.udp }).final()).status).toBe(407);
  });

  it('digest: 407 with SHA-256 and MD5 challenges, then accepted with alice\'s account code (both algorithms)', async () => {
    for (const algorithm of ['SHA-256', 'MD5']) {
      const caller = await h.caller();
      const { first, second } = await digestInvite(caller, { to: h.ruri('15551230003'), via: h.udp, ...ALICE, algorithm });
      const r407 = await first.final();
      expect(r407.status).toBe(407);
      const algs = challengesOf(r407).map((c) => c.algorithm);
      expect(algs).toEqual(['SHA-256', 'MD5']);
      for (const c of challengesOf(r407)) {
        expect(c.realm).toBe('a2b-gateway');
        expect(c.qop).toBe('auth');
        expect(c.stale).toBe(false);
      }
      expect((await finish(second)).status).toBe(200);
      const inv = atCallee(second.callId)!;
      expect(inv.headerLines('p-accountcode')).toEqual([ALICE.accountcode]);
      expect(inv.headerLines('proxy-authorization')).toEqual([]);
    }
  });

  it('digest over TCP works the same (challenge and answer on the connection)', async () => {
    const caller = await h.caller({ host: '127.0.0.1', proto: 'tcp' });
    const { second } = await digestInvite(caller, { to: h.ruri('15551230020', 'tcp'), via: h.tcp, ...ALICE });
    expect((await finish(second)).status).toBe(200);
    expect(atCallee(second.callId)!.headerLines('p-accountcode')).toEqual([ALICE.accountcode]);
  });

  it('alice\'s valid credentials under someone else\'s From user are refused (403): no billing another account', async () => {
    const caller = await h.caller();
    const to = h.ruri('15551230021');
    const ch = challengesOf(await caller.invite({ to, via: h.udp, from: `sip:${BOB}@${caller.host}` }).final())[0]!;
    const call = caller.invite({ to, via: h.udp, from: `sip:${BOB}@${caller.host}`, headers: [['Proxy-Authorization', digestAnswer(ch, { method: 'INVITE', uri: to, ...ALICE })]] });
    expect((await call.final()).status).toBe(403);
    expect(atCallee(call.callId)).toBeUndefined();
  });

  it('wrong password: 403 Forbidden, and the callee never sees the INVITE', async () => {
    const caller = await h.caller();
    const { second } = await digestInvite(caller, { to: h.ruri('15551230004'), via: h.udp, user: ALICE.user, password: 'not-her-password' });
    const res = await second.final();
    expect(res.status).toBe(403);
    expect(atCallee(second.callId)).toBeUndefined();
  });

  it('inactive card (carol): 403 with her device credentials, and her IP peer 127.0.0.3 is not trusted (407)', async () => {
    for (const cred of [{ user: 'carol-phone', password: 'carol-Phone-3' }, { user: SEED.cards.carol.sip.name, password: SEED.cards.carol.sip.secret }]) {
      const caller = await h.caller();
      const { second } = await digestInvite(caller, { to: h.ruri('15551230005'), via: h.udp, ...cred });
      expect((await second.final()).status).toBe(403);
      expect(atCallee(second.callId)).toBeUndefined();
    }
    const fromPeer = await h.caller({ host: SEED.cards.carol.sip.host });
    const call = fromPeer.invite({ to: h.ruri('15551230006'), via: h.udp });
    expect((await call.final()).status).toBe(407);
    expect(atCallee(call.callId)).toBeUndefined();
  });

  it('a hand-made peer without a card (127.0.0.4) is not trusted: challenged, never routed as its account', async () => {
    const caller = await h.caller({ host: SEED.handmade.host });
    const call = caller.invite({ to: h.ruri('15551230024'), via: h.udp });
    expect((await call.final()).status).toBe(407);
    expect(atCallee(call.callId)).toBeUndefined();
    const { second } = await digestInvite(await h.caller(), { to: h.ruri('15551230024'), via: h.udp, user: SEED.handmade.name, password: SEED.handmade.secret });
    expect((await second.final()).status).toBe(403);
    expect(atCallee(second.callId)).toBeUndefined();
  });

  it('a spoofed P-Accountcode (any spelling, repeated, comma-joined) never reaches the callee: exactly one trusted one does', async () => {
    const spoofs: Array<[string, string]> = [
      ['P-Accountcode', '4242424242'],
      ['p-accountcode', '6666000003'],
      ['P-ACCOUNTCODE', '7777000004, 8888000005'],
      ['P-AccountCode', '9999999999'],
      ['p-AcCoUnTcOdE', '1111111111,2222222222'],
      // RFC 3261 HCOLON allows blanks before the colon: still the same header
      ['P-Accountcode ', '3333333333'],
      ['P-Accountcode\t', '4444444444'],
      // a value folded onto a continuation line (RFC 3261 LWS) is the same header
      ['P-Accountcode', '\r\n 5555555555'],
    ];
    // IP-authenticated (bob) ...
    const bob = await h.caller({ host: '127.0.0.2' });
    const ipCall = bob.invite({ to: h.ruri('15551230007'), via: h.udp, headers: spoofs });
    expect((await finish(ipCall)).status).toBe(200);
    // ... and digest-authenticated (alice), the spoof present in both INVITEs.
    const { second } = await digestInvite(await h.caller(), { to: h.ruri('15551230008'), via: h.udp, ...ALICE, headers: spoofs });
    expect((await finish(second)).status).toBe(200);
    for (const [callId, expected] of [[ipCall.callId, BOB], [second.callId, ALICE.accountcode]] as const) {
      const inv = atCallee(callId)!;
      expect(inv.headerLines('p-accountcode')).toEqual([expected]);
      const lines = inv.raw.split('\r\n').filter((l) => /^\s*p-accountcode\s*:/i.test(l));
      expect(lines).toEqual([`P-Accountcode: ${expected}`]);
      for (const bogus of ['6666000003', '7777000004', '8888000005', '9999999999', '1111111111', '2222222222', '3333333333', '4444444444', '5555555555']) expect(inv.raw).not.toContain(bogus);
    }
    // In-dialog requests from the caller cannot smuggle one either.
    const d = (await h.caller({ host: '127.0.0.2' }));
    const call = d.invite({ to: h.ruri('15551230009'), via: h.udp });
    expect((await call.final()).status).toBe(200);
    call.ack();
    await call.dialog!.request('INFO', { headers: [['P-Accountcode', '6666000003']] }).final();
    const info = await box().ua.waitFor((m) => m.method === 'INFO' && m.callId === call.callId);
    expect(info.headerLines('p-accountcode')).toEqual([]);
    await call.dialog!.request('BYE').final();
  });

  it('the CDR bills the authenticated account (never a spoofed one), with the method and card, and the callee gets the call reference', async () => {
    // a forged call reference would tie the call to someone else's billing row in reconciliation
    const spoof: Array<[string, string]> = [['P-Accountcode', SEED.cards.erin.username], ['X-A2B-Callref', 'aaaaaaaaaaaaaaaaaaaa'], ['x-a2b-callref', 'bbbbbbbbbbbbbbbbbbbb']];
    const ip = (await h.caller({ host: '127.0.0.2' })).invite({ to: h.ruri('15551230022'), via: h.udp, headers: spoof });
    expect((await finish(ip)).status).toBe(200);
    const { second } = await digestInvite(await h.caller(), { to: h.ruri('15551230023'), via: h.udp, ...ALICE, headers: spoof });
    expect((await finish(second)).status).toBe(200);
    const want = new Map([[ip.callId, { accountcode: BOB, auth_method: 'ip', card_id: SEED.cards.bob.id }], [second.callId, { accountcode: ALICE.accountcode, auth_method: 'digest', card_id: SEED.cards.alice.id }]]);
    let rows: Array<{ callid: string; callref: string; accountcode: string; auth_method: string; card_id: number; end_reason: string }> = [];
    for (let i = 0; i < 60 && rows.length < 2; i++) {
      await sleep(50);
      const [r] = await h.db.db.query('SELECT callid, callref, accountcode, auth_method, card_id, end_reason FROM gw_cdr WHERE callid IN (?, ?)', [ip.callId, second.callId]);
      rows = r as typeof rows;
    }
    expect(rows).toHaveLength(2);
    for (const row of rows) {
      expect({ accountcode: row.accountcode, auth_method: row.auth_method, card_id: Number(row.card_id) }).toEqual(want.get(row.callid));
      expect(row.end_reason).toBe('bye-caller');
      expect(atCallee(row.callid)!.headerLines('x-a2b-callref')).toEqual([callRef(row.callid)]);
      expect(row.callref).toBe(callRef(row.callid));
    }
  });

  it('a replayed nonce count is refused (407 stale=true) and never reaches the callee; the next count is accepted', async () => {
    const caller = await h.caller();
    const to = h.ruri('15551230010');
    const { second, challenge } = await digestInvite(caller, { to, via: h.udp, ...ALICE });
    expect((await finish(second)).status).toBe(200);
    const from = `sip:${ALICE.user}@${caller.host}`;
    const stolen = second.request.split('\r\n').find((l) => l.startsWith('Proxy-Authorization:'))!.slice('Proxy-Authorization: '.length);
    // the very same credentials in a new call (what a sniffer would replay)
    const replay = caller.invite({ to, via: h.udp, from, headers: [['Proxy-Authorization', stolen]] });
    const r = await replay.final();
    expect(r.status).toBe(407);
    expect(challengesOf(r).every((c) => c.stale)).toBe(true);
    expect(atCallee(replay.callId)).toBeUndefined();
    // a lower count than the highest seen is a replay too
    const nc3 = caller.invite({ to, via: h.udp, from, headers: [['Proxy-Authorization', digestAnswer(challenge, { method: 'INVITE', uri: to, ...ALICE, nc: 3 })]] });
    expect((await finish(nc3)).status).toBe(200);
    const nc2 = caller.invite({ to, via: h.udp, from, headers: [['Proxy-Authorization', digestAnswer(challenge, { method: 'INVITE', uri: to, ...ALICE, nc: 2 })]] });
    expect((await nc2.final()).status).toBe(407);
    expect(atCallee(nc2.callId)).toBeUndefined();
    expect(atCallee(nc3.callId)!.headerLines('p-accountcode')).toEqual([ALICE.accountcode]);
  });

  it('unknown user and wrong password are indistinguishable (same status, reason and headers)', async () => {
    const answers: UaMessage[] = [];
    for (const cred of [{ user: ALICE.user, password: 'wrong-one' }, { user: '4242424243', password: 'wrong-one' }, { user: 'nobody-at-all', password: 'x' }]) {
      const { second } = await digestInvite(await h.caller(), { to: h.ruri('15551230011'), via: h.udp, ...cred });
      answers.push(await second.final());
    }
    // Headers naming the transaction (Via, From, To, Call-ID, CSeq) differ by construction; everything else must not.
    const shape = (m: UaMessage): unknown => ({
      status: m.status, reason: m.reason, body: m.body,
      headers: m.headers.filter(([k]) => !/^(via|from|to|call-id|cseq)$/i.test(k)),
      names: m.headers.map(([k]) => k.toLowerCase()),
    });
    expect(answers[0]!.status).toBe(403);
    expect(shape(answers[1]!)).toEqual(shape(answers[0]!));
    expect(shape(answers[2]!)).toEqual(shape(answers[0]!));
  });

  it('SQL injection in username, realm and uri finds nothing and breaks nothing', async () => {
    const [[before]] = (await h.db.db.query('SELECT COUNT(*) AS n FROM cc_card')) as unknown as [[{ n: number }]];
    const to = h.ruri('15551230012');
    const evil = ["' OR '1'='1", "4242424242' -- ", "4242424242'; DROP TABLE cc_card; --", '" OR ""="', "x' UNION SELECT username, domain, 'pw', '4242424242', 1, 1 FROM subscriber -- ", '4242424242\\', '%'];
    const statuses: number[] = [];
    for (const [i, bad] of evil.entries()) {
      const caller = await h.caller();
      const from = `sip:${ALICE.user}@${caller.host}`;
      const ch = challengesOf(await caller.invite({ to, via: h.udp, from }).final())[0]!;
      const variants = [
        digestAnswer(ch, { method: 'INVITE', uri: to, user: bad, password: bad }),
        digestAnswer(ch, { method: 'INVITE', uri: to, ...ALICE, realm: bad }),
        digestAnswer(ch, { method: 'INVITE', uri: `${to};x=${encodeURIComponent(bad)}`, ...ALICE }),
      ];
      // three failures per source at most: stay under this gateway's failure ban (4)
      for (const pa of variants) {
        const call = caller.invite({ to, via: h.udp, from, headers: [['Proxy-Authorization', pa]] });
        const r = await call.final();
        statuses.push(r.status);
        expect(atCallee(call.callId), `variant with ${JSON.stringify(bad)} (#${i})`).toBeUndefined();
      }
    }
    // username → 403 (no such subscriber), realm → 407 (credentials for someone else), uri → 400 (not the Request-URI)
    expect(new Set(statuses)).toEqual(new Set([403, 407, 400]));
    const [[after]] = (await h.db.db.query('SELECT COUNT(*) AS n FROM cc_card')) as unknown as [[{ n: number }]];
    expect(Number(after.n)).toBe(Number(before.n));
    const [subs] = await h.db.db.query('SELECT username FROM subscriber ORDER BY username');
    expect((subs as Array<{ username: string }>).length).toBeGreaterThan(0);
    // the gateway still serves the next call
    const { second } = await digestInvite(await h.caller(), { to, via: h.udp, ...ALICE });
    expect((await finish(second)).status).toBe(200);
    expect(atCallee(second.callId)!.headerLines('p-accountcode')).toEqual([ALICE.accountcode]);
  });

  it('flood ban (pike): over 30 requests in 2 s the source is dropped, others are still served, the ban expires', async () => {
    const flooder = await h.caller();
    const ping = h.ruri('ping');
    const txs = Array.from({ length: 36 }, () => flooder.request('OPTIONS', { to: ping, via: h.udp }));
    const answered = (): number => txs.filter((t) => t.responses.some((r) => r.status === 200)).length;
    for (let i = 0; i < 40 && answered() < 30; i++) await sleep(50);
    await sleep(200);
    expect(answered()).toBe(30);
    // banned: even a well-formed INVITE gets no answer at all (banAnswer 'drop')
    const during = flooder.invite({ to: h.ruri('15551230013'), via: h.udp });
    const other = await h.caller();
    expect((await other.request('OPTIONS', { to: ping, via: h.udp }).final()).status).toBe(200);
    await sleep(400);
    expect(during.responses).toEqual([]);
    expect(h.gw.auth.listBans().map((b) => b.source)).toContain(flooder.host);
    expect(await h.gw.metrics.text()).toMatch(/^a2b_bans_total\{reason="pike"\} [1-9]/m);
    await sleep(2000); // banSec 2
    expect((await flooder.request('OPTIONS', { to: ping, via: h.udp }).final()).status).toBe(200);
    expect((await flooder.invite({ to: h.ruri('15551230014'), via: h.udp }).final()).status).toBe(407);
  });

  it('failure ban: the 4th failed authentication bans the source (silence, even with the right password) until the ban expires', async () => {
    const caller = await h.caller();
    const to = h.ruri('15551230015');
    for (let i = 0; i < 4; i++) {
      const { second } = await digestInvite(caller, { to, via: h.udp, user: ALICE.user, password: `guess-${i}` });
      expect((await second.final()).status).toBe(403);
    }
    const banned = caller.invite({ to, via: h.udp, from: `sip:${ALICE.user}@${caller.host}` });
    await sleep(500);
    expect(banned.responses).toEqual([]);
    expect(h.gw.auth.listBans()).toContainEqual(expect.objectContaining({ source: caller.host, reason: 'auth' }));
    await sleep(1700); // banSec 2
    const { second } = await digestInvite(caller, { to, via: h.udp, ...ALICE });
    expect((await finish(second)).status).toBe(200);
    expect(await h.gw.metrics.text()).toMatch(/^a2b_bans_total\{reason="auth-failures"\} [1-9]/m);
  });

  it('MySQL unreachable: known (cached) callers still pass, unknown callers still fail; all is well once it is back', async () => {
    const to = h.ruri('15551230016');
    // alice is known: she called before (credentialCacheSec 0: her entry is expired, so every lookup asks MySQL)
    const known = await digestInvite(await h.caller(), { to, via: h.udp, ...ALICE });
    expect((await finish(known.second)).status).toBe(200);
    const root = h.db.db;
    const user = `'${h.db.gwUser}'@'%'`;
    await root.query(`ALTER USER ${user} ACCOUNT LOCK`);
    try {
      const [procs] = await root.query('SELECT ID AS id FROM information_schema.PROCESSLIST WHERE USER = ?', [h.db.gwUser]);
      for (const p of procs as Array<{ id: number }>) await root.query('KILL ?', [p.id]).catch(() => undefined);
      // the gateway really cannot reach the database now
      await expect(h.gw.db.query('SELECT 1')).rejects.toThrow();

      const { second } = await digestInvite(await h.caller(), { to, via: h.udp, ...ALICE });
      expect((await finish(second)).status).toBe(200);
      expect(atCallee(second.callId)!.headerLines('p-accountcode')).toEqual([ALICE.accountcode]);
      // a reload of the address table fails now: the last loaded table must stay in force
      const reload = await fetch(`${h.mgmtUrl}/reload/auth`, { method: 'POST' });
      expect(reload.status).toBeGreaterThanOrEqual(500);
      expect(h.gw.auth.stats().lastReloadError).toBeDefined();
      const bob = (await h.caller({ host: '127.0.0.2' })).invite({ to, via: h.udp });
      expect((await finish(bob)).status).toBe(200);
      // erin is a valid subscriber, but the gateway has never seen her: it cannot verify her now
      const erin = { user: SEED.cards.erin.sip.name, password: SEED.cards.erin.sip.secret };
      const e = await digestInvite(await h.caller(), { to, via: h.udp, ...erin });
      const r = await e.second.final();
      expect(r.status).toBe(503);
      expect(r.header('retry-after')).toMatch(/^\d+$/);
      expect(atCallee(e.second.callId)).toBeUndefined();
      const stranger = await digestInvite(await h.caller(), { to, via: h.udp, user: 'never-seen-user', password: 'pw' });
      expect((await stranger.second.final()).status).toBe(503);
      expect(atCallee(stranger.second.callId)).toBeUndefined();
    } finally {
      await root.query(`ALTER USER ${user} ACCOUNT UNLOCK`);
    }
    await sleep(1100); // the credential cache fails fast for 1 s after a database error
    const erin = { user: SEED.cards.erin.sip.name, password: SEED.cards.erin.sip.secret };
    const back = await digestInvite(await h.caller(), { to, via: h.udp, ...erin });
    expect((await finish(back.second)).status).toBe(200);
    expect(atCallee(back.second.callId)!.headerLines('p-accountcode')).toEqual([SEED.cards.erin.username]);
  });

  it('MySQL hanging (subscriber table locked): unknown callers get 503 within auth.dbTimeoutMs, known callers still pass', async () => {
    const to = h.ruri('15551230018');
    const known = await digestInvite(await h.caller(), { to, via: h.udp, ...ALICE });
    expect((await finish(known.second)).status).toBe(200);
    const locker = await h.db.db.getConnection();
    try {
      await locker.query('LOCK TABLES cc_sip_buddies WRITE, cc_card WRITE');
      const dave = { user: SEED.cards.dave.sip.name, password: SEED.cards.dave.sip.secret };
      const t0 = Date.now();
      const u = await digestInvite(await h.caller(), { to, via: h.udp, ...dave });
      const r = await u.second.final(5000);
      expect(r.status).toBe(503);
      expect(Date.now() - t0).toBeLessThan(3000); // auth.dbTimeoutMs 1000, not forever
      expect(atCallee(u.second.callId)).toBeUndefined();
      const again = await digestInvite(await h.caller(), { to, via: h.udp, ...ALICE });
      expect((await finish(again.second)).status).toBe(200);
      expect(atCallee(again.second.callId)!.headerLines('p-accountcode')).toEqual([ALICE.accountcode]);
    } finally {
      await locker.query('UNLOCK TABLES').catch(() => undefined);
      locker.release();
    }
  });

  it('a stale nonce (past auth.nonceTtlSec) is re-challenged with stale=true, and the fresh one is accepted', async () => {
    const wait = early.at + NONCE_TTL_SEC * 1000 + 200 - Date.now();
    if (wait > 0) await sleep(wait);
    const caller = await h.caller();
    const to = h.ruri('15551230017');
    const from = `sip:${ALICE.user}@${caller.host}`;
    const old = caller.invite({ to, via: h.udp, from, headers: [['Proxy-Authorization', digestAnswer(early.ch, { method: 'INVITE', uri: to, ...ALICE })]] });
    const r = await old.final();
    expect(r.status).toBe(407);
    const fresh = challengesOf(r);
    expect(fresh.map((c) => [c.algorithm, c.stale])).toEqual([['SHA-256', true], ['MD5', true]]);
    expect(atCallee(old.callId)).toBeUndefined();
    const again = caller.invite({ to, via: h.udp, from, callId: old.callId, headers: [['Proxy-Authorization', digestAnswer(fresh[0]!, { method: 'INVITE', uri: to, ...ALICE })]] });
    expect((await finish(again)).status).toBe(200);
    expect(atCallee(again.callId)!.headerLines('p-accountcode')).toEqual([ALICE.accountcode]);
  });
});

