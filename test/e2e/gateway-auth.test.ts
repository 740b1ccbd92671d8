// Issue 4 acceptance (authentication) through the WHOLE gateway: startGateway with the seed data in a real
// MariaDB, real UDP sockets on loopback, a test callee standing in for Asterisk.
// Callers sit on their own loopback addresses so abuse counters (pike, failure bans) of one test never
// touch another: 127.0.0.2 = bob's IP peer, 127.0.10.x = the trusted range (bob), 127.0.60.x = untrusted.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SEED } from '../../src/devdb/seed.js';
import { challengesOf, digestAnswer, digestInvite, finish, parseChallenge, sleep, startTestGateway, type Challenge, type TestGateway } from '../helpers/gateway.js';
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

  it('the trusted range 127.0.10.0/24 authenticates as bob too', async () => {
    const caller = await h.caller({ host: '127.0.10.77' });
    const call = caller.invite({ to: h.ruri('15551230002'), via: h.udp });
    expect((await finish(call)).status).toBe(200);
    expect(atCallee(call.callId)!.headerLines('p-accountcode')).toEqual([SEED.trusted.accountcode]);
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
});
