// `a2b-gateway provision --db mysql://admin@host/a2billing [--dry-run]`: creates the gateway's tables,
// the views over A2Billing and a least-privilege user. Idempotent; --dry-run prints exactly what it would run.
import { GwError } from '../errors.js';
import { planGrants, planMigrations, renderStep, runSteps, type PlanStep } from '../db/migrate.js';
import { checkDb, createDb, parseDbUrl } from '../db/pool.js';
import { A2B_TABLES_PRESENT, USER_EXISTS } from '../db/queries/migrate.js';

export interface ProvisionOptions {
  db: string;
  dryRun?: boolean;
  gatewayUser?: string;
  gatewayHost?: string;
  /** When absent, the user and grants are skipped (and said so). */
  gatewayPassword?: string;
  out?: (line: string) => void;
}

const REQUIRED_A2B = ['cc_card', 'cc_sip_buddies', 'cc_call', 'cc_tariffgroup', 'cc_tariffgroup_plan', 'cc_tariffplan', 'cc_ratecard'];

export async function provision(opts: ProvisionOptions): Promise<{ steps: PlanStep[] }> {
  const out = opts.out ?? ((l: string) => process.stdout.write(`${l}\n`));
  const { database } = parseDbUrl(opts.db);
  if (!database) throw new GwError('GW_ERR_DB_URL', 'the --db URL must name the A2Billing database, e.g. mysql://root:pw@127.0.0.1:3306/a2billing');
  const db = createDb({ url: opts.db, poolSize: 1 });
  try {
    await checkDb(db, opts.db);
    const [present] = await db.query(A2B_TABLES_PRESENT, [REQUIRED_A2B]);
    const have = new Set((present as Array<{ t: string }>).map((r) => r.t));
    const missing = REQUIRED_A2B.filter((t) => !have.has(t));
    if (missing.length) throw new GwError('GW_ERR_A2B_SCHEMA', `${database} lacks ${missing.join(', ')}`);

    const steps = await planMigrations(db);
    if (opts.gatewayPassword !== undefined) {
      const user = opts.gatewayUser ?? 'a2bgw';
      const host = opts.gatewayHost ?? 'localhost';
      const grants = planGrants(database, { user, host, password: opts.gatewayPassword });
      const [exists] = await db.query(USER_EXISTS, [user, host]);
      // The password of an existing user is left alone: running provision twice changes nothing.
      steps.push(...(Number((exists as Array<{ n: number }>)[0]?.n) > 0 ? grants.slice(1) : grants));
    }
    if (opts.dryRun) {
      for (const s of steps) out(renderStep(s));
      if (opts.gatewayPassword === undefined) out('-- no --gateway-password (or A2B_GW_PASSWORD): the gateway user and its grants are not created');
      return { steps };
    }
    const migrationSteps = steps.filter((s) => !/^(CREATE USER|GRANT)/.test(s.sql)).length;
    await runSteps(db, steps);
    out(migrationSteps ? `provisioned ${database}: ${migrationSteps} schema statements applied` : `${database} is up to date: no schema change`);
    if (opts.gatewayPassword !== undefined) out(`gateway user '${opts.gatewayUser ?? 'a2bgw'}'@'${opts.gatewayHost ?? 'localhost'}': SELECT on the views and A2Billing read tables, read-write on gw_* tables`);
    else out('gateway user skipped: pass --gateway-password (or A2B_GW_PASSWORD) to create it');
    return { steps };
  } finally {
    await db.end().catch(() => undefined);
  }
}
