// Report files in reconcile.outputDir: reconcile-<day>-<tz>.csv (one line per discrepancy),
// .json ({ items: [...], summary }) and .html. Written to temporary names and renamed at the end, so a failed
// run leaves the previous report in place.

import { once } from 'node:events';
import { createWriteStream, mkdirSync, renameSync, rmSync, writeFileSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import type { CallResult } from './types.js';

export interface ReportFiles {
  csv: string;
  json: string;
  html: string;
}

export function reportFiles(dir: string, day: string, tz: string): ReportFiles {
  const base = `reconcile-${day}-${tz.replace(/[^A-Za-z0-9_+-]+/g, '_')}`;
  return { csv: join(dir, `${base}.csv`), json: join(dir, `${base}.json`), html: join(dir, `${base}.html`) };
}

export const CSV_HEADER = ['class', 'start_utc', 'account', 'accountcode_gw', 'accountcode_billed', 'callid', 'callref', 'box', 'uniqueid',
  'cc_call_id', 'gw_duration', 'ami_duration', 'billed_duration', 'amount_at_risk', 'detail'];

/** One CSV field (RFC 4180 quoting). Text a spreadsheet would run as a formula is prefixed with '. */
export function csvField(v: string | number | null): string {
  if (v === null) return '';
  if (typeof v === 'number') return String(v);
  const s = /^[=+\-@\t\r]/.test(v) ? `'${v}` : v;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function csvLine(r: CallResult): string {
  return [r.cls, r.start, r.account, r.accountGw, r.accountBilled, r.callid, r.callref, r.box, r.uniqueid, r.ccCallId, r.gwDuration,
    r.amiDuration, r.billedDuration, r.amount, r.detail].map((v) => csvField(v)).join(',') + '\r\n';
}

export interface ReportWriter {
  add(items: readonly CallResult[]): Promise<void>;
  /** Finishes the files (summary goes into the JSON and the HTML) and moves them into place. */
  finish(summary: unknown, html: string): Promise<ReportFiles>;
  abort(): Promise<void>;
}

async function write(ws: WriteStream, s: string): Promise<void> {
  if (!ws.write(s)) await once(ws, 'drain');
}

async function close(ws: WriteStream): Promise<void> {
  if (ws.closed) return;
  await new Promise<void>((resolve, reject) => ws.end((e?: Error | null) => (e ? reject(e) : resolve())));
}

export function openReportWriter(dir: string, day: string, tz: string): ReportWriter {
  mkdirSync(dir, { recursive: true });
  const final = reportFiles(dir, day, tz);
  const tmp = { csv: `${final.csv}.tmp`, json: `${final.json}.tmp`, html: `${final.html}.tmp` };
  const csv = createWriteStream(tmp.csv);
  const json = createWriteStream(tmp.json);
  csv.write(CSV_HEADER.join(',') + '\r\n');
  json.write('{"items":[\n');
  let first = true;
  return {
    async add(items) {
      if (!items.length) return;
      let c = '';
      let j = '';
      for (const r of items) {
        c += csvLine(r);
        j += (first ? '' : ',\n') + JSON.stringify(r);
        first = false;
      }
      await write(csv, c);
      await write(json, j);
    },
    async finish(summary, html) {
      await write(json, `\n],"summary":${JSON.stringify(summary)}}\n`);
      await close(csv);
      await close(json);
      writeFileSync(tmp.html, html);
      renameSync(tmp.csv, final.csv);
      renameSync(tmp.json, final.json);
      renameSync(tmp.html, final.html);
      return final;
    },
    async abort() {
      csv.destroy();
      json.destroy();
      for (const f of Object.values(tmp)) rmSync(f, { force: true });
    },
  };
}
