// `a2b-gateway backfill --box NAME (--csv FILE | --from TIME --to TIME) [--tz ZONE] [--db URL] [-c FILE]`
// Fills an AMI gap in gw_ami_cdr from a box's durable CDRs: an imported Master.csv, or the box's `cdr` table
// (ami.boxes[].cdrDbUrl). Idempotent: rerunning it adds nothing. Exit: 0 done, 1 failed, 2 usage.
import { parseArgs } from 'node:util';
import { backfillCsv, backfillFromCdrTable, type BackfillResult } from '../ami/backfill.js';
import { assertTimeZone } from '../ami/time.js';
import { loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { checkDb, createDb } from '../db/pool.js';
import { GwError, describeError, isGwError } from '../errors.js';

export interface BackfillCliIo {
  out?: (text: string) => void;
  err?: (text: string) => void;
  env?: NodeJS.ProcessEnv;
}

const USAGE = `usage: a2b-gateway backfill --box NAME (--csv FILE | --from TIME --to TIME) [options]
  --box NAME       the Asterisk box (a name from ami.boxes, or any name for --csv with --tz)
  --csv FILE       import a Master.csv (cdr_csv) written by that box
  --from/--to T    read the box's cdr table (ami.boxes[].cdrDbUrl) for CDRs that started in [from, to);
                   T is an ISO time with a zone (2026-11-22T03:00:00Z) or a day (YYYY-MM-DD, UTC midnight)
  --tz ZONE        the box's clock zone (default: ami.boxes[].timezone, else UTC)
  --db URL         gateway database, mysql://user:password@host:port/database (default: db.url)
  -c, --config F   YAML config file (or A2B_CONFIG)
`;

export interface BackfillArgs {
  box: string;
  csv?: string;
  fromMs?: number;
  toMs?: number;
  tz: string;
  dbUrl: string;
  boxConfig?: Config['ami']['boxes'][number];
}

const usage = (msg: string): GwError => new GwError('GW_ERR_CLI_USAGE', msg);

function parseTime(v: string, flag: string): number {
  const iso = /^\d{4}-\d{2}-\d{2}$/.test(v) ? `${v}T00:00:00Z` : v;
  const ms = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(iso) ? Date.parse(iso) : NaN;
  if (Number.isNaN(ms)) throw usage(`${flag} "${v}" is not a day (YYYY-MM-DD) or an ISO time with a zone`);
  return ms;
}

export function parseBackfillArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): BackfillArgs | 'help' {
  const args = argv[0] === 'backfill' ? argv.slice(1) : argv;
  let v;
  try {
    v = parseArgs({
      args, allowPositionals: false, strict: true,
      options: {
        box: { type: 'string' }, csv: { type: 'string' }, from: { type: 'string' }, to: { type: 'string' },
        tz: { type: 'string' }, db: { type: 'string' }, config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' },
      },
    }).values;
  } catch (e) {
    throw usage(describeError(e));
  }
  if (v.help) return 'help';
  if (!v.box) throw usage('--box NAME is required');
  if (v.csv !== undefined && (v.from !== undefined || v.to !== undefined)) throw usage('give either --csv or --from/--to, not both');
  if (v.csv === undefined && (v.from === undefined || v.to === undefined)) throw usage('give --csv FILE, or --from and --to');
  const config = loadConfig({ file: v.config, env });
  const boxConfig = config.ami.boxes.find((b) => b.name === v.box);
  const tz = v.tz ?? boxConfig?.timezone ?? 'UTC';
  try {
    assertTimeZone(tz);
  } catch {
    throw usage(`--tz "${tz}" is not a time zone this system knows (IANA name, e.g. Europe/Paris)`);
  }
  const dbUrl = v.db ?? config.db.url;
  if (!dbUrl) throw usage('no gateway database: give --db URL or set db.url in the config');
  const out: BackfillArgs = { box: v.box, tz, dbUrl, boxConfig };
  if (v.csv !== undefined) {
    out.csv = v.csv;
  } else {
    if (!boxConfig) throw usage(`box "${v.box}" is not in ami.boxes (needed for its cdrDbUrl)`);
    if (!boxConfig.cdrDbUrl) throw usage(`box "${v.box}" has no cdrDbUrl: set ami.boxes[].cdrDbUrl, or import its Master.csv with --csv`);
    out.fromMs = parseTime(v.from!, '--from');
    out.toMs = parseTime(v.to!, '--to');
    if (out.toMs <= out.fromMs) throw usage('--to must be after --from');
  }
  return out;
}

export function formatBackfill(r: BackfillResult, source: string): string {
  let s = `backfill ${r.box} from ${source}: ${r.read} CDRs read, ${r.inserted} added, ${r.duplicates} already stored, ${r.alreadyFromAmi} already received over AMI`;
  if (r.errors.length > 0) {
    s += `, ${r.errors.length} unreadable\n`;
    for (const e of r.errors.slice(0, 20)) s += `  ${e.line > 0 ? `line ${e.line}: ` : ''}${e.message}\n`;
    if (r.errors.length > 20) s += `  ... ${r.errors.length - 20} more\n`;
    return s;
  }
  return `${s}\n`;
}

/** Runs the backfill; the lead wires it as the `backfill` subcommand. Returns the exit code. */
export async function runBackfillCli(argv: string[], io: BackfillCliIo = {}): Promise<number> {
  const out = io.out ?? ((s: string) => { process.stdout.write(s); });
  const err = io.err ?? ((s: string) => { process.stderr.write(s); });
  let a: BackfillArgs;
  try {
    const r = parseBackfillArgs(argv, io.env ?? process.env);
    if (r === 'help') { out(USAGE); return 0; }
    a = r;
  } catch (e) {
    err(`a2b-gateway backfill: ${describeError(e)}\n`);
    return isGwError(e, 'GW_ERR_CLI_USAGE') || isGwError(e, 'GW_ERR_CONFIG_INVALID') ? 2 : 1;
  }
  const db = createDb({ url: a.dbUrl, poolSize: 2 });
  const source = a.csv === undefined ? createDb({ url: a.boxConfig!.cdrDbUrl!, poolSize: 1 }) : undefined;
  try {
    await checkDb(db, a.dbUrl);
    const r = a.csv !== undefined
      ? await backfillCsv({ db, box: a.box, file: a.csv, timezone: a.tz })
      : await backfillFromCdrTable({ db, source: source!, box: a.box, table: a.boxConfig!.cdrTable, timezone: a.tz, fromMs: a.fromMs!, toMs: a.toMs! });
    out(formatBackfill(r, a.csv ?? `${a.boxConfig!.cdrTable} table`));
    return r.errors.length > 0 && r.read === 0 ? 1 : 0;
  } catch (e) {
    err(`a2b-gateway backfill: ${describeError(e)}\n`);
    return 1;
  } finally {
    await db.end().catch(() => undefined);
    await source?.end().catch(() => undefined);
  }
}
