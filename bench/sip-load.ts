// SIP load benchmark: full calls through (a) nothing, (b) the gateway with IP auth, (c) the gateway with
// digest, (d) Kamailio 5.6 doing the same job, in one run on one machine. Finds the highest rate with zero
// failed calls by ramping, and records CPU ms per call and memory of each proxy.
//   npx tsx bench/sip-load.ts [--quick] [--scenarios a,b,c,d] [--out bench/out/sip-load.json]
//     [--rates R1,R2 --step-sec S] [--half-rate R] [--hold-sec S] [--gw-main OTHER/dist/src/cli/main.js] [--gw-config JSON]
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { stringify as toYaml } from 'yaml';
import { migrate, planGrants, runSteps, splitSql } from '../src/db/migrate.js';
import { createDb, type Db } from '../src/db/pool.js';
import { loadA2BillingFixture } from '../src/devdb/fixture.js';
import { freePort, startPrivateMariaDb, type PrivateMariaDb } from '../src/devdb/private-mariadb.js';
import { SEED, seedA2Billing } from '../src/devdb/seed.js';
import { startCallee, type Callee } from '../src/loadgen/callee.js';
import { Caller, type StepResult } from '../src/loadgen/caller.js';
import { cpuMs, cpuSplitMs, pssMb } from './procstat.js';
import { captureLoopback, proxyHold, tcpdumpAvailable, type HoldStats } from './proxy-hold.js';

// The repository root, from bench/ (tsx) or dist/bench/ (built, npm run bench).
const ROOT = ((): string => {
  let d = import.meta.dirname;
  while (!existsSync(join(d, 'package.json'))) {
    const up = dirname(d);
    if (up === d) return join(import.meta.dirname, '..');
    d = up;
  }
  return d;
})();

export type StepFigures = StepResult & { cpuMsPerCall?: number; userMsPerCall?: number; sysMsPerCall?: number; pssMb?: number };

export interface ScenarioResult {
  name: string;
  label: string;
  best: StepFigures | undefined;
  steps: StepFigures[];
  halfRate?: StepResult;
  /** Setup latency added by the proxy at half rate, from packet timestamps (tcpdump on lo). */
  halfRateHold?: HoldStats & { dropped: number };
  extra?: Record<string, unknown>;
}

interface Env {
  quick: boolean;
  /** Override of the ramp's rates (profiling a fixed load). */
  rates?: number[];
  stepSec?: number;
  /** The latency step's rate (default: half the best clean rate; with --rates, none unless given). */
  halfRate?: number;
  /** How long each call stays up (default 1 s); long holds build up concurrent calls (memory per call). */
  holdSec?: number;
  /** Idle seconds before the ramp (measures the gateway's fixed CPU cost per second). */
  idleSec?: number;
  /** The gateway's entry point (default: this checkout's dist/src/cli/main.js); another build to compare. */
  gwMain?: string;
  /** Deep-merged over the gateway's bench config (experiments: `{"acc":{"fsync":"none"}}`). */
  gwConfig?: Record<string, unknown>;
  /** Extra node flags for the gateway process (e.g. --cpu-prof --cpu-prof-dir=DIR). */
  gwNodeArgs: string[];
  db: Db;
  dbUrl: string;
  rootUrl: string;
  callees: Callee[];
  tmp: string;
  /** tcpdump is installed: the half-rate step also measures the latency the proxy adds. */
  capture: boolean;
}

const log = (s: string): void => { process.stderr.write(`[bench] ${s}\n`); };

async function waitPort(proto: 'udp' | 'tcp', port: number, ms = 15000): Promise<void> {
  const t = Date.now();
  const net = await import('node:net');
  while (Date.now() - t < ms) {
    const ok = await new Promise<boolean>((res) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => { s.destroy(); res(true); });
      s.on('error', () => res(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`nothing listening on ${proto}/${port} after ${ms} ms`);
}

/** Ramps the rate until a step fails or cannot keep up; returns every step and the best clean one. */
async function ramp(name: string, label: string, mk: () => Promise<Caller>, pid: number | undefined, env: Env, proxyPort?: number): Promise<ScenarioResult> {
  // Steps of 200–250 calls/s up to 1000 (where both proxies' limits with accounting lie), coarser above.
  const rates = env.rates ?? (env.quick ? [200, 400, 600, 800, 1000, 1250, 1500, 2000, 3000] : [250, 500, 750, 1000, 1250, 1500, 2000, 2500, 3000, 3500, 4000, 5000, 6000]);
  const stepSec = env.stepSec ?? (env.quick ? 3 : 6);
  const steps: ScenarioResult['steps'] = [];
  let best: ScenarioResult['best'];
  const caller = await mk();
  try {
    // Warm-up, not counted: a fresh Node process runs its first thousand calls in the interpreter and compiles
    // meanwhile (JIT), and every proxy gets its caches and sockets warm. Same for the gateway and Kamailio.
    if (!env.rates) {
      const w = await caller.runStep(100, env.quick ? 3 : 5);
      log(`${name} warm-up 100/s: ${w.completed}/${w.attempted} ok, p99 ${w.setupMs.p99.toFixed(1)} ms`);
      await new Promise((res) => setTimeout(res, 1000));
    }
    if (env.idleSec && pid) {
      const c0 = cpuMs(pid);
      await new Promise((res) => setTimeout(res, env.idleSec! * 1000));
      log(`${name} idle: ${((cpuMs(pid) - c0) / env.idleSec).toFixed(1)} cpu-ms per second`);
    }
    for (const rate of rates) {
      const c0 = pid ? cpuSplitMs(pid) : { user: 0, sys: 0 };
      const r = await caller.runStep(rate, stepSec);
      const c1 = pid ? cpuSplitMs(pid) : c0;
      const per = (ms: number): number => ms / Math.max(1, r.completed);
      const step: StepFigures = { ...r, ...(pid ? { cpuMsPerCall: per(c1.user + c1.sys - c0.user - c0.sys), userMsPerCall: per(c1.user - c0.user), sysMsPerCall: per(c1.sys - c0.sys), pssMb: pssMb(pid) } : {}) };
      steps.push(step);
      log(`${name} ${rate}/s → ${r.completed}/${r.attempted} ok, ${r.failed} failed ${JSON.stringify(r.failures)}, p99 ${r.setupMs.p99.toFixed(1)} ms${step.cpuMsPerCall !== undefined ? `, ${step.cpuMsPerCall.toFixed(3)} cpu-ms/call (user ${step.userMsPerCall!.toFixed(3)}, sys ${step.sysMsPerCall!.toFixed(3)}), ${step.pssMb} MB` : ''}`);
      // Sustained = zero failures, and the generator kept the pace (setup p99 under a second).
      if (r.failed > 0 || r.setupMs.p99 > 1000) break;
      best = step;
      await new Promise((res) => setTimeout(res, 500));
    }
    let halfRate: StepResult | undefined;
    let halfRateHold: ScenarioResult['halfRateHold'];
    const half = env.halfRate ?? (best && !env.rates ? Math.max(50, Math.round(best.rate / 2)) : undefined);
    if (half) {
      // The step that failed left the proxy draining a backlog (retransmissions, lingering transactions): let it
      // settle, or the latency at half rate measures the previous overload (seen: p99 292 ms after a 3000/s step).
      await new Promise((res) => setTimeout(res, 8000));
      let cap: Awaited<ReturnType<typeof captureLoopback>> | undefined;
      if (proxyPort && env.capture) {
        // No capture (e.g. not allowed to open lo as this user) costs the added-latency figure, not the run.
        cap = await captureLoopback(proxyPort, join(env.tmp, `${name}.pcap`)).catch((e: unknown) => {
          log(`${name}: no packet capture, the latency added by the proxy is not measured: ${e instanceof Error ? e.message : String(e)}`);
          return undefined;
        });
      }
      halfRate = await caller.runStep(half, stepSec);
      log(`${name} half rate ${halfRate.rate}/s: p50 ${halfRate.setupMs.p50.toFixed(2)} p95 ${halfRate.setupMs.p95.toFixed(2)} p99 ${halfRate.setupMs.p99.toFixed(2)} ms`);
      if (cap) {
        try {
          const { packets, dropped } = await cap.stop();
          halfRateHold = { ...proxyHold(packets, proxyPort!), dropped };
          log(`${name} half rate, added by the proxy (${halfRateHold.calls} calls from ${packets.length} packets, ${dropped} dropped): p50 ${halfRateHold.p50.toFixed(2)} p95 ${halfRateHold.p95.toFixed(2)} p99 ${halfRateHold.p99.toFixed(2)} ms`);
        } catch (e) {
          log(`${name}: packet capture unreadable, the latency added by the proxy is not measured: ${e instanceof Error ? e.message : String(e)}`);
        }
      }
    }
    return { name, label, best, steps, halfRate, halfRateHold };
  } finally {
    await caller.close();
  }
}

function callerFor(target: { host: string; port: number }, opts: { localHost: string; auth?: boolean; holdSec?: number }): () => Promise<Caller> {
  const holdMs = (opts.holdSec ?? 1) * 1000;
  return async () => {
    const c = new Caller({
      target, proto: 'udp', localHost: opts.localHost,
      fromUser: opts.auth ? SEED.cards.alice.sip.name : 'bench', dialled: '15551234567',
      auth: opts.auth ? { user: SEED.cards.alice.sip.name, password: SEED.cards.alice.sip.secret } : undefined,
      holdMs, callTimeoutMs: holdMs + 7000,
    });
    await c.start();
    return c;
  };
}

async function countRows(db: Db, sql: string): Promise<number> {
  const [r] = await db.query(sql);
  return Number((r as Array<{ n: number }>)[0]?.n ?? 0);
}

function merge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const cur = out[k];
    out[k] = v && typeof v === 'object' && !Array.isArray(v) && cur && typeof cur === 'object' && !Array.isArray(cur)
      ? merge(cur as Record<string, unknown>, v as Record<string, unknown>) : v;
  }
  return out;
}

async function withGateway<T>(env: Env, fn: (port: number, pid: number) => Promise<T>): Promise<T> {
  const port = await freePort();
  const cfgFile = join(env.tmp, `gateway-${port}.yaml`);
  writeFileSync(cfgFile, toYaml(merge({
    log: { level: 'warn', format: 'json' },
    db: { url: env.dbUrl },
    // lingerMs: finished transactions stay 5 s, as Kamailio's (default tm wt_timer) do in the same bench
    sip: { listen: [{ proto: 'udp', host: '127.0.0.1', port }, { proto: 'tcp', host: '127.0.0.1', port }], lingerMs: 5000 },
    auth: { nonceSecret: 'bench-nonce-secret-0123456789' },
    abuse: { whitelist: ['127.0.0.0/8'] },
    billing: { creditCheck: false },
    acc: { journalDir: join(env.tmp, `journal-${port}`) },
    dialog: { stateDir: join(env.tmp, `dialogs-${port}`) },
    reconcile: { enabled: false },
    mgmt: { enabled: false },
  }, env.gwConfig ?? {})));
  // A2B_BENCH_GW_STDOUT=FILE keeps the gateway's stdout (e.g. with --gw-node-args=--trace-gc).
  const out = process.env.A2B_BENCH_GW_STDOUT ? openSync(process.env.A2B_BENCH_GW_STDOUT, 'a') : 'ignore';
  const child = spawn(process.execPath, [...env.gwNodeArgs, env.gwMain ?? join(ROOT, 'dist/src/cli/main.js'), 'start', '--config', cfgFile], { stdio: ['ignore', out, 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-4000); });
  try {
    await waitPort('tcp', port);
    await new Promise((r) => setTimeout(r, 500));
    return await fn(port, child.pid!);
  } catch (e) {
    log(`gateway stderr: ${stderr}`);
    throw e;
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
}

async function withKamailio<T>(env: Env, o: { children: number; acc: boolean; async: boolean }, fn: (port: number, pid: number) => Promise<T>): Promise<T> {
  const port = await freePort();
  const dir = mkdtempSync(join(env.tmp, 'kam-'));
  const dslist = join(dir, 'dispatcher.list');
  writeFileSync(dslist, env.callees.map((c) => `1 sip:127.0.0.1:${c.endpoint.port} 0 0`).join('\n') + '\n');
  const kamDb = new URL(env.rootUrl);
  kamDb.pathname = '/kamailio';
  const defines = [o.acc ? '#!define WITH_ACC' : '', o.async ? '#!define WITH_ASYNC' : ''].join('\n');
  const cfg = readFileSync(join(ROOT, 'bench/kamailio/kamailio.cfg'), 'utf8')
    .replace('@DEFINES@', defines).replaceAll('@CHILDREN@', String(o.children)).replaceAll('@PORT@', String(port))
    .replaceAll('@DBURL@', kamDb.toString().replace(/\/$/, '')).replaceAll('@DSLIST@', dslist);
  const cfgFile = join(dir, 'kamailio.cfg');
  writeFileSync(cfgFile, cfg);
  const check = spawnSync('kamailio', ['-c', '-f', cfgFile], { encoding: 'utf8' });
  if (check.status !== 0) throw new Error(`kamailio config check failed: ${check.stderr.split('\n').filter((l) => /ERROR|error/.test(l)).slice(0, 5).join(' | ')}`);
  // tlsf: Kamailio's fast allocator (Debian's default build allocator costs it about half its speed).
  const child: ChildProcess = spawn('kamailio', ['-f', cfgFile, '-DD', '-E', '-x', 'tlsf', '-m', '512', '-M', '32', '-w', dir], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-4000); });
  try {
    await waitPort('tcp', port);
    await new Promise((r) => setTimeout(r, 1000));
    return await fn(port, child.pid!);
  } catch (e) {
    log(`kamailio stderr: ${stderr}`);
    throw e;
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
}

async function setup(quick: boolean, o: Pick<Env, 'rates' | 'stepSec' | 'halfRate' | 'holdSec' | 'gwNodeArgs' | 'idleSec' | 'gwMain' | 'gwConfig'>): Promise<{ env: Env; server?: PrivateMariaDb }> {
  let server: PrivateMariaDb | undefined;
  let rootUrl = process.env.A2B_BENCH_DB_URL;
  if (!rootUrl) {
    server = await startPrivateMariaDb({ log });
    rootUrl = server.rootUrl;
  }
  const admin = createDb({ url: rootUrl, poolSize: 1 });
  await admin.query('DROP DATABASE IF EXISTS a2b_bench');
  await admin.query('DROP DATABASE IF EXISTS kamailio');
  await admin.query('CREATE DATABASE a2b_bench');
  await admin.query('CREATE DATABASE kamailio');
  await admin.end();
  const a2bUrl = new URL(rootUrl);
  a2bUrl.pathname = '/a2b_bench';
  const db = createDb({ url: a2bUrl.toString(), poolSize: 4 });
  await loadA2BillingFixture(db);
  await migrate(db);
  await seedA2Billing(db);
  await runSteps(db, planGrants('a2b_bench', { user: 'a2bgw_bench', host: '%', password: 'bench-pw' }));
  const kamUrl = new URL(rootUrl);
  kamUrl.pathname = '/kamailio';
  const kdb = createDb({ url: kamUrl.toString(), poolSize: 1 });
  for (const s of splitSql(readFileSync(join(ROOT, 'bench/kamailio/kamailio-db.sql'), 'utf8').replaceAll('@A2BDB@', 'a2b_bench'))) await kdb.query(s);
  await kdb.end();
  const callees = [await startCallee({ host: '127.0.0.1', port: 0, proto: 'udp' }), await startCallee({ host: '127.0.0.1', port: 0, proto: 'udp' })];
  for (const c of callees) await db.query('INSERT INTO gw_dispatcher (setid, destination, description) VALUES (1, ?, ?)', [`sip:127.0.0.1:${c.endpoint.port}`, 'bench callee']);
  const gwUrl = new URL(rootUrl);
  gwUrl.username = 'a2bgw_bench';
  gwUrl.password = 'bench-pw';
  gwUrl.pathname = '/a2b_bench';
  const tmp = mkdtempSync(join(tmpdir(), 'a2b-bench-'));
  const capture = tcpdumpAvailable();
  if (!capture) log('tcpdump not found: the latency added by the proxy is not measured (apt-get install tcpdump)');
  return { env: { quick, ...o, db, dbUrl: gwUrl.toString(), rootUrl, callees, tmp, capture }, server };
}

export interface SipLoadOptions {
  quick: boolean;
  scenarios: string[];
  rates?: number[];
  stepSec?: number;
  halfRate?: number;
  holdSec?: number;
  gwNodeArgs?: string[];
  idleSec?: number;
  gwMain?: string;
  gwConfig?: Record<string, unknown>;
}

export async function runSipLoad(opts: SipLoadOptions): Promise<ScenarioResult[]> {
  const { env, server } = await setup(opts.quick, { rates: opts.rates, stepSec: opts.stepSec, halfRate: opts.halfRate, holdSec: opts.holdSec, gwNodeArgs: opts.gwNodeArgs ?? [], idleSec: opts.idleSec, gwMain: opts.gwMain, gwConfig: opts.gwConfig });
  const results: ScenarioResult[] = [];
  const want = (s: string): boolean => opts.scenarios.includes(s);
  try {
    const direct = { host: '127.0.0.1', port: env.callees[0]!.endpoint.port };
    if (want('a')) results.push(await ramp('a', 'caller → callee, no proxy (generator ceiling)', callerFor(direct, { localHost: '127.0.0.1', holdSec: env.holdSec }), undefined, env));
    if (want('b') || want('c')) {
      await withGateway(env, async (port, pid) => {
        const target = { host: '127.0.0.1', port };
        const before = await countRows(env.db, 'SELECT COUNT(*) n FROM gw_cdr');
        if (want('b')) results.push(await ramp('b', 'gateway: IP auth, dispatcher over 2 callees, CDRs to MariaDB', callerFor(target, { localHost: '127.0.0.2', holdSec: env.holdSec }), pid, env, port));
        if (want('c')) results.push(await ramp('c', 'gateway: digest auth (challenge + retry every call), CDRs', callerFor(target, { localHost: '127.0.0.1', auth: true, holdSec: env.holdSec }), pid, env, port));
        await new Promise((r) => setTimeout(r, 1500));
        const cdrs = (await countRows(env.db, 'SELECT COUNT(*) n FROM gw_cdr')) - before;
        (results.at(-1)!.extra ??= {}).gatewayCdrRows = cdrs;
      });
    }
    if (want('d')) {
      const childrenList = opts.quick ? [4] : [2, 4, 8];
      for (const acc of [false, true]) {
        for (const children of childrenList) {
          for (const auth of ['ip', 'digest'] as const) {
            await withKamailio(env, { children, acc, async: acc }, async (port, pid) => {
              const target = { host: '127.0.0.1', port };
              const name = `d-${auth}-${acc ? 'acc' : 'noacc'}-c${children}`;
              const r = await ramp(name, `Kamailio 5.6 (${children} children, tlsf${acc ? ', acc+dialog CDRs, async inserts' : ', no accounting'}), ${auth === 'ip' ? 'IP auth' : 'digest auth'}`,
                callerFor(target, { localHost: auth === 'ip' ? '127.0.0.2' : '127.0.0.1', auth: auth === 'digest', holdSec: env.holdSec }), pid, env, port);
              r.extra = { children, acc, auth };
              results.push(r);
            });
          }
        }
      }
    }
  } finally {
    for (const c of env.callees) await c.close();
    await env.db.end();
    await server?.stop();
  }
  return results;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({ options: {
    quick: { type: 'boolean' }, scenarios: { type: 'string', default: 'a,b,c,d' }, out: { type: 'string', default: join(ROOT, 'bench/out/sip-load.json') },
    rates: { type: 'string' }, 'step-sec': { type: 'string' }, 'half-rate': { type: 'string' }, 'hold-sec': { type: 'string' }, 'gw-node-args': { type: 'string' }, 'idle-sec': { type: 'string' }, 'gw-main': { type: 'string' }, 'gw-config': { type: 'string' },
  } });
  const results = await runSipLoad({
    quick: values.quick === true, scenarios: values.scenarios!.split(','),
    rates: values.rates ? values.rates.split(',').map(Number) : undefined,
    stepSec: values['step-sec'] ? Number(values['step-sec']) : undefined,
    halfRate: values['half-rate'] ? Number(values['half-rate']) : undefined,
    holdSec: values['hold-sec'] ? Number(values['hold-sec']) : undefined,
    gwMain: values['gw-main'],
    gwConfig: values['gw-config'] ? JSON.parse(values['gw-config']) as Record<string, unknown> : undefined,
    idleSec: values['idle-sec'] ? Number(values['idle-sec']) : undefined,
    gwNodeArgs: values['gw-node-args'] ? values['gw-node-args'].split(' ').filter(Boolean) : [],
  });
  mkdirSync(join(values.out!, '..'), { recursive: true });
  writeFileSync(values.out!, JSON.stringify(results, null, 2));
  for (const r of results) log(`${r.name}: best ${r.best ? `${r.best.rate}/s (${r.best.cps.toFixed(0)} cps, p99 ${r.best.setupMs.p99.toFixed(1)} ms${r.best.cpuMsPerCall !== undefined ? `, ${r.best.cpuMsPerCall.toFixed(3)} cpu-ms/call, ${r.best.pssMb} MB` : ''})` : 'none'}`);
}
