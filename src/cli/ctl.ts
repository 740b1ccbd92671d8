// `a2b-gateway ctl ...`: a thin client of the management HTTP API with readable tables.
//   ctl health | ctl dispatcher list | ctl dispatcher set <id> <state> [--persist]
//   ctl reload <dispatcher|auth|credentials> | ctl dialogs list | ctl dialogs end <callId> | ctl reconcile last
// Where to connect: --url/--token, else the values handed in by the caller, else the config file (-c, A2B_CONFIG)
// and environment (A2B_MGMT_TOKEN, A2B_MGMT_PORT) through the config loader.
import { Command, CommanderError, Option } from 'commander';
import { loadConfig } from '../config/load.js';
import { describeError } from '../errors.js';

export interface CtlOptions {
  url?: string;
  token?: string;
  /** Output sinks (default: process.stdout / process.stderr). */
  out?: (text: string) => void;
  err?: (text: string) => void;
}

const STATES = ['active', 'inactive', 'probing', 'disabled'];
const RELOADS = ['dispatcher', 'auth', 'credentials'];

class CtlFailure extends Error {
  constructor(message: string, readonly exitCode: number) {
    super(message);
  }
}

interface Conn { url: string; token: string | undefined; timeoutMs: number; json: boolean }

/** Runs one ctl command. Returns the process exit code: 0 ok, 1 failed request or server down, 2 usage. */
export async function runCtl(argv: string[], opts: CtlOptions = {}): Promise<number> {
  const out = opts.out ?? ((s: string) => { process.stdout.write(s); });
  const err = opts.err ?? ((s: string) => { process.stderr.write(s); });
  let code = 0;

  const program = new Command('a2b-gateway ctl')
    .description('talk to a running gateway through its management API')
    .addOption(new Option('--url <url>', 'management API base URL (default: from mgmt.host/mgmt.port in the config)'))
    .addOption(new Option('--token <token>', 'bearer token (default: mgmt.token / A2B_MGMT_TOKEN)'))
    .addOption(new Option('-c, --config <file>', 'config file to read mgmt.host, mgmt.port and mgmt.token from (or A2B_CONFIG)'))
    .addOption(new Option('--timeout <ms>', 'request timeout in milliseconds').default('10000'))
    .option('--json', 'print the raw JSON answer')
    .exitOverride()
    .showHelpAfterError()
    .configureOutput({ writeOut: out, writeErr: err });

  const conn = (): Conn => resolveConn(program.opts(), opts);
  const run = (fn: (c: Conn) => Promise<void>) => async () => { await fn(conn()); };

  program.command('health').description('is the gateway up? (GET /health)')
    .action(run(async (c) => {
      const body = await call(c, 'GET', '/health', undefined, [200, 503]);
      if ((body as { status?: unknown }).status !== 'ok') code = 1;
      if (c.json) return printJson(out, body);
      out(keyValues(body as Record<string, unknown>));
    }));

  const disp = program.command('dispatcher').description('destinations and their states');
  disp.command('list').description('list destinations with state, active calls, probe counters')
    .action(run(async (c) => {
      const body = (await call(c, 'GET', '/dispatcher')) as { destinations?: Array<Record<string, unknown>> };
      if (c.json) return printJson(out, body);
      const rows = (body.destinations ?? []).map((d) => [
        d.id, d.setId, d.uri, d.state, d.weight, d.priority, d.activeCalls, d.selected, d.failures,
        `${d.probesOk ?? 0}/${d.probesFailed ?? 0}`, d.lastProbeStatus ?? '-', d.description,
      ]);
      out(table(['ID', 'SET', 'URI', 'STATE', 'WEIGHT', 'PRIO', 'ACTIVE', 'SELECTED', 'FAILURES', 'PROBES OK/FAIL', 'LAST PROBE', 'DESCRIPTION'], rows));
    }));
  disp.command('set').description('set a destination state (admin): active, inactive, probing or disabled')
    .argument('<id>', 'destination id (gw_dispatcher.id)')
    .argument('<state>', STATES.join(' | '))
    .option('--persist', 'also write the state to gw_dispatcher so it survives reloads and restarts')
    .action(async (id: string, state: string, o: { persist?: boolean }) => {
      if (!/^\d+$/.test(id)) throw new CtlFailure(`destination id must be a number, got "${id}"`, 2);
      if (!STATES.includes(state)) throw new CtlFailure(`state must be one of ${STATES.join(', ')}, got "${state}"`, 2);
      const c = conn();
      const body = (await call(c, 'POST', `/dispatcher/${id}/state`, { state, persist: o.persist === true })) as { destination?: Record<string, unknown> };
      if (c.json) return printJson(out, body);
      out(`destination ${id} (${String(body.destination?.uri ?? '?')}) is now ${String(body.destination?.state ?? state)}${o.persist ? ' (persisted)' : ''}\n`);
    });

  program.command('reload').description('reload dispatcher destinations, IP auth (address view) or credentials')
    .argument('<what>', RELOADS.join(' | '))
    .action(async (what: string) => {
      if (!RELOADS.includes(what)) throw new CtlFailure(`reload what? one of ${RELOADS.join(', ')}, got "${what}"`, 2);
      const c = conn();
      const body = (await call(c, 'POST', `/reload/${what}`, {})) as { result?: unknown };
      if (c.json) return printJson(out, body);
      const result = body.result && typeof body.result === 'object' ? ` ${summarise(body.result as Record<string, unknown>)}` : '';
      out(`reloaded ${what}${result}\n`);
    });

  const dlg = program.command('dialogs').description('confirmed calls');
  dlg.command('list').description('list dialogs')
    .action(run(async (c) => {
      const body = (await call(c, 'GET', '/dialogs')) as { dialogs?: Array<Record<string, unknown>> };
      if (c.json) return printJson(out, body);
      const dialogs = body.dialogs ?? [];
      if (dialogs.length === 0) { out('no dialogs\n'); return; }
      const cols = primitiveColumns(dialogs);
      out(table(cols.map((k) => k.toUpperCase()), dialogs.map((d) => cols.map((k) => d[k]))));
    }));
  dlg.command('end').description('end a dialog with BYE to both sides')
    .argument('<callId>', 'the Call-ID')
    .action(async (callId: string) => {
      const c = conn();
      const body = await call(c, 'DELETE', `/dialogs/${encodeURIComponent(callId)}`);
      if (c.json) return printJson(out, body);
      out(`ended dialog ${callId}\n`);
    });

  program.command('reconcile').description('reconciliation runs')
    .command('last').description('show the last reconciliation run')
    .action(run(async (c) => {
      const body = (await call(c, 'GET', '/reconcile/last')) as { run?: unknown };
      if (c.json) return printJson(out, body);
      out(keyValues((body.run ?? {}) as Record<string, unknown>));
    }));

  try {
    if (argv.length === 0) { err(program.helpInformation()); return 2; }
    await program.parseAsync(argv, { from: 'user' });
    return code;
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help → 0; a missing or unknown command (commander printed usage) → 2.
      return e.exitCode === 0 ? 0 : 2;
    }
    const exit = e instanceof CtlFailure ? e.exitCode : 1;
    err(`a2b-gateway ctl: ${e instanceof Error ? e.message : String(e)}\n`);
    return exit;
  }
}

function resolveConn(o: { url?: string; token?: string; config?: string; timeout: string; json?: boolean }, given: CtlOptions): Conn {
  let url = o.url ?? given.url;
  let token = o.token ?? given.token;
  if (!url || token === undefined) {
    try {
      const cfg = loadConfig(o.config ? { file: o.config } : {});
      if (!url) {
        const host = cfg.mgmt.host === '0.0.0.0' ? '127.0.0.1' : cfg.mgmt.host === '::' ? '::1' : cfg.mgmt.host;
        url = `http://${host.includes(':') ? `[${host}]` : host}:${cfg.mgmt.port}`;
      }
      token ??= cfg.mgmt.token;
    } catch (e) {
      throw new CtlFailure(`cannot read the configuration (use --url/--token): ${describeError(e).split('\n').join(' ')}`, 2);
    }
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new Error('scheme');
  } catch {
    throw new CtlFailure(`--url must be an http:// URL, got "${url}"`, 2);
  }
  const timeoutMs = Number(o.timeout);
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) throw new CtlFailure(`--timeout must be a positive number of milliseconds, got "${o.timeout}"`, 2);
  return { url: parsed.toString().replace(/\/+$/, ''), token: token || undefined, timeoutMs, json: o.json === true };
}

async function call(c: Conn, method: string, path: string, body?: unknown, okStatuses: number[] = [200]): Promise<unknown> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (c.token) headers.authorization = `Bearer ${c.token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(c.url + path, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}), signal: AbortSignal.timeout(c.timeoutMs) });
  } catch (e) {
    throw new CtlFailure(`cannot reach the management interface at ${c.url} (${networkReason(e)})`, 1);
  }
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : {};
  } catch {
    throw new CtlFailure(`${method} ${path}: HTTP ${res.status}, answer is not JSON (is ${c.url} the gateway's management interface?)`, 1);
  }
  if (!okStatuses.includes(res.status)) {
    const msg = (parsed as { error?: unknown }).error;
    const hint = res.status === 401 ? (c.token ? ' (check --token / mgmt.token)' : ' (a token is required: --token or mgmt.token / A2B_MGMT_TOKEN)') : '';
    throw new CtlFailure(`${method} ${path}: HTTP ${res.status}: ${typeof msg === 'string' ? msg : res.statusText}${hint}`, 1);
  }
  return parsed;
}

function networkReason(e: unknown): string {
  const err = e as { name?: string; cause?: { code?: string; message?: string }; message?: string };
  if (err.name === 'TimeoutError' || err.name === 'AbortError') return 'timed out';
  return err.cause?.code ?? err.cause?.message ?? err.message ?? String(e);
}

function printJson(out: (s: string) => void, body: unknown): void {
  out(JSON.stringify(body, null, 2) + '\n');
}

function cell(v: unknown): string {
  if (v === undefined || v === null) return '-';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v).replace(/[\r\n\t]/g, ' ');
}

/** Left-aligned columns separated by two spaces. */
export function table(header: string[], rows: unknown[][]): string {
  const cells = [header, ...rows.map((r) => r.map(cell))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n') + '\n';
}

function keyValues(obj: Record<string, unknown>): string {
  const keys = Object.keys(obj);
  const w = Math.max(0, ...keys.map((k) => k.length));
  return keys.map((k) => `${(k + ':').padEnd(w + 1)} ${cell(obj[k])}`).join('\n') + '\n';
}

function summarise(obj: Record<string, unknown>): string {
  return '(' + Object.entries(obj).filter(([, v]) => typeof v !== 'object' || v === null).map(([k, v]) => `${k} ${cell(v)}`).join(', ') + ')';
}

/** Columns for an unknown list of records: keys with primitive values, in first-seen order, at most 8. */
function primitiveColumns(rows: Array<Record<string, unknown>>): string[] {
  const cols: string[] = [];
  for (const r of rows) for (const [k, v] of Object.entries(r)) if ((v === null || typeof v !== 'object') && !cols.includes(k)) cols.push(k);
  return cols.slice(0, 8);
}
