// A fresh database per test file on the shared MariaDB: the A2Billing fixture, the gateway's migrations,
// optional seed data, and a least-privilege gateway user exactly as `provision` creates it.
import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';
import { migrate, planGrants, runSteps } from '../../src/db/migrate.js';
import { createDb, type Db } from '../../src/db/pool.js';
import { loadA2BillingFixture } from '../../src/devdb/fixture.js';
import { seedA2Billing } from '../../src/devdb/seed.js';

export interface TestDb {
  name: string;
  /** root on the server (no database). */
  rootUrl: string;
  /** root on this database. */
  url: string;
  /** the least-privilege gateway user on this database. */
  gwUrl: string;
  gwUser: string;
  gwPassword: string;
  /** pool as root on this database. */
  db: Db;
  drop(): Promise<void>;
}

export function dbRootUrl(): string {
  return inject('dbRootUrl');
}

export function withDatabase(rootUrl: string, name: string, user?: { user: string; password: string }): string {
  const u = new URL(rootUrl);
  if (user) {
    u.username = encodeURIComponent(user.user);
    u.password = encodeURIComponent(user.password);
  }
  u.pathname = `/${name}`;
  return u.toString();
}

export async function createTestDb(opts: { seed?: boolean; migrate?: boolean; fixture?: boolean } = {}): Promise<TestDb> {
  const rootUrl = dbRootUrl();
  const name = `t_${randomBytes(5).toString('hex')}`;
  const admin = createDb({ url: rootUrl, poolSize: 1 });
  await admin.query(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4`);
  await admin.end();
  const url = withDatabase(rootUrl, name);
  const db = createDb({ url, poolSize: 4 });
  if (opts.fixture !== false) await loadA2BillingFixture(db);
  if (opts.migrate !== false && opts.fixture !== false) await migrate(db);
  if (opts.seed && opts.migrate !== false) await seedA2Billing(db);
  const gwUser = `gw_${name.slice(2)}`;
  const gwPassword = randomBytes(9).toString('base64url');
  if (opts.migrate !== false && opts.fixture !== false) await runSteps(db, planGrants(name, { user: gwUser, host: '%', password: gwPassword }));
  return {
    name, rootUrl, url, db, gwUser, gwPassword,
    gwUrl: withDatabase(rootUrl, name, { user: gwUser, password: gwPassword }),
    async drop() {
      await db.query(`DROP DATABASE IF EXISTS \`${name}\``).catch(() => undefined);
      await db.query(`DROP USER IF EXISTS '${gwUser}'@'%'`).catch(() => undefined);
      await db.end().catch(() => undefined);
    },
  };
}
