import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** ../shared/a2billing beside the project root: the original A2Billing schema, when present. */
export const SHARED_A2B = join(import.meta.dirname, '..', '..', '..', 'shared', 'a2billing');
export const haveRealSchema = existsSync(join(SHARED_A2B, 'a2billing-schema-v1.4.0.sql'));

/** Loads base 1.4.0 + every update (sort -V order) with the mariadb client, as A2Billing's README says. */
export function loadRealA2Billing(rootUrl: string, database: string): void {
  const files = ['a2billing-schema-v1.4.0.sql', ...readdirSync(SHARED_A2B).filter((f) => f.startsWith('UPDATE-')).sort((a, b) => a.localeCompare(b, undefined, { numeric: true }))];
  const sql = "SET SESSION sql_mode='';\n" + files.map((f) => readFileSync(join(SHARED_A2B, f), 'utf8')).join('\n;\n');
  const u = new URL(rootUrl);
  const r = spawnSync('mariadb', ['--no-defaults', '-h', u.hostname, '-P', u.port || '3306', '-u', decodeURIComponent(u.username) || 'root', ...(u.password ? [`-p${decodeURIComponent(u.password)}`] : []), database], { input: sql, encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`loading the real A2Billing schema failed: ${r.stderr}`);
}
