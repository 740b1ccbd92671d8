// Credit authorisation against the seeded A2Billing data on a real MariaDB, as the least-privilege gateway user.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Billing } from '../../src/billing/credit.js';
import { configSchema, type Config } from '../../src/config/schema.js';
import { createDb, type Db } from '../../src/db/pool.js';
import { SEED } from '../../src/devdb/seed.js';
import { silentLogger } from '../../src/log.js';
import { createMetrics } from '../../src/metrics.js';
import type { Authenticated, CallEvent, RequestFacts } from '../../src/proxy/hooks.js';
import { createTestDb, type TestDb } from '../helpers/db.js';

const { alice, bob, carol, dave, erin } = SEED.cards;
let seq = 0;
const call = (ruriUser: string) => ({ callId: `call-${++seq}@test`, ruriUser });
const as = (card: { username: string; id: number }): Authenticated => ({ method: 'digest', accountcode: card.username, cardId: card.id });
const facts = (callId: string) => ({ callId }) as unknown as RequestFacts;

describe('billing.authorize on the seed data', () => {
  let t: TestDb;
  let gw: Db;
  const billings: Billing[] = [];
  const make = (billing: Record<string, unknown> = {}, opts: { db?: Db; now?: () => number; lifetimeSec?: number } = {}) => {
    const cfg: Config = configSchema.parse({ billing: { safetyMarginSec: 0, ...billing }, dialog: { defaultMaxLifetimeSec: opts.lifetimeSec ?? 10800 } });
    const b = new Billing({ billing: cfg.billing, dialog: cfg.dialog, db: 'db' in opts ? opts.db : gw, log: silentLogger(), now: opts.now });
    billings.push(b);
    return b;
  };

  beforeAll(async () => {
    t = await createTestDb({ seed: true });
    gw = createDb({ url: t.gwUrl, poolSize: 2 });
  });
  afterAll(async () => {
    for (const b of billings) b.close();
    await gw?.end();
    await t?.drop();
  });

  it('dave has no credit: 402 Payment Required', async () => {
    expect(await make().authorize(call('19995550100'), as(dave))).toEqual({ kind: 'reject', status: 402, reason: 'Payment Required' });
  });

  it('erin: 0.10 at 0.06/min in 6 s blocks on 1999 = 96 s, minus the safety margin', async () => {
    const d = await make({ safetyMarginSec: 5 }).authorize(call('+19995550100'), as(erin));
    expect(d).toMatchObject({ kind: 'ok', maxDurationSec: 91 });
    const q = await make().quote(erin.username, '0019995550100');
    expect(q).toMatchObject({ kind: 'ok', maxDurationSec: 96, prefix: '1999', ratePerMin: '0.06000', available: '0.10000' });
  });

  it('bob is postpaid: the credit limit of 50 buys 150000 s at 0.02/min (capped by the dialog lifetime)', async () => {
    const d = await make({ safetyMarginSec: 10 }, { lifetimeSec: 200_000 }).authorize(call('12125550100'), as(bob));
    expect(d).toMatchObject({ kind: 'ok', maxDurationSec: 150000 - 10 });
    const capped = await make({ safetyMarginSec: 10 }).authorize(call('12125550100'), as(bob));
    expect(capped).toMatchObject({ kind: 'ok', maxDurationSec: 10800 });
  });

  it('charges the connect charge first (alice to 33: 10 - 0.05, 60 s blocks at 0.10)', async () => {
    expect(await make().quote(alice.username, '33123456789')).toMatchObject({ kind: 'ok', maxDurationSec: 5940, prefix: '33' });
  });

  it('the longest prefix wins (4420 at 0.03 over 44 at 0.05)', async () => {
    expect(await make().quote(alice.username, '442071234567')).toMatchObject({ kind: 'ok', prefix: '4420', ratePerMin: '0.03000' });
    expect(await make().quote(alice.username, '447700900123')).toMatchObject({ kind: 'ok', prefix: '44', ratePerMin: '0.05000' });
  });

  it('no rate for the number: 404 (configurable); not a number at all: the same', async () => {
    expect(await make().authorize(call('861012345678'), as(alice))).toEqual({ kind: 'reject', status: 404, reason: 'Not Found' });
    expect(await make({ noRateStatus: 403 }).authorize(call('admin'), as(alice))).toMatchObject({ kind: 'reject', status: 403 });
  });

  it('inactive or unknown cards are refused with 403', async () => {
    expect(await make().authorize(call('19995550100'), as(carol))).toMatchObject({ kind: 'reject', status: 403 });
    expect(await make().authorize(call('19995550100'), { method: 'ip', accountcode: SEED.handmade.accountcode })).toMatchObject({ kind: 'reject', status: 403 });
  });

  it('reads credit fresh: a card emptied a moment ago is refused on the next call', async () => {
    const b = make();
    const before = await b.authorize(call('19995550100'), as(erin));
    expect(before).toMatchObject({ kind: 'ok', maxDurationSec: 96 });
    if (before.kind === 'ok') before.release?.();
    await t.db.query('UPDATE cc_card SET credit = 0 WHERE id = ?', [erin.id]);
    try {
      expect(await b.authorize(call('19995550100'), as(erin))).toMatchObject({ kind: 'reject', status: 402 });
    } finally {
      await t.db.query('UPDATE cc_card SET credit = ? WHERE id = ?', [erin.credit, erin.id]);
    }
  });

  it('rate cards outside their dates or week window are ignored (A2Billing rules, epoch-safe)', async () => {
    // Monday 2026-11-23 10:30 UTC = minute 630 of the week.
    const monday = Date.UTC(2026, 10, 23, 10, 30);
    await t.db.query(`INSERT INTO cc_ratecard (idtariffplan, dialprefix, rateinitial, initblock, billingblock, connectcharge, startdate, stopdate,
      starttime, endtime, musiconhold, destination, buyrate) VALUES
      (1, '19995', 0.01, 6, 6, 0, '2000-01-01 00:00:00', '2099-12-31 00:00:00', 0, 629, '', 0, 0),
      (1, '199955', 0.01, 6, 6, 0, '2000-01-01 00:00:00', '2020-01-01 00:00:00', 0, 10079, '', 0, 0),
      (1, '1999555', 0.12, 6, 6, 0, '2000-01-01 00:00:00', '2099-12-31 00:00:00', 630, 630, '', 0, 0)`);
    try {
      // 10:30: only the 1999555 peak card (window 630..630) is valid; 0.10 at 0.12/min buys 48 s.
      expect(await make({}, { now: () => monday }).quote(erin.username, '19995550100')).toMatchObject({ kind: 'ok', prefix: '1999555', maxDurationSec: 48 });
      // 10:31: the peak card is out of its window, 199955 expired in 2020, 19995 ends at 629: back to 1999.
      expect(await make({}, { now: () => monday + 60_000 }).quote(erin.username, '19995550100')).toMatchObject({ kind: 'ok', prefix: '1999', maxDurationSec: 96 });
      // 10:29: the off-peak 19995 card applies (0.01/min: 0.10 buys 600 s).
      expect(await make({}, { now: () => monday - 60_000 }).quote(erin.username, '19995550100')).toMatchObject({ kind: 'ok', prefix: '19995', maxDurationSec: 600 });
    } finally {
      await t.db.query("DELETE FROM cc_ratecard WHERE dialprefix IN ('19995', '199955', '1999555')");
    }
  });

  it('maxCallsPerAccount: the limit holds and is freed by release(), a failed event or an ended event', async () => {
    const b = make({ maxCallsPerAccount: 2 });
    const c1 = call('12125550100');
    const c2 = call('12125550101');
    const d1 = await b.authorize(c1, as(bob));
    const d2 = await b.authorize(c2, as(bob));
    expect([d1.kind, d2.kind]).toEqual(['ok', 'ok']);
    expect(await b.authorize(call('12125550102'), as(bob))).toEqual({ kind: 'reject', status: 403, reason: 'Forbidden' });
    // Another account is not affected.
    expect((await b.authorize(call('12125550102'), as(alice))).kind).toBe('ok');

    // 1) the proxy calls release() when the call fails (twice is harmless)
    if (d1.kind === 'ok') { d1.release!(); d1.release!(); }
    expect(b.activeCalls(bob.username)).toBe(1);
    const c3 = call('12125550103');
    expect((await b.authorize(c3, as(bob))).kind).toBe('ok');
    expect((await b.authorize(call('12125550104'), as(bob))).kind).toBe('reject');

    // 2) a failed event frees the slot of an unanswered call
    b.onCallEvent({ type: 'failed', facts: facts(c3.callId), auth: as(bob), target: undefined, status: 486, reason: 'Busy Here', at: Date.now(), cancelled: false });
    expect(b.activeCalls(bob.username)).toBe(1);

    // 3) an answered call holds its slot until ended (a late failed event for it does not free it)
    b.onCallEvent({ type: 'answered', facts: facts(c2.callId) } as unknown as CallEvent);
    b.onCallEvent({ type: 'failed', facts: facts(c2.callId), auth: as(bob), target: undefined, status: 487, reason: 'x', at: Date.now(), cancelled: true });
    expect(b.activeCalls(bob.username)).toBe(1);
    b.onCallEvent({ type: 'ended', callId: c2.callId, fromTag: 'a', toTag: 'b', reason: 'bye-caller', at: Date.now() });
    expect(b.activeCalls(bob.username)).toBe(0);
  });

  it('maxCallsPerAccount: calls that share a Call-ID cannot free each other\'s slots', async () => {
    const b = make({ maxCallsPerAccount: 2 });
    const shared = { callId: 'shared-callid@test', ruriUser: '12125550100' };
    const f = (fromTag: string) => ({ callId: shared.callId, fromTag }) as unknown as RequestFacts;
    expect((await b.authorize({ ...shared, fromTag: 'tag-a' }, as(bob))).kind).toBe('ok');
    expect((await b.authorize({ ...shared, fromTag: 'tag-b' }, as(bob))).kind).toBe('ok');
    b.onCallEvent({ type: 'answered', facts: f('tag-a') } as unknown as CallEvent);
    // The second call fails while the first is up; then the first ends: one slot freed each time, in order.
    b.onCallEvent({ type: 'failed', facts: f('tag-b'), auth: as(bob), target: undefined, status: 486, reason: 'Busy Here', at: Date.now(), cancelled: false });
    expect(b.activeCalls(bob.username)).toBe(1);
    expect((await b.authorize({ ...shared, fromTag: 'tag-c' }, as(bob))).kind).toBe('ok');
    b.onCallEvent({ type: 'answered', facts: f('tag-c') } as unknown as CallEvent);
    expect((await b.authorize(call('12125550101'), as(bob))).kind).toBe('reject');
    b.onCallEvent({ type: 'ended', callId: shared.callId, fromTag: 'tag-a', toTag: 'callee', reason: 'bye-caller', at: Date.now() });
    expect(b.activeCalls(bob.username)).toBe(1);
  });

  it('counts every decision in a2b_billing_decisions_total by result', async () => {
    const metrics = createMetrics();
    const cfg: Config = configSchema.parse({ billing: { safetyMarginSec: 0 } });
    const b = new Billing({ billing: cfg.billing, dialog: cfg.dialog, db: gw, log: silentLogger(), metrics });
    billings.push(b);
    await b.authorize(call('12125550100'), as(alice));
    await b.authorize(call('19995550100'), as(dave));
    await b.authorize(call('861012345678'), as(alice));
    const text = await metrics.text();
    expect(text).toMatch(/a2b_billing_decisions_total\{result="ok"\} 1\n/);
    expect(text).toMatch(/a2b_billing_decisions_total\{result="no-credit"\} 1\n/);
    expect(text).toMatch(/a2b_billing_decisions_total\{result="no-rate"\} 1\n/);
  });

  it('refused calls take no slot', async () => {
    const b = make({ maxCallsPerAccount: 1 });
    for (let i = 0; i < 3; i++) expect((await b.authorize(call('19995550100'), as(dave))).kind).toBe('reject');
    expect(b.activeCalls(dave.username)).toBe(0);
  });

  it("honourSimultaccess: cc_card.simultaccess 0 (A2Billing's individual access) allows one call at a time", async () => {
    const b = make({ honourSimultaccess: true });
    const first = await b.authorize(call('12125550100'), as(alice));
    expect(first.kind).toBe('ok');
    expect(await b.authorize(call('12125550101'), as(alice))).toMatchObject({ kind: 'reject', status: 403 });
    await t.db.query('UPDATE cc_card SET simultaccess = 1 WHERE id = ?', [alice.id]);
    try {
      expect((await b.authorize(call('12125550101'), as(alice))).kind).toBe('ok');
    } finally {
      await t.db.query('UPDATE cc_card SET simultaccess = 0 WHERE id = ?', [alice.id]);
    }
  });

  it('reserveCredit: simultaneous calls cannot spend the same credit twice', async () => {
    const b = make({ reserveCredit: true });
    // erin: 0.10 buys 96 s on 1999; the first call holds 0.096 of it.
    const first = await b.authorize(call('19995550100'), as(erin));
    expect(first).toMatchObject({ kind: 'ok', maxDurationSec: 96 });
    expect(b.slots.reserved(erin.username)).toBe(9600n);
    expect(await b.authorize(call('19995550100'), as(erin))).toMatchObject({ kind: 'reject', status: 402 });
    expect(await b.quote(erin.username, '19995550100')).toMatchObject({ kind: 'no-credit', available: '0.00400' });
    if (first.kind === 'ok') first.release!();
    expect(await b.authorize(call('19995550100'), as(erin))).toMatchObject({ kind: 'ok', maxDurationSec: 96 });

    // alice: 10 at 0.02/min; a call can last at most the 3 h lifetime, so it holds 3.60 and leaves 6.40 to others.
    const a1 = await b.authorize(call('12125550100'), as(alice));
    expect(a1).toMatchObject({ kind: 'ok', maxDurationSec: 10800 });
    expect(b.slots.reserved(alice.username)).toBe(360000n);
    const a2 = await b.authorize(call('12125550101'), as(alice));
    expect(a2).toMatchObject({ kind: 'ok', maxDurationSec: 10800 });
    // 10 - 7.20 = 2.80 left: 8400 s.
    expect(await b.authorize(call('12125550102'), as(alice))).toMatchObject({ kind: 'ok', maxDurationSec: 8400 });
    expect(await b.authorize(call('12125550103'), as(alice))).toMatchObject({ kind: 'reject', status: 402 });
    b.onCallEvent({ type: 'ended', callId: `call-${seq - 2}@test`, fromTag: 'a', toTag: 'b', reason: 'bye-caller', at: Date.now() });
    expect(b.slots.reserved(alice.username)).toBe(360000n + 280000n);
  });

  it('database unreachable: 503, never admitted unchecked', async () => {
    const dead = createDb({ url: 'mysql://gw:x@127.0.0.1:1/a2b', poolSize: 1, connectTimeoutMs: 500 });
    try {
      const d = await make({}, { db: dead }).authorize(call('19995550100'), as(erin));
      expect(d).toMatchObject({ kind: 'reject', status: 503, reason: 'Service Unavailable' });
    } finally {
      await dead.end().catch(() => undefined);
    }
  });

  it('configuration: credit check without a database and an unknown timezone are refused up front', () => {
    expect(() => make({}, { db: undefined })).toThrow(/billing.creditCheck needs the database/);
    const r = configSchema.safeParse({ billing: { timezone: 'Mars/Olympus' } });
    expect(r.success).toBe(false);
    expect(JSON.stringify(r.error?.issues)).toMatch(/IANA timezone/);
    expect(configSchema.parse({ billing: { timezone: 'Europe/Paris' } }).billing.timezone).toBe('Europe/Paris');
  });

  it('creditCheck off: no database, no maximum, the call limit still applies', async () => {
    const b = make({ creditCheck: false, maxCallsPerAccount: 1 }, { db: undefined });
    const d = await b.authorize(call('19995550100'), as(dave));
    expect(d.kind).toBe('ok');
    expect(d).not.toHaveProperty('maxDurationSec');
    expect(await b.authorize(call('19995550100'), as(dave))).toMatchObject({ kind: 'reject', status: 403 });
  });
});
