// The HTML report opens in a real browser (headless Chromium): the DOM the browser builds has the summary
// table with the run's numbers and one inline-SVG chart per class present, and nothing is fetched from outside.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { callRef } from '../../src/callref.js';
import { renderReportHtml } from '../../src/reconcile/report-html.js';
import { createSummary } from '../../src/reconcile/summary.js';
import { billingWindow } from '../../src/reconcile/window.js';
import { CALL_CLASSES, type CallResult } from '../../src/reconcile/types.js';
import { ami, cc, gw, reconcileRows, uid } from '../unit/reconcile/harness.js';

const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));
const dir = mkdtempSync(join(tmpdir(), 'a2b-report-'));

function chromium(args: string[]): { stdout: string; stderr: string; status: number | null } {
  if (!CHROMIUM) throw new Error('headless Chromium is required for this test: install it with `apt-get install -y chromium` (looked for /usr/bin/chromium)');
  const r = spawnSync(CHROMIUM, ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', `--user-data-dir=${join(dir, 'profile')}`, ...args], { encoding: 'utf8', timeout: 20_000, maxBuffer: 16 << 20 });
  return { stdout: r.stdout ?? '', stderr: r.stderr ?? '', status: r.status };
}

describe('HTML report in headless Chromium', () => {
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('renders the summary table with the run\'s numbers and a chart per class', async () => {
    const T = '2026-11-21 09:00:00';
    const rows = { gw: [] as ReturnType<typeof gw>[], ami: [] as ReturnType<typeof ami>[], cc: [] as ReturnType<typeof cc>[] };
    for (let i = 0; i < 40; i++) {
      const id = `call-${i}`;
      const at = `2026-11-21 ${String(i % 24).padStart(2, '0')}:10:00`;
      const u = uid(at, i);
      rows.gw.push(gw(id, { at: `${at}.000`, dur: 60 + i }));
      if (i % 9 !== 0) rows.ami.push(ami(u, { callid: id, at, billsec: 60 + i }));
      if (i % 10 !== 0) rows.cc.push(cc(i + 1, u, { custom1: callRef(id), at, sessiontime: i % 6 === 0 ? 10 : 60 + i, sessionbill: 0.05 }));
    }
    // A bypass call whose Call-ID is hostile markup: it must come out as text.
    rows.ami.push(ami(uid(T, 99), { callid: '<script>alert(1)</script>', at: T }));
    const { results } = await reconcileRows(rows);
    const w = billingWindow('2026-11-21', 'UTC');
    const s = createSummary(w, 2);
    results.forEach((r: CallResult) => s.add(r));
    const summary = s.build({ sources: { gwCdr: rows.gw.length, amiCdr: rows.ami.length, ccCall: rows.cc.length }, outOfWindow: 0, durationMs: 12, gaps: new Map() });
    const html = renderReportHtml(summary, s.samples, { generatedAt: '2026-11-22T02:30:00Z' });
    expect(html).not.toMatch(/<script|<link|src=|url\(/i);
    const file = join(dir, 'report.html');
    writeFileSync(file, html);

    const dom = chromium(['--dump-dom', `file://${file}`]);
    expect(dom.status, dom.stderr).toBe(0);
    const body = dom.stdout;
    for (const c of CALL_CLASSES) {
      const m = new RegExp(`<tr data-class="${c}">.*?<td class="num count">(\\d+)</td>.*?<td class="num amount">([\\d.]+)</td>`).exec(body);
      expect(m, `summary row for ${c}`).not.toBeNull();
      expect([c, Number(m![1]), m![2]]).toEqual([c, summary.classes[c].count, summary.classes[c].amount.toFixed(2)]);
    }
    expect(body).toContain(`<th class="num" id="total-calls">${summary.calls}</th>`);
    // Every class with calls has its chart inside #charts (malformed SVG would be hoisted out by the parser).
    const charts = /<div id="charts">([\s\S]*?)<\/div>/.exec(body)![1]!;
    const withCalls = CALL_CLASSES.filter((c) => c === 'matched' || summary.classes[c].count > 0);
    expect([...charts.matchAll(/<svg class="chart" data-class="([a-z_]+)"/g)].map((m) => m[1])).toEqual(withCalls);
    expect(withCalls.length).toBeGreaterThanOrEqual(5);
    expect(body).not.toContain('<script>alert(1)</script>');
    expect(body).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');

    const png = join(dir, 'report.png');
    const shot = chromium([`--screenshot=${png}`, '--window-size=1200,900', `file://${file}`]);
    expect(shot.status, shot.stderr).toBe(0);
    expect(statSync(png).size).toBeGreaterThan(20_000);
    expect(readFileSync(png).subarray(1, 4).toString()).toBe('PNG');
    if (process.env.A2B_KEEP_REPORT) writeFileSync(process.env.A2B_KEEP_REPORT, readFileSync(png));
  });
});
