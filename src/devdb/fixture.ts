import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { splitSql } from '../db/migrate.js';
import type { Db } from '../db/pool.js';
import { projectRoot } from '../paths.js';

export function fixturePath(): string {
  return join(projectRoot(), 'test', 'fixtures', 'a2billing-schema.sql');
}

/** Creates the A2Billing tables the gateway reads (the project's own small fixture). */
export async function loadA2BillingFixture(db: Db): Promise<void> {
  for (const stmt of splitSql(readFileSync(fixturePath(), 'utf8'))) await db.query(stmt);
}
