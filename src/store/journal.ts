// The on-disk journal format of the batched writer. One directory per stream, numbered segment files
// (000000000001.jnl, ...), append-only. Every line is
//     <crc32 of the JSON, 8 lowercase hex> <JSON>\n
// The first line of a segment is a header naming the table and columns its rows were written for, so a
// segment replays correctly even after an upgrade changed the spec. JSON.stringify never emits a raw
// newline, so one line is one record. A line whose checksum does not match, that is not valid JSON, or that
// has no final newline (a write torn by a crash) is skipped and counted, never guessed at.
import { crc32 } from 'node:zlib';
import type { Row, SqlValue } from './spec.js';

export const SEGMENT_SUFFIX = '.jnl';
const SEGMENT_NAME = /^(\d{12})\.jnl$/;

export interface SegmentHeader {
  v: 1;
  table: string;
  columns: string[];
  keyColumns: string[];
  onDuplicate: 'ignore' | 'update';
}

export function segmentName(seq: number): string {
  return `${String(seq).padStart(12, '0')}${SEGMENT_SUFFIX}`;
}

/** The sequence number of a segment file name, or undefined for any other file. */
export function segmentSeq(fileName: string): number | undefined {
  const m = SEGMENT_NAME.exec(fileName);
  return m ? Number(m[1]) : undefined;
}

function hex8(n: number): string {
  return n.toString(16).padStart(8, '0');
}

export function encodeLine(value: unknown): string {
  const json = JSON.stringify(value);
  return `${hex8(crc32(json))} ${json}\n`;
}

/** The JSON value of one line (without its newline), or undefined when the line is damaged. */
export function decodeLine(line: string): unknown {
  if (line.length < 10 || line.charCodeAt(8) !== 0x20) return undefined;
  const json = line.slice(9);
  if (line.slice(0, 8) !== hex8(crc32(json))) return undefined;
  try {
    return JSON.parse(json) as unknown;
  } catch {
    return undefined;
  }
}

function isHeader(v: unknown): v is SegmentHeader {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const h = v as Record<string, unknown>;
  return h.v === 1 && typeof h.table === 'string' && Array.isArray(h.columns) && h.columns.every((c) => typeof c === 'string')
    && Array.isArray(h.keyColumns) && (h.onDuplicate === 'ignore' || h.onDuplicate === 'update');
}

function isSqlValue(v: unknown): v is SqlValue {
  return v === null || typeof v === 'string' || typeof v === 'number';
}

export interface ParsedSegment {
  /** undefined when the header line is missing or damaged: the rows cannot be placed safely. */
  header: SegmentHeader | undefined;
  rows: Row[];
  /** Damaged lines skipped (checksum, JSON, shape, or a torn final line). */
  bad: number;
  /** True when the file ended without a newline (the last write was torn). */
  torn: boolean;
}

/** Parses a whole segment file. Never throws. */
export function parseSegment(text: string): ParsedSegment {
  const out: ParsedSegment = { header: undefined, rows: [], bad: 0, torn: false };
  if (text.length === 0) return out;
  let start = 0;
  let first = true;
  while (start < text.length) {
    const nl = text.indexOf('\n', start);
    if (nl < 0) {
      // No final newline: the process died in the middle of this write.
      out.bad++;
      out.torn = true;
      break;
    }
    const value = decodeLine(text.slice(start, nl));
    start = nl + 1;
    if (first) {
      first = false;
      if (isHeader(value)) {
        out.header = value;
        continue;
      }
    }
    if (Array.isArray(value) && out.header && value.length === out.header.columns.length && value.every(isSqlValue)) {
      out.rows.push(value as Row);
    } else {
      out.bad++;
    }
  }
  return out;
}
