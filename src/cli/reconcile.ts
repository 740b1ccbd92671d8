// `a2b-gateway reconcile --date YYYY-MM-DD | --from D --to D [--tz ZONE] [--out DIR] [--db URL] [-c FILE]`
// Reconciles A2Billing's cc_call against the gateway's and the AMI CDRs for each day, writes the run to
// gw_reconcile_run/gw_reconcile_item and report files, prints a summary. Exit: 0 done, 1 failed, 2 usage.

import { parseArgs } from 'node:util';
import { loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { withLock } from '../db/lock.js';
import { checkDb, createDb } from '../db/pool.js';
import { GwError, describeError, isGwError } from '../errors.js';
import { runReconcile, type ReconcileProgress, type ReconcileResult } from '../reconcile/job.js';
import { RECONCILE_LOCK } from '../reconcile/schedule.js';
import { CALL_CLASSES, CLASS_LABELS } from '../reconcile/types.js';
import { daysBetween, isValidDay, isValidTimeZone } from '../reconcile/window.js';

export interface ReconcileCliIo {
  out?: (text: string) => void;
  err?: (text: string) => void;
  /** Progress lines on err: 'auto' (when err is a terminal), 'always', 'never'. */
  progress?: 'auto' | 'always' | 'never';
  env?: NodeJS.ProcessEnv;
}

const USAGE = `usage: a2b-gateway reconcile (--date YYYY-MM-DD | --from YYYY-MM-DD --to YYYY-MM-DD) [options]
  --date D         billing day to reconcile (in the billing timezone)
  --from D --to D  every day of a range, inclusive (at most 366 days)
  --tz ZONE        billing timezone, IANA name (default: reconcile.timezone, UTC)
  --out DIR        report directory (default: reconcile.outputDir); --no-files writes none
  --db URL         mysql://user:password@host:port/database (default: db.url from the config)
  -c, --config F   YAML config file (or A2B_CONFIG)
  --tolerance S    duration tolerance in seconds (default: reconcile.durationToleranceSec)
  --quiet          print only errors
`;

interface Parsed {
  days: string[];
  tz: string;
  out: string | null;
  dbUrl: string;
  tolerance: number;
  margin: number;
  boxes: Config['ami']['boxes'];
  quiet: boolean;
}

const usage = (msg: string): GwError => new GwError('GW_ERR_CLI_USAGE', msg);

export function parseReconcileArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): Parsed | 'help' {
  const args = argv[0] === 'reconcile' ? argv.slice(1) : argv;
  let v;
  try {
    v = parseArgs({
      args, allowPositionals: false, strict: true,
      options: {
        date: { type: 'string' }, from: { type: 'string' }, to: { type: 'string' }, tz: { type: 'string' },
        out: { type: 'string' }, 'no-files': { type: 'boolean' }, db: { type: 'string' }, config: { type: 'string', short: 'c' },
        tolerance: { type: 'string' }, quiet: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
      },
    }).values;
  } catch (e) {
    throw usage(`${(e as Error).message.split('\n')[0]} (see --help)`);
  }
  if (v.help) return 'help';
  for (const [name, val] of [['date', v.date], ['from', v.from], ['to', v.to]] as const) {
    if (val !== undefined && !isValidDay(val)) throw usage(`--${name}: "${val}" is not a date (YYYY-MM-DD)`);
  }
  let days: string[];
  if (v.date !== undefined) {
    if (v.from !== undefined || v.to !== undefined) throw usage('--date: give either --date or --from/--to, not both');
    days = [v.date];
  } else if (v.from !== undefined || v.to !== undefined) {
    if (v.from === undefined) throw usage('--from: missing (a range needs --from and --to)');
    if (v.to === undefined) throw usage('--to: missing (a range needs --from and --to)');
    if (v.to < v.from) throw usage(`--to: ${v.to} is before --from ${v.from}`);
    days = daysBetween(v.from, v.to);
    if (days.length > 366) throw usage(`--to: the range has ${days.length} days; at most 366`);
  } else {
    throw usage('--date: missing (or --from and --to)');
  }
  const cfg = loadConfig({ file: v.config, env });
  const tz = v.tz ?? cfg.reconcile.timezone;
  if (!isValidTimeZone(tz)) throw usage(`--tz: unknown time zone "${tz}" (use an IANA name such as Europe/Paris or UTC)`);
  if (v.out !== undefined && v['no-files']) throw usage('--out: give either --out or --no-files');
  if (v.out === '') throw usage('--out: empty directory name');
  let tolerance = cfg.reconcile.durationToleranceSec;
  if (v.tolerance !== undefined) {
    if (!/^\d{1,5}$/.test(v.tolerance)) throw usage(`--tolerance: "${v.tolerance}" is not a whole number of seconds`);
    tolerance = Number(v.tolerance);
  }
  const dbUrl = v.db ?? cfg.db.url;
  if (!dbUrl) throw usage('--db: missing (give --db mysql://user:password@host:port/database, or db.url in the config / A2B_DB_URL)');
  if (!/^mysql:\/\//.test(dbUrl)) throw usage('--db: must be a mysql://user:password@host:port/database URL');
  return {
    days, tz, dbUrl, tolerance, margin: cfg.reconcile.marginSec, boxes: cfg.ami.boxes, quiet: v.quiet === true,
    out: v['no-files'] ? null : (v.out ?? cfg.reconcile.outputDir),
  };
}

const pad = (s: string, n: number): string => (s.length >= n ? s : s + ' '.repeat(n - s.length));
const lpad = (s: string, n: number): string => (s.length >= n ? s : ' '.repeat(n - s.length) + s);

/** The terminal summary of one run. */
export function formatSummary(r: ReconcileResult): string {
  const s = r.summary;
  const lines = [
    `Reconciliation ${s.day} (${s.timezone}): window ${s.windowStart} .. ${s.windowEnd} UTC, tolerance ${s.toleranceSec}s`,
    `  read gw_cdr ${s.sources.gwCdr} · gw_ami_cdr ${s.sources.amiCdr} · cc_call ${s.sources.ccCall} rows in ${(s.durationMs / 1000).toFixed(1)} s`,
    `  ${pad('class', 28)}${lpad('calls', 10)}${lpad('share', 9)}${lpad('at risk', 14)}`,
  ];
  for (const c of CALL_CLASSES) {
    const t = s.classes[c];
    const share = s.calls ? `${((100 * t.count) / s.calls).toFixed(2)}%` : '-';
    lines.push(`  ${pad(CLASS_LABELS[c], 28)}${lpad(String(t.count), 10)}${lpad(share, 9)}${lpad(t.amount.toFixed(2), 14)}`);
  }
  lines.push(`  ${pad('total', 28)}${lpad(String(s.calls), 10)}${lpad('', 9)}${lpad(s.amountAtRisk.toFixed(2), 14)}`);
  if (s.accounts.length) {
    lines.push('  accounts most at risk: ' + s.accounts.slice(0, 5).map((a) => `${a.account || '(none)'} ${a.amount.toFixed(2)} (${a.count})`).join(' · '));
  }
  for (const g of s.amiGaps) lines.push(`  AMI gap: ${g.box} ${g.from} .. ${g.to} UTC (${g.seconds} s)`);
  lines.push(`  run ${r.runId} stored${r.files ? `; report ${r.files.html} (+ .csv, .json)` : ''}`);
  return lines.join('\n') + '\n';
}

function progressLine(p: ReconcileProgress): string {
  const rows = p.read.gw + p.read.ami + p.read.cc;
  return `  ${(100 * p.fraction).toFixed(0)}%: ${rows} rows, ${p.calls} calls, ${(p.elapsedMs / 1000).toFixed(1)} s`;
}

export async function runReconcileCli(argv: string[], io: ReconcileCliIo = {}): Promise<number> {
  const out = io.out ?? ((s: string) => { process.stdout.write(s); });
  const err = io.err ?? ((s: string) => { process.stderr.write(s); });
  let p: Parsed;
  try {
    const r = parseReconcileArgs(argv, io.env ?? process.env);
    if (r === 'help') { out(USAGE); return 0; }
    p = r;
  } catch (e) {
    err(`a2b-gateway reconcile: ${describeError(e)}\n`);
    return isGwError(e, 'GW_ERR_CLI_USAGE') || isGwError(e, 'GW_ERR_CONFIG_INVALID') ? 2 : 1;
  }
  const tty = io.progress === 'always' || (io.progress !== 'never' && !io.out && process.stderr.isTTY === true);
  const db = createDb({ url: p.dbUrl, poolSize: 6 });
  let failed = 0;
  try {
    await checkDb(db, p.dbUrl);
    for (const day of p.days) {
      let last = 0;
      try {
        const r = await withLock(db, RECONCILE_LOCK, 5, () => runReconcile({
          db, day, timezone: p.tz, toleranceSec: p.tolerance, outputDir: p.out, marginSec: p.margin, boxes: p.boxes,
          onProgress: (pr) => {
            if (!tty || p.quiet || pr.elapsedMs - last < 1000) return;
            last = pr.elapsedMs;
            err(`${progressLine(pr)}\n`);
          },
        }));
        if (!p.quiet) out(formatSummary(r));
      } catch (e) {
        failed++;
        const why = isGwError(e, 'GW_ERR_LOCK_BUSY') ? 'another reconciliation is running (lock a2b-gateway:reconcile); try again later' : describeError(e);
        err(`a2b-gateway reconcile: ${day}: ${why}\n`);
      }
    }
  } catch (e) {
    err(`a2b-gateway reconcile: ${describeError(e)}\n`);
    return 1;
  } finally {
    await db.end().catch(() => undefined);
  }
  return failed ? 1 : 0;
}
