// Child process of bench/reconcile-1m.ts: one reconciliation run, measured alone (wall time, peak RSS).
//   node --import tsx bench/reconcile-worker.ts <dbUrl> <day> <tz> <outDir|-> [boxes-json]
import { createDb } from '../src/db/pool.js';
import { runReconcile } from '../src/reconcile/job.js';

const [url, day, tz, outDir] = process.argv.slice(2);
if (!url || !day || !tz || !outDir) {
  process.stderr.write('usage: reconcile-worker <dbUrl> <day> <tz> <outDir|->\n');
  process.exit(2);
}
const db = createDb({ url, poolSize: 6 });
const t0 = performance.now();
const cpu0 = process.cpuUsage();
let rssPeak = process.memoryUsage.rss();
const sampler = setInterval(() => { rssPeak = Math.max(rssPeak, process.memoryUsage.rss()); }, 100);
let lastLog = 0;
const r = await runReconcile({
  db, day, timezone: tz, toleranceSec: 2, outputDir: outDir === '-' ? null : outDir,
  onProgress: (p) => {
    if (p.elapsedMs - lastLog < 5000) return;
    lastLog = p.elapsedMs;
    process.stderr.write(`  ${(p.elapsedMs / 1000).toFixed(0)} s: ${(100 * p.fraction).toFixed(0)}%, ${p.read.gw + p.read.ami + p.read.cc} rows, rss ${(process.memoryUsage.rss() / 1048576).toFixed(0)} MB\n`);
  },
});
const wallMs = performance.now() - t0;
const cpu = process.cpuUsage(cpu0);
clearInterval(sampler);
await db.end();
const rows = r.summary.sources.gwCdr + r.summary.sources.amiCdr + r.summary.sources.ccCall;
process.stdout.write(`${JSON.stringify({
  wallMs: Math.round(wallMs), cpuMs: Math.round((cpu.user + cpu.system) / 1000), rows, rowsPerSec: Math.round(rows / (wallMs / 1000)), calls: r.summary.calls,
  peakRssMb: Math.round(process.resourceUsage().maxRSS / 1024), sampledPeakRssMb: Math.round(rssPeak / 1048576),
  classes: Object.fromEntries(Object.entries(r.summary.classes).map(([k, v]) => [k, v.count])), amountAtRisk: r.summary.amountAtRisk,
  files: r.files, phases: r.phases, loadavg: (await import('node:os')).loadavg().map((x) => Number(x.toFixed(1))),
})}\n`);
