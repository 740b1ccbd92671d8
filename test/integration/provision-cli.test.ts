import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { provision } from '../../src/cli/provision.js';
import { createDb } from '../../src/db/pool.js';
import { loadA2BillingFixture } from '../../src/devdb/fixture.js';
import { createTestDb, dbRootUrl, withDatabase, type TestDb } from '../helpers/db.js';
import { haveRealSchema, loadRealA2Billing } from '../helpers/real-a2billing.js';

const run = promisify(execFile);

async function freshFixtureDb(): Promise<TestDb> {
  return createTestDb({ migrate: false, fixture: false });
}

describe('a2b-gateway provision', () => {
  const dbs: TestDb[] = [];
  afterAll(async () => { for (const d of dbs) await d.drop(); });

  it('applies the schema once; a second run changes nothing and dry-run then prints nothing to do', async () => {
    const t = await freshFixtureDb();
    dbs.push(t);
    await loadA2BillingFixture(t.db);
    const lines: string[] = [];
    const first = await provision({ db: t.url, gatewayPassword: 'pw-1', gatewayUser: `u${t.name.slice(2, 8)}`, gatewayHost: '%', out: (l) => lines.push(l) });
    expect(first.steps.length).toBeGreaterThan(10);
    const [tables] = await t.db.query("SELECT TABLE_NAME t FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE 'gw\\_%' ORDER BY 1");
    expect((tables as Array<{ t: string }>).map((r) => r.t)).toContain('gw_cdr');

    const dry: string[] = [];
    const second = await provision({ db: t.url, dryRun: true, out: (l) => dry.push(l) });
    expect(second.steps).toEqual([]);
    const again = await provision({ db: t.url, out: (l) => lines.push(l) });
    expect(again.steps).toEqual([]);
    expect(lines.at(-2)).toMatch(/is up to date: no schema change/);
    await t.db.query(`DROP USER IF EXISTS 'u${t.name.slice(2, 8)}'@'%'`);
  });

  it('dry-run prints exactly the SQL it would run and changes nothing', async () => {
    const t = await freshFixtureDb();
    dbs.push(t);
    await loadA2BillingFixture(t.db);
    const out: string[] = [];
    const { steps } = await provision({ db: t.url, dryRun: true, gatewayPassword: 'secret-pw', out: (l) => out.push(l) });
    expect(out.filter((l) => !l.startsWith('--'))).toHaveLength(steps.length);
    expect(out.join('\n')).toContain('CREATE OR REPLACE SQL SECURITY DEFINER VIEW subscriber');
    expect(out.join('\n')).not.toContain('secret-pw');
    const [rows] = await t.db.query("SELECT COUNT(*) n FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE 'gw\\_%'");
    expect(Number((rows as Array<{ n: number }>)[0]!.n)).toBe(0);
  });

  it('refuses a database that is not A2Billing', async () => {
    const t = await freshFixtureDb();
    dbs.push(t);
    await expect(provision({ db: t.url, out: () => {} })).rejects.toThrow(/does not look like an A2Billing database: .* lacks cc_card/);
  });

  it('a database that cannot be reached gives one clear line, not a stack trace', async () => {
    const cli = join(import.meta.dirname, '..', '..', 'src', 'cli', 'main.ts');
    const res = await run('npx', ['tsx', cli, 'provision', '--db', 'mysql://root:pw@127.0.0.1:1/a2billing'], { encoding: 'utf8' }).catch((e: { stderr: string; code: number }) => e);
    expect((res as { code: number }).code).toBe(1);
    const stderr = (res as { stderr: string }).stderr.split('\n').filter((l) => l && !l.startsWith('npm warn'));
    expect(stderr).toEqual(['a2b-gateway: cannot connect to the database: connection refused (mysql://root:***@127.0.0.1:1/a2billing): is MySQL/MariaDB running and listening there? [GW_ERR_DB_CONNECT]']);
  });

  // Runs when ../shared/a2billing is present (it is beside every clone here and in CI).
  it.runIf(haveRealSchema)('provisions the complete real A2Billing schema (base 1.4.0 + every update to 2.3.0)', async () => {
    const t = await freshFixtureDb();
    dbs.push(t);
    loadRealA2Billing(dbRootUrl(), t.name);
    const lines: string[] = [];
    await provision({ db: t.url, out: (l) => lines.push(l) });
    const gw = createDb({ url: withDatabase(dbRootUrl(), t.name), poolSize: 1 });
    const [sub] = await gw.query('SELECT * FROM subscriber');
    const [addr] = await gw.query('SELECT * FROM address');
    expect(Array.isArray(sub) && Array.isArray(addr)).toBe(true);
    await gw.end();
    const again = await provision({ db: t.url, out: (l) => lines.push(l) });
    expect(again.steps).toEqual([]);
  });
});
