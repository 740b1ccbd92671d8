// The project's small A2Billing fixture must agree with the real schema, column by column,
// and the seed data must load into the real schema too.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../../src/db/migrate.js';
import { seedA2Billing, SEED } from '../../src/devdb/seed.js';
import { createTestDb, dbRootUrl, type TestDb } from '../helpers/db.js';
import { haveRealSchema, loadRealA2Billing } from '../helpers/real-a2billing.js';

const COLS = `SELECT TABLE_NAME t, COLUMN_NAME c, COLUMN_TYPE type, IS_NULLABLE nullable, COLUMN_DEFAULT def, COLLATION_NAME coll
  FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME LIKE 'cc\\_%' ORDER BY TABLE_NAME, COLUMN_NAME`;

describe.runIf(haveRealSchema)('A2Billing fixture vs the real 2.3.0 schema', () => {
  let fixture: TestDb;
  let real: TestDb;
  beforeAll(async () => {
    fixture = await createTestDb({ migrate: false });
    real = await createTestDb({ migrate: false, fixture: false });
    loadRealA2Billing(dbRootUrl(), real.name);
  });
  afterAll(async () => {
    await fixture?.drop();
    await real?.drop();
  });

  it('every fixture column exists in the real schema with the same type, nullability, default and collation', async () => {
    const [f] = await fixture.db.query(COLS, [fixture.name]);
    const [r] = await real.db.query(COLS, [real.name]);
    const realByKey = new Map((r as Array<Record<string, unknown>>).map((x) => [`${x.t}.${x.c}`, x]));
    const fixtureCols = f as Array<Record<string, unknown>>;
    expect(fixtureCols.length).toBeGreaterThan(50);
    for (const col of fixtureCols) expect(realByKey.get(`${col.t}.${col.c}`), `${col.t}.${col.c}`).toEqual(col);
  });

  it('seed data and migrations load into the real schema', async () => {
    await migrate(real.db);
    await seedA2Billing(real.db);
    const [rows] = await real.db.query('SELECT username FROM subscriber ORDER BY username');
    expect((rows as Array<{ username: string }>).map((x) => x.username)).toContain(SEED.cards.alice.sip.name);
  });
});
