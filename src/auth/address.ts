// Source-IP trust: rows of the `address` view (Kamailio permissions-compatible) → an immutable
// longest-prefix-match table. Among rows with the same prefix a specific port beats any port and a
// specific transport beats 'any'; remaining ties go to the lowest (grp, id), so the answer never
// depends on the order the database returned the rows in.
import type { Proto } from '../proxy/hooks.js';
import { makePrefix, parseIp, PrefixTable, type ParsedIp, type Prefix } from './ip.js';

/** One row of the `address` view as the driver returns it. */
export interface AddressRow {
  id: string | number;
  grp: number | string;
  ip_addr: string;
  mask: number | string;
  port: number | string;
  proto: string;
  tag: string | null;
  accountcode: string;
  card_id: number | string | null;
  description: string | null;
}

export interface AddressEntry {
  id: string;
  grp: number;
  /** Normalised "ip/len" for logs. */
  cidr: string;
  port: number;
  proto: 'any' | Proto;
  accountcode: string;
  cardId: number | undefined;
  tag: string;
  /** 2 for a specific port + 1 for a specific proto: higher wins at equal prefix. */
  rank: number;
}

export interface AddressMatch {
  accountcode: string;
  cardId: number | undefined;
  entry: AddressEntry;
}

export interface RejectedRow {
  id: string;
  reason: string;
}

export interface BuildResult {
  table: AddressTable;
  rejected: RejectedRow[];
  /** Same prefix, port and proto but a different account: the lowest (grp, id) wins; worth a warning. */
  conflicts: Array<{ cidr: string; ids: string[] }>;
}

function compareEntries(a: AddressEntry, b: AddressEntry): number {
  if (a.rank !== b.rank) return b.rank - a.rank;
  if (a.grp !== b.grp) return a.grp - b.grp;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

interface Ctx {
  port: number;
  proto: Proto;
}

function accepts(e: AddressEntry, c: Ctx): boolean {
  return (e.port === 0 || e.port === c.port) && (e.proto === 'any' || e.proto === c.proto);
}

function toInt(v: unknown): number {
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d+$/.test(v.trim()) ? Number(v.trim()) : NaN;
  return Number.isSafeInteger(n) ? n : NaN;
}

export class AddressTable {
  private constructor(private readonly table: PrefixTable<AddressEntry>, readonly loadedAt: number) {}

  static empty(): AddressTable {
    return new AddressTable(new PrefixTable<AddressEntry>([]), 0);
  }

  /** Builds a table from view rows; bad rows are returned in `rejected`, never thrown. */
  static build(rows: readonly AddressRow[], opts: { groups?: readonly number[]; now?: number } = {}): BuildResult {
    const groups = opts.groups && opts.groups.length > 0 ? new Set(opts.groups) : undefined;
    const rejected: RejectedRow[] = [];
    const entries: Array<{ prefix: Prefix; value: AddressEntry }> = [];
    for (const r of rows) {
      const id = String(r.id);
      const grp = toInt(r.grp);
      if (Number.isNaN(grp)) { rejected.push({ id, reason: `bad grp ${String(r.grp)}` }); continue; }
      if (groups && !groups.has(grp)) continue;
      const ipText = typeof r.ip_addr === 'string' ? r.ip_addr.trim() : '';
      const len = toInt(r.mask);
      const prefix = makePrefix(ipText, len);
      if (!prefix) { rejected.push({ id, reason: `bad address ${ipText}/${String(r.mask)}` }); continue; }
      const port = toInt(r.port);
      if (Number.isNaN(port) || port > 65535) { rejected.push({ id, reason: `bad port ${String(r.port)}` }); continue; }
      const proto = String(r.proto ?? 'any').trim().toLowerCase();
      if (proto !== 'any' && proto !== 'udp' && proto !== 'tcp') { rejected.push({ id, reason: `bad proto ${proto}` }); continue; }
      const accountcode = typeof r.accountcode === 'string' ? r.accountcode.trim() : '';
      if (accountcode === '') { rejected.push({ id, reason: 'empty accountcode' }); continue; }
      const cardId = r.card_id === null || r.card_id === undefined ? undefined : toInt(r.card_id);
      const shown = prefix.ip.v === 4 ? ipText.replace(/^::ffff:/i, '') : ipText;
      entries.push({
        prefix,
        value: {
          id, grp, port, proto, accountcode,
          cidr: `${shown}/${prefix.len}`,
          cardId: cardId === undefined || Number.isNaN(cardId) ? undefined : cardId,
          tag: r.tag ?? '',
          rank: (port !== 0 ? 2 : 0) + (proto !== 'any' ? 1 : 0),
        },
      });
    }
    const conflicts: BuildResult['conflicts'] = [];
    const seen = new Map<string, AddressEntry[]>();
    for (const { prefix, value } of entries) {
      const key = `${prefix.ip.v}|${prefix.ip.n}|${prefix.len}|${value.port}|${value.proto}`;
      const list = seen.get(key);
      if (list) list.push(value);
      else seen.set(key, [value]);
    }
    for (const list of seen.values()) {
      if (list.length > 1 && new Set(list.map((e) => e.accountcode)).size > 1) {
        conflicts.push({ cidr: list[0]!.cidr, ids: list.map((e) => e.id).sort() });
      }
    }
    return { table: new AddressTable(new PrefixTable(entries, compareEntries), opts.now ?? Date.now()), rejected, conflicts };
  }

  get size(): number {
    return this.table.size;
  }

  /** The most specific row matching the source, or undefined. `ip` may be text or already parsed. */
  match(ip: string | ParsedIp, port: number, proto: Proto): AddressMatch | undefined {
    const parsed = typeof ip === 'string' ? parseIp(ip) : ip;
    if (!parsed) return undefined;
    const e = this.table.lookup(parsed, accepts, { port, proto });
    return e ? { accountcode: e.accountcode, cardId: e.cardId, entry: e } : undefined;
  }
}
