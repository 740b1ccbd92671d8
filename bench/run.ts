// `npm run bench [-- --quick] [-- --only sip,parser,auth,cdr,reconcile]`: every benchmark of the project in one
// run, figures written into bench/RESULTS.md between the generated-section markers (the hand-written analysis
// around them is kept) and the raw output into bench/out/.
//   SIP load (bench/sip-load.ts): gateway (IP auth, digest) vs Kamailio 5.6, ramped to the best clean rate.
//   parser micro-bench (bench/sip-parser.ts), auth cost (bench/auth-cost.ts), CDR write (bench/cdr-*.ts),
//   reconciliation of a day of calls (bench/reconcile-*.ts; --quick: 100 000 calls instead of 1 000 000).
// Each sub-benchmark other than the SIP load runs in its own process (node --import tsx), so one failing does not
// stop the others; its failure is written into the results.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { runSipLoad, type ScenarioResult } from './sip-load.js';

/** The repository root (this file runs from bench/ under tsx and from dist/bench/ once built). */
export function repoRoot(from: string): string {
  let d = from;
  while (!existsSync(join(d, 'package.json')) || !existsSync(join(d, 'bench'))) {
    const up = dirname(d);
    if (up === d) throw new Error(`no repository root above ${from}`);
    d = up;
  }
  return d;
}

const ROOT = repoRoot(import.meta.dirname);
const START = '<!-- bench:generated:start -->';
const END = '<!-- bench:generated:end -->';
const log = (s: string): void => { process.stderr.write(`[bench] ${s}\n`); };

interface Sub { key: string; title: string; script: string; args: string[]; timeoutSec: number }

function runScript(s: Sub): Promise<{ ok: boolean; out: string; sec: number }> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', s.script, ...s.args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => { out += b.toString(); });
    child.stderr.on('data', (b: Buffer) => { err = (err + b.toString()).slice(-3000); });
    const timer = setTimeout(() => child.kill('SIGTERM'), s.timeoutSec * 1000);
    child.on('exit', (code, sig) => {
      clearTimeout(timer);
      const sec = (Date.now() - t0) / 1000;
      if (code === 0) resolve({ ok: true, out, sec });
      else resolve({ ok: false, out: `${out}\n(exit ${code ?? sig}; stderr tail:)\n${err.split('\n').filter((l) => !l.startsWith('npm warn')).slice(-15).join('\n')}`, sec });
    });
  });
}

const f1 = (n: number | undefined, d = 1): string => (n === undefined || !Number.isFinite(n) ? '–' : n.toFixed(d));

/** Markdown for the SIP load: one row per scenario (best clean step), then the ratios. */
export function sipLoadMarkdown(results: ScenarioResult[]): string {
  const lines = [
    '| scenario | best clean rate (calls/s) | setup p50 / p95 / p99 at best (ms) | CPU ms/call (user+sys) | PSS MB | half-rate setup p50 / p99 (ms) | half-rate added by the proxy p50 / p95 / p99 (ms) |',
    '|---|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of results) {
    const b = r.best;
    lines.push(`| **${r.name}** ${r.label} | ${b ? b.rate : 'none'} | ${b ? `${f1(b.setupMs.p50, 2)} / ${f1(b.setupMs.p95, 2)} / ${f1(b.setupMs.p99, 2)}` : '–'} | ` +
      `${b?.cpuMsPerCall !== undefined ? `${f1(b.cpuMsPerCall, 3)} (${f1(b.userMsPerCall, 3)}+${f1(b.sysMsPerCall, 3)})` : '–'} | ${b?.pssMb ?? '–'} | ` +
      `${r.halfRate ? `${f1(r.halfRate.setupMs.p50, 2)} / ${f1(r.halfRate.setupMs.p99, 2)}` : '–'} | ` +
      `${r.halfRateHold ? `${f1(r.halfRateHold.p50, 2)} / ${f1(r.halfRateHold.p95, 2)} / ${f1(r.halfRateHold.p99, 2)}${r.halfRateHold.dropped ? ` (${r.halfRateHold.dropped} packets lost by the capture)` : ''}` : '–'} |`);
  }
  lines.push('', 'Setup = INVITE sent → 200 received at the caller (includes the load generator\'s own delays). Added by the proxy = ' +
    '(INVITE in → INVITE out) + (200 in → 200 out) [+ (INVITE in → 407 out) with digest] at the proxy\'s port, from the kernel\'s ' +
    'packet timestamps (tcpdump on lo during the half-rate step): the figure the < 5 ms target is about.');
  lines.push('', 'Every step (a step fails on the first failed call or a setup p99 over 1 s):', '');
  lines.push('| scenario | rate | completed/attempted | failed | p99 ms | CPU ms/call | PSS MB |', '|---|---:|---:|---:|---:|---:|---:|');
  for (const r of results) {
    for (const s of r.steps) {
      lines.push(`| ${r.name} | ${s.rate} | ${s.completed}/${s.attempted} | ${s.failed}${s.failed ? ` ${JSON.stringify(s.failures)}` : ''} | ${f1(s.setupMs.p99)} | ${f1(s.cpuMsPerCall, 3)} | ${s.pssMb ?? '–'} |`);
    }
  }
  const by = (n: string): ScenarioResult | undefined => results.find((r) => r.name === n);
  const kam = results.filter((r) => r.name.startsWith('d-'));
  const bestOf = (pred: (r: ScenarioResult) => boolean): ScenarioResult | undefined =>
    kam.filter(pred).sort((x, y) => (y.best?.rate ?? 0) - (x.best?.rate ?? 0) || (x.best?.cpuMsPerCall ?? 9e9) - (y.best?.cpuMsPerCall ?? 9e9))[0];
  const kIpAcc = bestOf((r) => r.extra?.auth === 'ip' && r.extra?.acc === true);
  const kIpNoAcc = bestOf((r) => r.extra?.auth === 'ip' && r.extra?.acc === false);
  const kDigNoAcc = bestOf((r) => r.extra?.auth === 'digest' && r.extra?.acc === false);
  const kDigAcc = bestOf((r) => r.extra?.auth === 'digest' && r.extra?.acc === true);
  const ratio = (g: ScenarioResult | undefined, k: ScenarioResult | undefined, what: string, target: string): string => {
    if (!g?.best || !k?.best) return `| ${what} | ${g?.best?.rate ?? '–'} | ${k?.best?.rate ?? '–'} (${k?.name ?? 'not run'}) | – | – | ${target} |`;
    const rr = g.best.rate / k.best.rate;
    const cr = g.best.cpuMsPerCall !== undefined && k.best.cpuMsPerCall !== undefined ? g.best.cpuMsPerCall / k.best.cpuMsPerCall : undefined;
    return `| ${what} | ${g.best.rate} | ${k.best.rate} (${k.name}) | ${rr.toFixed(2)} | ${f1(cr, 2)} | ${target} |`;
  };
  if (kam.length && (by('b') || by('c'))) {
    lines.push('', '| comparison | gateway calls/s | Kamailio calls/s | rate ratio gw/kam | CPU-per-call ratio gw/kam | target |', '|---|---:|---:|---:|---:|---|');
    lines.push(ratio(by('b'), kIpAcc, 'b (IP + CDRs) vs Kamailio IP + acc', 'rate ≥ 2'));
    lines.push(ratio(by('b'), kIpNoAcc, 'b (IP + CDRs) vs Kamailio IP, no acc', 'aim: rate ≥ 1'));
    lines.push(ratio(by('c'), kDigNoAcc, 'c (digest + CDRs) vs Kamailio digest, no acc', 'rate ≥ 1'));
    lines.push(ratio(by('c'), kDigAcc, 'c (digest + CDRs) vs Kamailio digest + acc', '–'));
  }
  const a = by('a');
  if (a?.best) lines.push('', `Generator ceiling (a): ${a.best.rate} calls/s clean — rates at or near it measure the load generator, not the proxy.`);
  for (const r of results) if (r.extra?.gatewayCdrRows !== undefined) lines.push(`gw_cdr rows written during the gateway scenarios: ${String(r.extra.gatewayCdrRows)}.`);
  return lines.join('\n');
}

export function replaceGenerated(doc: string, generated: string): string {
  const block = `${START}\n${generated}\n${END}`;
  const i = doc.indexOf(START);
  const j = doc.indexOf(END);
  if (i >= 0 && j > i) return doc.slice(0, i) + block + doc.slice(j + END.length);
  return `${doc.trimEnd()}\n\n${block}\n`;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({ options: { quick: { type: 'boolean' }, only: { type: 'string' }, scenarios: { type: 'string' } } });
  const quick = values.quick === true;
  const only = values.only ? new Set(values.only.split(',')) : undefined;
  const want = (k: string): boolean => !only || only.has(k);
  mkdirSync(join(ROOT, 'bench/out'), { recursive: true });
  const started = new Date();
  const load0 = loadavg();
  const sections: string[] = [];

  if (want('sip')) {
    log('SIP load: a, b, c, d');
    try {
      const results = await runSipLoad({ quick, scenarios: (values.scenarios ?? 'a,b,c,d').split(',') });
      writeFileSync(join(ROOT, 'bench/out/sip-load.json'), JSON.stringify(results, null, 2));
      sections.push(`### SIP load (bench/sip-load.ts${quick ? ' --quick: 3 s steps, Kamailio with 4 children only' : ''})\n\n${sipLoadMarkdown(results)}`);
    } catch (e) {
      sections.push(`### SIP load\n\nFAILED: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  const subs: Sub[] = [
    { key: 'parser', title: 'SIP parser / serialiser (bench/sip-parser.ts)', script: 'bench/sip-parser.ts', args: [quick ? '0.5' : '2'], timeoutSec: 300 },
    { key: 'auth', title: 'Auth decision cost (bench/auth-cost.ts)', script: 'bench/auth-cost.ts', args: [quick ? '0.5' : '2'], timeoutSec: 300 },
    { key: 'cdr', title: 'CDR write (bench/cdr-write.ts)', script: 'bench/cdr-write.ts', args: [quick ? '10000' : '50000'], timeoutSec: 900 },
    { key: 'reconcile', title: `Reconciliation (bench/reconcile-1m.ts${quick ? ' --calls 100000' : ''})`, script: 'bench/reconcile-1m.ts', args: quick ? ['--calls', '100000'] : [], timeoutSec: 1800 },
  ];
  for (const s of subs) {
    if (!want(s.key) || !existsSync(join(ROOT, s.script))) continue;
    log(`${s.title} …`);
    const r = await runScript(s);
    writeFileSync(join(ROOT, `bench/out/${s.key}.txt`), r.out);
    const body = s.key === 'reconcile' && r.ok ? `\`\`\`json\n${r.out.trim()}\n\`\`\`` : `\`\`\`\n${r.out.trim()}\n\`\`\``;
    sections.push(`### ${s.title}${r.ok ? '' : ' — FAILED'} (${r.sec.toFixed(0)} s)\n\n${body}`);
  }

  const cpu = cpus();
  const head = [
    `## Latest run (generated by \`npm run bench${quick ? ' -- --quick' : ''}\`)`, '',
    `- date: ${started.toISOString()} (took ${((Date.now() - started.getTime()) / 60000).toFixed(1)} min)`,
    `- machine: ${cpu.length} × ${cpu[0]?.model ?? '?'}, ${(totalmem() / 2 ** 30).toFixed(1)} GB RAM; node ${process.version}`,
    `- load average at start ${load0.map((l) => l.toFixed(1)).join(' ')}, at end ${loadavg().map((l) => l.toFixed(1)).join(' ')} (the host is shared: rates drift, CPU ms per call holds steadier)`,
  ].join('\n');
  const file = join(ROOT, 'bench/RESULTS.md');
  const doc = existsSync(file) ? readFileSync(file, 'utf8') : '# Benchmark results\n';
  writeFileSync(file, replaceGenerated(doc, `${head}\n\n${sections.join('\n\n')}`));
  log(`wrote ${file}`);
}
