// Forward-only migrations from sql/NNN_name.sql, recorded in gw_schema_version, plus the
// least-privilege gateway user. Every statement is idempotent, so a half-applied run can be re-run.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GwError } from '../errors.js';
import { projectRoot } from '../paths.js';
import type { Db } from './pool.js';
import * as Q from './queries/migrate.js';

export interface Migration {
  version: number;
  name: string;
  checksum: string;
  statements: string[];
}

export function migrationsDir(): string {
  return join(projectRoot(), 'sql');
}

/** Splits a SQL file into statements at `;` outside quotes and comments. No DELIMITER blocks by design. */
export function splitSql(text: string): string[] {
  const out: string[] = [];
  let cur = '';
  let i = 0;
  let quote: string | null = null;
  while (i < text.length) {
    const c = text[i]!;
    if (quote) {
      cur += c;
      if (c === '\\' && quote !== '`') { cur += text[i + 1] ?? ''; i += 2; continue; }
      if (c === quote) quote = null;
      i++;
      continue;
    }
    if (c === '-' && text[i + 1] === '-') { const nl = text.indexOf('\n', i); i = nl < 0 ? text.length : nl + 1; cur += '\n'; continue; }
    if (c === '/' && text[i + 1] === '*') { const end = text.indexOf('*/', i + 2); i = end < 0 ? text.length : end + 2; continue; }
    if (c === "'" || c === '"' || c === '`') { quote = c; cur += c; i++; continue; }
    if (c === ';') { if (cur.trim()) out.push(cur.trim()); cur = ''; i++; continue; }
    cur += c;
    i++;
  }
  if (cur.trim()) out.push(cur.trim());
  return out;
}

export function loadMigrations(dir = migrationsDir()): Migration[] {
  const files = readdirSync(dir).filter((f) => /^\d{3}_[a-z0-9_]+\.sql$/.test(f)).sort();
  return files.map((f) => {
    const text = readFileSync(join(dir, f), 'utf8');
    return {
      version: Number(f.slice(0, 3)),
      name: f.replace(/\.sql$/, ''),
      checksum: createHash('sha256').update(text).digest('hex'),
      statements: splitSql(text),
    };
  });
}

export function latestVersion(migrations = loadMigrations()): number {
  return migrations.reduce((m, x) => Math.max(m, x.version), 0);
}

async function appliedVersions(db: Db): Promise<Map<number, { name: string; checksum: string }> | null> {
  const [exists] = await db.query(Q.SCHEMA_VERSION_EXISTS);
  if (Number((exists as Array<{ n: number }>)[0]?.n) === 0) return null;
  const [rows] = await db.query(Q.SCHEMA_VERSIONS);
  return new Map((rows as Array<{ version: number; name: string; checksum: string }>).map((r) => [Number(r.version), r]));
}

export interface PlanStep {
  sql: string;
  params?: unknown[];
  /** What a person reads in --dry-run when the text differs from sql (e.g. a redacted password). */
  display?: string;
}

/** The exact statements `provision` would run for the schema, given what is already applied. */
export async function planMigrations(db: Db, migrations = loadMigrations()): Promise<PlanStep[]> {
  const applied = await appliedVersions(db);
  const steps: PlanStep[] = [];
  if (!applied) steps.push({ sql: Q.SCHEMA_VERSION_TABLE });
  for (const m of migrations) {
    const a = applied?.get(m.version);
    if (a) {
      if (a.checksum !== m.checksum) {
        throw new GwError('GW_ERR_MIGRATION', `sql/${m.name}.sql was changed after it was applied (checksum differs); migrations are forward-only: add a new file instead`);
      }
      continue;
    }
    for (const s of m.statements) steps.push({ sql: s });
    steps.push({ sql: Q.SCHEMA_VERSION_INSERT, params: [m.version, m.name, m.checksum] });
  }
  return steps;
}

/** Refuses a schema older or newer than this build knows. */
export async function checkSchemaVersion(db: Db, migrations = loadMigrations()): Promise<number> {
  const applied = await appliedVersions(db);
  const latest = latestVersion(migrations);
  const have = applied ? Math.max(0, ...applied.keys()) : 0;
  if (have < latest) throw new GwError('GW_ERR_SCHEMA_TOO_OLD', `database is at version ${have}, this gateway needs ${latest}`);
  if (have > latest) throw new GwError('GW_ERR_SCHEMA_TOO_NEW', `database is at version ${have}, this gateway knows up to ${latest}`);
  return have;
}

export interface GatewayUser {
  user: string;
  host: string;
  password: string;
}

const IDENT = /^[A-Za-z0-9_]{1,64}$/;
const HOST = /^[A-Za-z0-9_.:%-]{1,255}$/;

/** Tables the gateway reads in A2Billing (besides its own views). */
export const A2B_READ_TABLES = ['cc_call', 'cc_card', 'cc_tariffgroup', 'cc_tariffgroup_plan', 'cc_tariffplan', 'cc_ratecard'];
export const GW_VIEWS = ['subscriber', 'address'];
/** Gateway tables the gateway writes. gw_schema_version is read-only for it. */
export const GW_TABLES = ['gw_trusted', 'gw_dispatcher', 'gw_acc', 'gw_missed_calls', 'gw_cdr', 'gw_dialog', 'gw_ami_cdr', 'gw_ami_session', 'gw_reconcile_run', 'gw_reconcile_item'];

/** CREATE USER / GRANT statements for a least-privilege gateway account. Idempotent. */
export function planGrants(database: string, u: GatewayUser): PlanStep[] {
  if (!IDENT.test(database)) throw new GwError('GW_ERR_CLI_USAGE', `database name "${database}" must be letters, digits and _`);
  if (!IDENT.test(u.user)) throw new GwError('GW_ERR_CLI_USAGE', `--gateway-user "${u.user}" must be letters, digits and _`);
  if (!HOST.test(u.host)) throw new GwError('GW_ERR_CLI_USAGE', `--gateway-host "${u.host}" is not a valid MySQL host pattern`);
  const who = `'${u.user}'@'${u.host}'`;
  const db = `\`${database}\``;
  const steps: PlanStep[] = [{
    sql: `CREATE USER IF NOT EXISTS ${who} IDENTIFIED BY ?`,
    params: [u.password],
    display: `CREATE USER IF NOT EXISTS ${who} IDENTIFIED BY '***'`,
  }];
  for (const t of [...GW_VIEWS, ...A2B_READ_TABLES, 'gw_schema_version']) steps.push({ sql: `GRANT SELECT ON ${db}.\`${t}\` TO ${who}` });
  for (const t of GW_TABLES) steps.push({ sql: `GRANT SELECT, INSERT, UPDATE, DELETE ON ${db}.\`${t}\` TO ${who}` });
  return steps;
}

export function renderStep(s: PlanStep): string {
  if (s.display) return `${s.display};`;
  if (!s.params?.length) return `${s.sql};`;
  let i = 0;
  return `${s.sql.replace(/\?/g, () => sqlLiteral(s.params![i++]))};`;
}

function sqlLiteral(v: unknown): string {
  if (v === null || v === undefined) return 'NULL';
  if (typeof v === 'number') return String(v);
  return `'${String(v).replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

export async function runSteps(db: Db, steps: PlanStep[], onStep?: (s: PlanStep) => void): Promise<void> {
  for (const s of steps) {
    onStep?.(s);
    try {
      await db.query(s.sql, s.params ?? []);
    } catch (e) {
      throw new GwError('GW_ERR_MIGRATION', `${(e as Error).message} in: ${(s.display ?? s.sql).slice(0, 200)}`, { cause: e });
    }
  }
}

/** Applies pending migrations (no user/grants): used by tests and the demo. */
export async function migrate(db: Db): Promise<number> {
  const steps = await planMigrations(db);
  await runSteps(db, steps);
  return steps.length;
}
