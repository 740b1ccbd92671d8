// Sample A2Billing data for tests, benchmarks and the demo: cards in several states, SIP peers with
// `dynamic` and literal-IP hosts, a hand-made peer whose accountcode names no card, a tariff group with
// plans and rate cards, and one extra trusted range. Works on the fixture and on the real schema.
import type { Db } from '../db/pool.js';
import * as Q from '../db/queries/seed.js';

export interface SeedCard {
  id: number;
  username: string;
  status: number;
  typepaid: 0 | 1;
  credit: number;
  creditlimit: number;
  tariff: number;
  /** The SIP peer of the card. */
  sip: { name: string; secret: string; host: string };
}

export const SEED = {
  tariffGroupId: 1,
  tariffPlanId: 1,
  cards: {
    /** Active prepaid with credit; registers (host dynamic); authenticates by digest. */
    alice: { id: 1, username: '4242424242', status: 1, typepaid: 0, credit: 10, creditlimit: 0, tariff: 1, sip: { name: '4242424242', secret: 'alice-Secret-1', host: 'dynamic' } },
    /** Active postpaid; peer with a literal IP host: IP-authenticated from 127.0.0.2. */
    bob: { id: 2, username: '5555000002', status: 1, typepaid: 1, credit: 0, creditlimit: 50, tariff: 1, sip: { name: '5555000002', secret: 'bob-Secret-2', host: '127.0.0.2' } },
    /** Inactive card (status 0) with a dynamic peer and an IP peer at 127.0.0.3: both must be refused. */
    carol: { id: 3, username: '6666000003', status: 0, typepaid: 0, credit: 25, creditlimit: 0, tariff: 1, sip: { name: '6666000003', secret: 'carol-Secret-3', host: '127.0.0.3' } },
    /** Active prepaid without credit. */
    dave: { id: 4, username: '7777000004', status: 1, typepaid: 0, credit: 0, creditlimit: 0, tariff: 1, sip: { name: '7777000004', secret: 'dave-Secret-4', host: 'dynamic' } },
    /** Active prepaid with a little credit: 0.10 at 0.06/min in 6 s blocks on prefix 1999 = 96 seconds. */
    erin: { id: 5, username: '8888000005', status: 1, typepaid: 0, credit: 0.1, creditlimit: 0, tariff: 1, sip: { name: '8888000005', secret: 'erin-Secret-5', host: 'dynamic' } },
  } satisfies Record<string, SeedCard>,
  /** A hand-made peer (no card with its accountcode): never authenticated. */
  handmade: { name: 'handmade-trunk', accountcode: '9999999999', secret: 'hm-Secret', host: '127.0.0.4' },
  /** gw_trusted range billing to bob. */
  trusted: { ip: '127.0.10.0', mask: 24, accountcode: '5555000002', description: 'bob office range' },
  rates: [
    // prefix, rateinitial per minute, initblock, billingblock, connectcharge
    { prefix: '1', rate: 0.02, initblock: 60, billingblock: 60, connect: 0 },
    { prefix: '1999', rate: 0.06, initblock: 6, billingblock: 6, connect: 0 },
    { prefix: '44', rate: 0.05, initblock: 30, billingblock: 6, connect: 0 },
    { prefix: '4420', rate: 0.03, initblock: 30, billingblock: 6, connect: 0 },
    { prefix: '33', rate: 0.10, initblock: 60, billingblock: 60, connect: 0.05 },
  ],
} as const;

export async function seedA2Billing(db: Db): Promise<typeof SEED> {
  await db.query(Q.INSERT_TARIFFGROUP, [SEED.tariffGroupId, 'default', SEED.tariffPlanId]);
  await db.query(Q.INSERT_TARIFFPLAN, [SEED.tariffPlanId, 'standard']);
  await db.query(Q.INSERT_TARIFFGROUP_PLAN, [SEED.tariffGroupId, SEED.tariffPlanId]);
  for (const r of SEED.rates) {
    await db.query(Q.INSERT_RATECARD, [SEED.tariffPlanId, r.prefix, r.rate, r.initblock, r.billingblock, r.connect, `rate ${r.prefix}`]);
  }
  for (const c of Object.values(SEED.cards) as SeedCard[]) {
    await db.query(Q.INSERT_CARD, [c.id, c.username, c.username, `pw${c.id}`, c.credit, c.tariff, c.status === 1 ? 't' : 'f', c.status, c.typepaid, c.creditlimit, `Card${c.id}`, 'Seed']);
    await db.query(Q.INSERT_SIP_BUDDY, [c.id, c.sip.name, c.username, c.sip.secret, c.sip.name, c.sip.host]);
  }
  // carol also has a dynamic device: an inactive card must fail digest as well.
  await db.query(Q.INSERT_SIP_BUDDY, [SEED.cards.carol.id, 'carol-phone', SEED.cards.carol.username, 'carol-Phone-3', 'carol-phone', 'dynamic']);
  await db.query(Q.INSERT_SIP_BUDDY, [0, SEED.handmade.name, SEED.handmade.accountcode, SEED.handmade.secret, SEED.handmade.name, SEED.handmade.host]);
  await db.query(Q.INSERT_TRUSTED, [SEED.trusted.ip, SEED.trusted.mask, 0, 'any', SEED.trusted.accountcode, SEED.trusted.description]);
  return SEED;
}
