// The operator's report: one self-contained HTML file (no scripts, fonts or images from anywhere): the
// summary table, money at risk per class, an inline-SVG chart per class (calls per hour of the billing day),
// the accounts most at risk, AMI gaps, and a sample of discrepancies. Pure: summary in, string out.

import type { RunSummary } from './summary.js';
import { CALL_CLASSES, CLASS_LABELS, DISCREPANCY_CLASSES, type CallClass, type CallResult, type DiscrepancyClass } from './types.js';

const esc = (s: unknown): string => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const money = (x: number): string => x.toFixed(2);
const COLORS: Record<CallClass, string> = {
  matched: '#3a7d44', bypass: '#b00020', unanswered_billed: '#d35400', unbilled: '#c0392b', account_mismatch: '#8e44ad',
  duration_mismatch: '#e67e22', ami_missing_gap: '#7f8c8d', ami_missing: '#2c3e50',
};

function barChart(cls: CallClass, counts: readonly number[]): string {
  const w = 480, h = 120, pad = 22, left = 40;
  const max = Math.max(1, ...counts);
  const bw = (w - left) / counts.length;
  const bars = counts.map((n, i) => {
    const bh = Math.round(((h - pad) * n) / max);
    return `<rect x="${(left + i * bw + 1).toFixed(1)}" y="${h - pad - bh}" width="${Math.max(1, bw - 2).toFixed(1)}" height="${bh}" fill="${COLORS[cls]}"><title>hour ${i}: ${n}</title></rect>`;
  }).join('');
  const ticks = counts.map((_, i) => (i % 3 === 0 ? `<text x="${(left + i * bw + bw / 2).toFixed(1)}" y="${h - 6}" font-size="9" text-anchor="middle">${i}</text>` : '')).join('');
  return `<svg class="chart" data-class="${cls}" xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" role="img" aria-label="${esc(CLASS_LABELS[cls])} per hour">`
    + `<line x1="${left}" y1="${h - pad}" x2="${w}" y2="${h - pad}" stroke="#999"/><line x1="${left}" y1="4" x2="${left}" y2="${h - pad}" stroke="#999"/>`
    + `<text x="${left - 3}" y="12" font-size="9" text-anchor="end">${max}</text><text x="${left - 3}" y="${h - pad}" font-size="9" text-anchor="end">0</text>${bars}${ticks}</svg>`;
}

function sampleTable(rows: readonly CallResult[]): string {
  if (!rows.length) return '';
  const tr = rows.map((r) => `<tr><td>${esc(r.start)}</td><td>${esc(r.account)}</td><td class="mono">${esc(r.callid.slice(0, 40))}</td><td>${esc(r.box)}</td>`
    + `<td class="num">${r.gwDuration ?? ''}</td><td class="num">${r.billedDuration ?? ''}</td><td class="num">${r.amiDuration ?? ''}</td>`
    + `<td class="num">${money(r.amount)}</td><td>${esc(r.detail)}</td></tr>`).join('');
  return `<table class="sample"><thead><tr><th>Start (UTC)</th><th>Account</th><th>Call-ID</th><th>Box</th><th>Gateway s</th><th>Billed s</th><th>AMI s</th><th>At risk</th><th>Detail</th></tr></thead><tbody>${tr}</tbody></table>`;
}

export function renderReportHtml(s: RunSummary, samples: ReadonlyMap<DiscrepancyClass, readonly CallResult[]>, opts: { generatedAt?: string; topAccounts?: number } = {}): string {
  const summaryRows = CALL_CLASSES.map((c) => {
    const t = s.classes[c];
    const share = s.calls ? ((100 * t.count) / s.calls).toFixed(2) : '0.00';
    return `<tr data-class="${c}"><td><span class="dot" style="background:${COLORS[c]}"></span>${esc(CLASS_LABELS[c])}</td><td class="num count">${t.count}</td><td class="num">${share}%</td><td class="num amount">${money(t.amount)}</td></tr>`;
  }).join('');
  const charts = CALL_CLASSES.filter((c) => c === 'matched' || s.classes[c].count > 0).map((c) =>
    `<figure><figcaption>${esc(CLASS_LABELS[c])}: ${s.classes[c].count} calls</figcaption>${barChart(c, s.hourly[c])}</figure>`).join('');
  const top = s.accounts.slice(0, opts.topAccounts ?? 20);
  const accountRows = top.map((a) => `<tr><td>${esc(a.account || '(none)')}</td><td class="num">${a.count}</td><td class="num">${money(a.amount)}</td><td>${DISCREPANCY_CLASSES.filter((c) => a.classes[c]).map((c) => `${esc(CLASS_LABELS[c])}: ${a.classes[c]!.count}`).join(', ')}</td></tr>`).join('');
  const gaps = s.amiGaps.map((g) => `<tr><td>${esc(g.box)}</td><td>${esc(g.from)}</td><td>${esc(g.to)}</td><td class="num">${g.seconds}</td></tr>`).join('');
  const details = DISCREPANCY_CLASSES.filter((c) => (samples.get(c)?.length ?? 0) > 0).map((c) =>
    `<section class="class" data-class="${c}"><h3>${esc(CLASS_LABELS[c])} <small>(first ${samples.get(c)!.length} of ${s.classes[c].count})</small></h3>${sampleTable(samples.get(c)!)}</section>`).join('');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Reconciliation ${esc(s.day)} (${esc(s.timezone)})</title>
<style>
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#222;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}h3{font-size:15px}
table{border-collapse:collapse;margin:6px 0}th,td{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}.mono{font-family:ui-monospace,monospace;font-size:12px}
.dot{display:inline-block;width:10px;height:10px;border-radius:50%;margin-right:6px}
.kpis{display:flex;gap:16px;margin:12px 0}.kpi{border:1px solid #ddd;border-radius:6px;padding:8px 14px}.kpi b{display:block;font-size:20px}
figure{display:inline-block;margin:6px 12px 6px 0}figcaption{font-size:13px;margin-bottom:2px}
table.sample td{font-size:12px}small{color:#666;font-weight:normal}
</style></head><body>
<h1>Billing reconciliation: ${esc(s.day)}</h1>
<div>Time zone ${esc(s.timezone)} · window ${esc(s.windowStart)} – ${esc(s.windowEnd)} UTC · duration tolerance ${s.toleranceSec} s${opts.generatedAt ? ` · generated ${esc(opts.generatedAt)}` : ''}</div>
<div class="kpis">
<div class="kpi">Calls<b id="calls">${s.calls}</b></div>
<div class="kpi">Discrepancies<b id="discrepancies">${s.discrepancies}</b></div>
<div class="kpi">Money at risk<b id="at-risk">${money(s.amountAtRisk)}</b></div>
<div class="kpi">Rows read<b>${s.sources.gwCdr} gw · ${s.sources.amiCdr} AMI · ${s.sources.ccCall} cc_call</b></div>
</div>
<h2>Summary</h2>
<table id="summary"><thead><tr><th>Class</th><th>Calls</th><th>Share</th><th>Money at risk</th></tr></thead><tbody>${summaryRows}</tbody>
<tfoot><tr><th>Total</th><th class="num" id="total-calls">${s.calls}</th><th></th><th class="num" id="total-amount">${money(s.amountAtRisk)}</th></tr></tfoot></table>
<h2>Calls per hour of the billing day <small>(hours since local midnight, by call start)</small></h2>
<div id="charts">${charts}</div>
<h2>Accounts most at risk</h2>
${top.length ? `<table id="accounts"><thead><tr><th>Account</th><th>Discrepancies</th><th>Money at risk</th><th>Classes</th></tr></thead><tbody>${accountRows}</tbody></table>${s.accountsTotal > top.length ? `<p>${s.accountsTotal - top.length} more accounts in the CSV/JSON files.</p>` : ''}` : '<p>No account has a discrepancy.</p>'}
<h2>AMI gaps</h2>
${gaps ? `<table id="gaps"><thead><tr><th>Box</th><th>From (UTC)</th><th>To (UTC)</th><th>Seconds</th></tr></thead><tbody>${gaps}</tbody></table>` : '<p>AMI was connected to every known box all day.</p>'}
<h2>Discrepancies (sample)</h2>
${details || '<p>None.</p>'}
</body></html>
`;
}
