// IP addresses and longest-prefix match. Prefixes are kept in one hash table per prefix length, and a
// lookup walks the lengths that exist from longest to shortest: a handful of Map probes per decision,
// independent of row order. IPv4-mapped IPv6 (::ffff:a.b.c.d) is IPv4 everywhere.

export type ParsedIp = { readonly v: 4; readonly n: number } | { readonly v: 6; readonly n: bigint };

const V6_ALL = (1n << 128n) - 1n;

/** Parses a dotted-quad IPv4 address strictly (no leading zeros beyond "0", no octal, no shorthand). */
function parseV4(s: string, start: number, end: number): number | undefined {
  let n = 0;
  let parts = 0;
  let i = start;
  while (i <= end) {
    let octet = 0;
    let digits = 0;
    const first = i;
    while (i < end) {
      const c = s.charCodeAt(i);
      if (c < 48 || c > 57) break;
      octet = octet * 10 + (c - 48);
      digits++;
      i++;
    }
    if (digits === 0 || digits > 3 || octet > 255 || (digits > 1 && s.charCodeAt(first) === 48)) return undefined;
    n = n * 256 + octet;
    parts++;
    if (i === end) break;
    if (s.charCodeAt(i) !== 46 || parts === 4) return undefined;
    i++;
    if (i === end) return undefined;
  }
  return parts === 4 ? n : undefined;
}

function parseV6(s: string): bigint | undefined {
  let str = s;
  const zone = str.indexOf('%');
  if (zone >= 0) str = str.slice(0, zone);
  if (str.length < 2 || str.length > 45) return undefined;
  const dbl = str.indexOf('::');
  if (dbl >= 0 && str.indexOf('::', dbl + 1) >= 0) return undefined;
  const groups: number[] = [];
  const parseSide = (part: string, allowV4Tail: boolean): boolean => {
    if (part === '') return true;
    const items = part.split(':');
    for (let k = 0; k < items.length; k++) {
      const it = items[k]!;
      if (allowV4Tail && k === items.length - 1 && it.includes('.')) {
        const v4 = parseV4(it, 0, it.length);
        if (v4 === undefined) return false;
        groups.push(Math.floor(v4 / 65536), v4 % 65536);
        continue;
      }
      if (it.length === 0 || it.length > 4) return false;
      let g = 0;
      for (let j = 0; j < it.length; j++) {
        const c = it.charCodeAt(j);
        let d: number;
        if (c >= 48 && c <= 57) d = c - 48;
        else if (c >= 97 && c <= 102) d = c - 87;
        else if (c >= 65 && c <= 70) d = c - 55;
        else return false;
        g = g * 16 + d;
      }
      groups.push(g);
    }
    return true;
  };
  let head: number[];
  let tailCount: number;
  if (dbl >= 0) {
    if (!parseSide(str.slice(0, dbl), false)) return undefined;
    head = groups.splice(0);
    if (!parseSide(str.slice(dbl + 2), true)) return undefined;
    tailCount = groups.length;
    if (head.length + tailCount > 7) return undefined;
    const zeros = new Array<number>(8 - head.length - tailCount).fill(0);
    groups.unshift(...head, ...zeros);
  } else {
    if (!parseSide(str, true)) return undefined;
    if (groups.length !== 8) return undefined;
  }
  let n = 0n;
  for (const g of groups) n = (n << 16n) | BigInt(g);
  return n;
}

/** IPv4 or IPv6 text → number; IPv4-mapped IPv6 comes back as IPv4. undefined when it is not an address. */
export function parseIp(s: string): ParsedIp | undefined {
  if (typeof s !== 'string' || s.length === 0 || s.length > 64) return undefined;
  if (s.indexOf(':') < 0) {
    const n = parseV4(s, 0, s.length);
    return n === undefined ? undefined : { v: 4, n };
  }
  let str = s;
  if (str.charCodeAt(0) === 91 && str.charCodeAt(str.length - 1) === 93) str = str.slice(1, -1);
  const n = parseV6(str);
  if (n === undefined) return undefined;
  if (n >> 32n === 0xffffn) return { v: 4, n: Number(n & 0xffffffffn) };
  return { v: 6, n };
}

export function formatIp(ip: ParsedIp): string {
  if (ip.v === 4) return `${ip.n >>> 24}.${(ip.n >>> 16) & 255}.${(ip.n >>> 8) & 255}.${ip.n & 255}`;
  const parts: string[] = [];
  for (let i = 7; i >= 0; i--) parts.push(Number((ip.n >> BigInt(i * 16)) & 0xffffn).toString(16));
  return parts.join(':');
}

const V4_MASKS: number[] = Array.from({ length: 33 }, (_, len) => (len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0));
const V6_MASKS: bigint[] = Array.from({ length: 129 }, (_, len) => (len === 0 ? 0n : (V6_ALL << BigInt(128 - len)) & V6_ALL));

export interface Prefix {
  ip: ParsedIp;
  len: number;
}

/**
 * Normalises address + prefix length: an IPv4-mapped IPv6 prefix becomes IPv4 (len - 96), host bits are
 * cleared. undefined when the length does not fit the family.
 */
export function makePrefix(ipText: string, len: number): Prefix | undefined {
  const ip = parseIp(ipText);
  if (!ip || !Number.isInteger(len) || len < 0) return undefined;
  const mappedText = ip.v === 4 && ipText.indexOf(':') >= 0;
  let l = len;
  if (mappedText) {
    if (l > 128) return undefined;
    l = l >= 96 ? l - 96 : -1;
    if (l < 0) return undefined;
  }
  if (ip.v === 4) {
    if (l > 32) return undefined;
    return { ip: { v: 4, n: (ip.n & V4_MASKS[l]!) >>> 0 }, len: l };
  }
  if (l > 128) return undefined;
  return { ip: { v: 6, n: ip.n & V6_MASKS[l]! }, len: l };
}

/** "10.0.0.0/8", "2001:db8::/32" or a bare address (a host prefix). */
export function parseCidr(text: string): Prefix | undefined {
  const slash = text.indexOf('/');
  if (slash < 0) {
    const ip = parseIp(text.trim());
    if (!ip) return undefined;
    return { ip, len: ip.v === 4 ? 32 : 128 };
  }
  const lenText = text.slice(slash + 1).trim();
  if (!/^\d{1,3}$/.test(lenText)) return undefined;
  return makePrefix(text.slice(0, slash).trim(), Number(lenText));
}

/**
 * A longest-prefix-match table. Values at the same prefix are tried in the order given by `compare`
 * (best first) and the first one `accept`ed wins; if none is accepted, shorter prefixes are tried.
 * Immutable once built, so a reload builds a new one and swaps the reference.
 */
export class PrefixTable<T> {
  private readonly v4 = new Map<number, Map<number, T[]>>();
  private readonly v6 = new Map<number, Map<bigint, T[]>>();
  private v4Lengths: number[] = [];
  private v6Lengths: number[] = [];
  private count = 0;

  constructor(entries: Iterable<{ prefix: Prefix; value: T }>, compare?: (a: T, b: T) => number) {
    for (const { prefix, value } of entries) {
      if (prefix.ip.v === 4) {
        let byLen = this.v4.get(prefix.len);
        if (!byLen) this.v4.set(prefix.len, (byLen = new Map()));
        const bucket = byLen.get(prefix.ip.n);
        if (bucket) bucket.push(value);
        else byLen.set(prefix.ip.n, [value]);
      } else {
        let byLen = this.v6.get(prefix.len);
        if (!byLen) this.v6.set(prefix.len, (byLen = new Map()));
        const bucket = byLen.get(prefix.ip.n);
        if (bucket) bucket.push(value);
        else byLen.set(prefix.ip.n, [value]);
      }
      this.count++;
    }
    if (compare) {
      for (const byLen of this.v4.values()) for (const b of byLen.values()) b.sort(compare);
      for (const byLen of this.v6.values()) for (const b of byLen.values()) b.sort(compare);
    }
    this.v4Lengths = [...this.v4.keys()].sort((a, b) => b - a);
    this.v6Lengths = [...this.v6.keys()].sort((a, b) => b - a);
  }

  get size(): number {
    return this.count;
  }

  /** The best value for ip that `accept` takes (ctx is passed through so callers need no closure), or undefined. */
  lookup<C>(ip: ParsedIp, accept?: (value: T, ctx: C) => boolean, ctx?: C): T | undefined {
    if (ip.v === 4) {
      for (const len of this.v4Lengths) {
        const bucket = this.v4.get(len)!.get((ip.n & V4_MASKS[len]!) >>> 0);
        if (bucket) {
          for (const v of bucket) if (!accept || accept(v, ctx as C)) return v;
        }
      }
      return undefined;
    }
    for (const len of this.v6Lengths) {
      const bucket = this.v6.get(len)!.get(ip.n & V6_MASKS[len]!);
      if (bucket) {
        for (const v of bucket) if (!accept || accept(v, ctx as C)) return v;
      }
    }
    return undefined;
  }
}
