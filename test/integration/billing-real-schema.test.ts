// The credit check on the original A2Billing schema (1.4.0 + every update to 2.3.0), seeded: the SQL and the
// rating rules hold on the real tables, not only on the project's fixture.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Billing } from '../../src/billing/credit.js';
import { configSchema } from '../../src/config/schema.js';
import { migrate } from '../../src/db/migrate.js';
import { SEED, seedA2Billing } from '../../src/devdb/seed.js';
import { silentLogger } from '../../src/log.js';
import { createTestDb, dbRootUrl, type TestDb } from '../helpers/db.js';
import { haveRealSchema, loadRealA2Billing } from '../helpers/real-a2billing.js';

describe.runIf(haveRealSchema)('billing on the real A2Billing schema', () => {
  let real: TestDb;
  let billing: Billing;
  beforeAll(async () => {
    real = await createTestDb({ migrate: false, fixture: false });
    loadRealA2Billing(dbRootUrl(), real.name);
    await migrate(real.db);
    await seedA2Billing(real.db);
    const cfg = configSchema.parse({});
    billing = new Billing({ billing: cfg.billing, dialog: cfg.dialog, db: real.db, log: silentLogger() });
  });
  afterAll(async () => {
    billing?.close();
    await real?.drop();
  });

  it('erin 96 s, dave 402, bob postpaid, connect charge, no rate, inactive card', async () => {
    expect(await billing.quote(SEED.cards.erin.username, '+19995550100')).toMatchObject({ kind: 'ok', maxDurationSec: 96, prefix: '1999' });
    expect(await billing.quote(SEED.cards.dave.username, '19995550100')).toMatchObject({ kind: 'no-credit' });
    expect(await billing.quote(SEED.cards.bob.username, '12125550100')).toMatchObject({ kind: 'ok', maxDurationSec: 10800, available: '50.00000' });
    expect(await billing.quote(SEED.cards.alice.username, '33123456789')).toMatchObject({ kind: 'ok', maxDurationSec: 5940 });
    expect(await billing.quote(SEED.cards.alice.username, '861012345678')).toMatchObject({ kind: 'no-rate' });
    expect(await billing.quote(SEED.cards.carol.username, '19995550100')).toMatchObject({ kind: 'inactive' });
  });

  it("A2Billing's zero stop date means open-ended; its default week window is the whole week", async () => {
    await real.db.query(`INSERT INTO cc_ratecard (idtariffplan, dialprefix, rateinitial, initblock, billingblock, connectcharge, startdate, stopdate, musiconhold, destination, buyrate)
      VALUES (1, '19996', 0.01, 6, 6, 0, '2000-01-01 00:00:00', '0000-00-00 00:00:00', '', 0, 0)`);
    expect(await billing.quote(SEED.cards.erin.username, '19996000000')).toMatchObject({ kind: 'ok', prefix: '19996', maxDurationSec: 600 });
  });
});
