// Filling AMI's blind spots from a box's durable CDRs: an imported Master.csv (cdr_csv) or the box's `cdr` table
// (cdr_mysql / cdr_adaptive_odbc). Rows go to gw_ami_cdr with origin 'backfill' under the same unique key as AMI
// rows, so a backfill is idempotent and never overwrites what AMI delivered. A CDR source without a Sequence
// column gets a synthetic (negative) sequence; such a record is skipped when the box already has a row for the
// same call leg (same uniqueid, start, destination channel, disposition, billsec) from AMI.
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Db } from '../db/pool.js';
import { selectAmiCdrByUniqueIdsSql, selectBoxCdrSql } from '../db/queries/ami.js';
import { batchInsertSql } from '../db/queries/store.js';
import { GwError, describeError } from '../errors.js';
import type { Logger } from '../log.js';
import { cdrFromCsv, cdrFromTableRow, type CdrRecord, type CdrTableRow } from './cdr.js';
import { AMI_CDR_TABLE } from './store.js';
import { sqlDateTimeSec, ZoneClock } from './time.js';

export interface BackfillResult {
  box: string;
  /** CDRs read from the source. */
  read: number;
  /** Rows added to gw_ami_cdr. */
  inserted: number;
  /** Already stored (same box, uniqueid, sequence). */
  duplicates: number;
  /** Sequence-less CDRs recognised as a leg AMI already delivered. */
  alreadyFromAmi: number;
  /** Lines or rows that could not be read (line number for CSV, 0 for table rows). */
  errors: Array<{ line: number; message: string }>;
}

const BATCH = 500;

function legKey(start: string | null, dstChannel: string, disposition: string, billsec: number): string {
  return `${start ?? ''}|${dstChannel}|${disposition}|${billsec}`;
}

/** Inserts records (one box) in batches; returns counts. Throws GW_ERR_DB_QUERY when MySQL fails. */
export async function storeBackfill(db: Db, box: string, records: CdrRecord[], result: BackfillResult, now = Date.now()): Promise<void> {
  for (let i = 0; i < records.length; i += BATCH) {
    let batch = records.slice(i, i + BATCH);
    try {
      const synthetic = batch.filter((r) => r.sequence < 0);
      if (synthetic.length > 0) {
        const ids = [...new Set(synthetic.map((r) => r.uniqueId))];
        const [rows] = await db.query(selectAmiCdrByUniqueIdsSql(ids.length), [box, ...ids]);
        const known = new Set<string>();
        for (const row of rows as Array<{ uniqueid: string; sequence: number; start_time: string | null; dstchannel: string; disposition: string; billsec: number }>) {
          if (row.sequence >= 0) known.add(`${row.uniqueid}|${legKey(row.start_time, row.dstchannel, row.disposition, Number(row.billsec))}`);
        }
        batch = batch.filter((r) => {
          if (r.sequence >= 0) return true;
          const hit = known.has(`${r.uniqueId}|${legKey(r.start === null ? null : sqlDateTimeSec(r.start), r.dstChannel, r.disposition, r.billableSeconds)}`);
          if (hit) result.alreadyFromAmi++;
          return !hit;
        });
      }
      if (batch.length === 0) continue;
      const values = batch.flatMap((r) => AMI_CDR_TABLE.toRow({ ...r, box, origin: 'backfill', receivedAt: now }));
      const sql = batchInsertSql(AMI_CDR_TABLE.table, AMI_CDR_TABLE.columns, AMI_CDR_TABLE.keyColumns, batch.length, 'ignore');
      const [res] = await db.query(sql, values);
      const affected = (res as { affectedRows?: number }).affectedRows ?? 0;
      result.inserted += affected;
      result.duplicates += batch.length - affected;
    } catch (e) {
      throw new GwError('GW_ERR_DB_QUERY', `storing backfilled CDRs of box ${box}: ${describeError(e)}`, { cause: e });
    }
  }
}

export interface CsvBackfillOptions {
  db: Db;
  box: string;
  file: string;
  /** The box's time zone (Master.csv times are local). */
  timezone?: string;
  log?: Logger;
}

/** Reads a Master.csv and stores every CDR. Unreadable lines are reported, not fatal. */
export async function backfillCsv(o: CsvBackfillOptions): Promise<BackfillResult> {
  const clock = new ZoneClock(o.timezone ?? 'UTC');
  const result: BackfillResult = { box: o.box, read: 0, inserted: 0, duplicates: 0, alreadyFromAmi: 0, errors: [] };
  const stream = createReadStream(o.file, { encoding: 'utf8' });
  const opened = new Promise<void>((resolve, reject) => {
    stream.once('open', () => resolve());
    stream.once('error', (e) => reject(new GwError('GW_ERR_AMI_BACKFILL', `cannot read ${o.file}: ${describeError(e)}`, { cause: e })));
  });
  await opened;
  const rl = createInterface({ input: stream, crlfDelay: Infinity });
  let pending: CdrRecord[] = [];
  let lineNo = 0;
  for await (const raw of rl) {
    lineNo++;
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line.trim() === '') continue;
    try {
      pending.push(cdrFromCsv(o.box, line, clock));
      result.read++;
    } catch (e) {
      result.errors.push({ line: lineNo, message: describeError(e) });
      continue;
    }
    if (pending.length >= BATCH) {
      await storeBackfill(o.db, o.box, pending, result);
      pending = [];
    }
  }
  if (pending.length > 0) await storeBackfill(o.db, o.box, pending, result);
  o.log?.info({ file: o.file, ...result, errors: result.errors.length }, 'Master.csv backfill done');
  return result;
}

export interface TableBackfillOptions {
  /** The gateway database (gw_ami_cdr). */
  db: Db;
  /** The box's CDR database. */
  source: Db;
  box: string;
  table?: string;
  timezone?: string;
  /** UTC window [fromMs, toMs) on the CDR start. */
  fromMs: number;
  toMs: number;
  log?: Logger;
}

/** Reads the box's `cdr` table for a window (calldate is local time: the window is converted) and stores it. */
export async function backfillFromCdrTable(o: TableBackfillOptions): Promise<BackfillResult> {
  const clock = new ZoneClock(o.timezone ?? 'UTC');
  const result: BackfillResult = { box: o.box, read: 0, inserted: 0, duplicates: 0, alreadyFromAmi: 0, errors: [] };
  let rows: CdrTableRow[];
  try {
    // One second wider on each side: local wall times around a DST change are ambiguous; duplicates are no-ops.
    const [r] = await o.source.query(selectBoxCdrSql(o.table ?? 'cdr'), [clock.toLocal(o.fromMs - 1000), clock.toLocal(o.toMs + 1000)]);
    rows = r as CdrTableRow[];
  } catch (e) {
    throw new GwError('GW_ERR_AMI_BACKFILL', `reading ${o.table ?? 'cdr'} of box ${o.box}: ${describeError(e)}`, { cause: e });
  }
  const records: CdrRecord[] = [];
  for (const row of rows) {
    try {
      const rec = cdrFromTableRow(o.box, row, clock);
      if (rec.start !== null && (rec.start < o.fromMs || rec.start >= o.toMs)) continue;
      records.push(rec);
      result.read++;
    } catch (e) {
      result.errors.push({ line: 0, message: describeError(e) });
    }
  }
  await storeBackfill(o.db, o.box, records, result);
  o.log?.info({ from: new Date(o.fromMs).toISOString(), to: new Date(o.toMs).toISOString(), ...result, errors: result.errors.length }, 'cdr table backfill done');
  return result;
}
