// Sort-merge of the three sources, each a cursor of rows ascending by merge key `k`. Memory is one group
// of rows per source at a time. A source out of order (a collation surprise) is a fault, not a silent
// mis-join.

import { GwError } from '../errors.js';
import type { AmiCdrRow, CcCallRow, GwCdrRow } from './types.js';

export interface Cursor<T> {
  /** The next row, or undefined at the end. */
  next(): Promise<T | undefined>;
  /** The next row if one is buffered (undefined at the end), null when next() must wait: saves a microtask per row. */
  nextSync?(): T | undefined | null;
}

/** A cursor over an in-memory array (tests, small inputs). */
export function arrayCursor<T>(rows: readonly T[]): Cursor<T> {
  let i = 0;
  return { next: async () => rows[i++] };
}

export interface MergeSources {
  gw: Cursor<GwCdrRow>;
  ami: Cursor<AmiCdrRow>;
  cc: Cursor<CcCallRow>;
}

export interface MergeCounts {
  gw: number;
  ami: number;
  cc: number;
  groups: number;
}

type Keyed = { k: string };

async function take<T extends Keyed>(c: Cursor<T>, key: string, head: T | undefined, out: T[], name: string): Promise<T | undefined> {
  let h = head;
  while (h !== undefined && h.k === key) {
    out.push(h);
    let n = c.nextSync ? c.nextSync() : null;
    if (n === null) n = await c.next();
    if (n !== undefined && n.k < key) throw new GwError('GW_ERR_RECONCILE', `${name} rows are not ordered by merge key ("${n.k}" after "${key}")`);
    h = n;
  }
  return h;
}

/** How far through the key space `key` is (0..1): call references are uniformly spread hex, 'u' keys come last. */
export function keyFraction(key: string): number {
  if (key.startsWith('u')) return 1;
  const n = Number.parseInt(key.slice(0, 4), 16);
  return Number.isNaN(n) ? 0 : n / 65536;
}

export async function mergeByKey(
  src: MergeSources,
  onGroup: (key: string, gw: GwCdrRow[], ami: AmiCdrRow[], cc: CcCallRow[]) => void | Promise<void>,
  onTick?: (counts: MergeCounts, key: string) => void,
): Promise<MergeCounts> {
  let [g, a, c] = await Promise.all([src.gw.next(), src.ami.next(), src.cc.next()]);
  const counts: MergeCounts = { gw: 0, ami: 0, cc: 0, groups: 0 };
  for (;;) {
    let key: string | undefined;
    if (g) key = g.k;
    if (a && (key === undefined || a.k < key)) key = a.k;
    if (c && (key === undefined || c.k < key)) key = c.k;
    if (key === undefined) break;
    const gw: GwCdrRow[] = [];
    const ami: AmiCdrRow[] = [];
    const cc: CcCallRow[] = [];
    g = await take(src.gw, key, g, gw, 'gw_cdr');
    a = await take(src.ami, key, a, ami, 'gw_ami_cdr');
    c = await take(src.cc, key, c, cc, 'cc_call');
    counts.gw += gw.length;
    counts.ami += ami.length;
    counts.cc += cc.length;
    counts.groups++;
    const p = onGroup(key, gw, ami, cc);
    if (p) await p;
    if (onTick && (counts.groups & 0x3fff) === 0) onTick(counts, key);
  }
  return counts;
}
