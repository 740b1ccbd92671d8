// What a batched writer needs to know about one table: its name, the columns it writes, the columns of the
// unique key that makes replays idempotent, and how a record becomes a row. Specs are code, never input.
import { hash } from 'node:crypto';
import { GwError } from '../errors.js';

/** One SQL value as it is journaled: JSON-safe, so a journaled row replays byte for byte. */
export type SqlValue = string | number | null;
export type Row = SqlValue[];

export interface TableSpec<R> {
  /** Table name (letters, digits, "_"). */
  table: string;
  /** Columns written, in the order toRow returns the values. */
  columns: readonly string[];
  /** Columns of the UNIQUE key that identifies a record (e.g. ['rec_key'] or ['box','uniqueid','sequence']). */
  keyColumns: readonly string[];
  /** Record → row values in `columns` order. Must be pure and cheap; a throw rejects that record (counted, logged). */
  toRow(record: R): Row;
  /**
   * 'ignore' (default): INSERT IGNORE, a replayed record is a no-op (first write wins).
   * 'update': INSERT IGNORE … ON DUPLICATE KEY UPDATE every non-key column (last write wins).
   */
  onDuplicate?: 'ignore' | 'update';
}

const IDENT = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

/** Validates a spec once (at construction), so SQL built from it never carries an unexpected identifier. */
export function defineTable<R>(spec: TableSpec<R>): TableSpec<R> {
  if (!IDENT.test(spec.table)) throw new GwError('GW_ERR_JOURNAL', `bad table name "${spec.table}"`);
  if (spec.columns.length === 0) throw new GwError('GW_ERR_JOURNAL', `table ${spec.table}: no columns`);
  const seen = new Set<string>();
  for (const c of spec.columns) {
    if (!IDENT.test(c)) throw new GwError('GW_ERR_JOURNAL', `table ${spec.table}: bad column name "${c}"`);
    if (seen.has(c)) throw new GwError('GW_ERR_JOURNAL', `table ${spec.table}: duplicate column "${c}"`);
    seen.add(c);
  }
  if (spec.keyColumns.length === 0) throw new GwError('GW_ERR_JOURNAL', `table ${spec.table}: keyColumns is empty`);
  for (const k of spec.keyColumns) {
    if (!seen.has(k)) throw new GwError('GW_ERR_JOURNAL', `table ${spec.table}: key column "${k}" is not written`);
  }
  return spec;
}

/**
 * A stable 32-hex-character idempotency key (fits CHAR(32)) from the parts that identify a record.
 * Parts are length-prefixed so ("ab","c") and ("a","bc") differ.
 */
export function recKey(...parts: ReadonlyArray<string | number>): string {
  // One one-shot hash of the joined text — the same bytes as the former update() per piece, so the same keys as
  // before (a journal replayed across an upgrade still dedupes), without a Hash object or a native call per piece.
  let text = '';
  for (const p of parts) {
    const s = String(p);
    text += `${s.length}:${s}`;
  }
  return hash('sha256', text, 'hex').slice(0, 32);
}

const pad2 = (n: number): string => (n < 10 ? `0${n}` : String(n));
const pad3 = (n: number): string => (n < 10 ? `00${n}` : n < 100 ? `0${n}` : String(n));

/** Epoch ms → 'YYYY-MM-DD HH:MM:SS.mmm' in UTC, the DATETIME(3) literal the gateway tables use. */
export function sqlDateTime(ms: number): string {
  const d = new Date(ms);
  return `${d.getUTCFullYear()}-${pad2(d.getUTCMonth() + 1)}-${pad2(d.getUTCDate())} ${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}:${pad2(d.getUTCSeconds())}.${pad3(d.getUTCMilliseconds())}`;
}

/** Clamps a (possibly attacker-controlled) string to a column width, so a long header never poisons a batch. */
export function clip(s: string | undefined, max: number): string {
  if (s === undefined) return '';
  return s.length <= max ? s : s.slice(0, max);
}
