// Header names and header-value grammars (RFC 3261 §7.3, §20, §25): Via, name-addr, CSeq, parameters,
// comma-separated lists. Hand-written scanners; nothing here throws on bad input, it returns null.
import { parsePort, parseUri, type SipUri } from './uri.js';

/** Compact forms (RFC 3261 §7.3.3 and later RFCs) → canonical lower-case name. */
const COMPACT: ReadonlyMap<string, string> = new Map([
  ['i', 'call-id'], ['f', 'from'], ['t', 'to'], ['v', 'via'], ['m', 'contact'], ['l', 'content-length'],
  ['c', 'content-type'], ['k', 'supported'], ['s', 'subject'], ['e', 'content-encoding'], ['o', 'event'],
  ['u', 'allow-events'], ['r', 'refer-to'], ['b', 'referred-by'], ['x', 'session-expires'], ['y', 'identity'],
  ['a', 'accept-contact'], ['j', 'reject-contact'], ['d', 'request-disposition'], ['n', 'identity-info'],
]);

/** Preferred spelling when the gateway writes a header. */
const PRETTY: ReadonlyMap<string, string> = new Map([
  ['call-id', 'Call-ID'], ['cseq', 'CSeq'], ['www-authenticate', 'WWW-Authenticate'], ['mime-version', 'MIME-Version'],
]);

// Common spellings resolved without lower-casing (a frozen table, not a cache).
const KNOWN: ReadonlyMap<string, string> = (() => {
  const m = new Map<string, string>();
  const names = ['Via', 'From', 'To', 'Call-ID', 'Call-Id', 'CSeq', 'Cseq', 'Contact', 'Max-Forwards', 'Content-Length',
    'Content-Type', 'Route', 'Record-Route', 'User-Agent', 'Server', 'Allow', 'Supported', 'Expires', 'Authorization',
    'Proxy-Authorization', 'WWW-Authenticate', 'Proxy-Authenticate', 'Require', 'Proxy-Require', 'Accept', 'Date',
    'P-Asserted-Identity', 'P-Accountcode', 'Session-Expires', 'Min-SE', 'Content-Disposition', 'Reason', 'Event',
    'Allow-Events', 'Subject', 'Organization', 'Timestamp', 'Unsupported', 'Warning', 'Retry-After', 'Privacy'];
  for (const n of names) { m.set(n, n.toLowerCase()); m.set(n.toLowerCase(), n.toLowerCase()); }
  for (const [k, v] of COMPACT) { m.set(k, v); m.set(k.toUpperCase(), v); }
  return m;
})();

// Known canonical names grouped by length, for canonicalNameAt (no slicing, no hashing on the hot path).
const BY_LENGTH: ReadonlyArray<ReadonlyArray<string>> = (() => {
  const names = ['via', 'from', 'to', 'call-id', 'cseq', 'contact', 'max-forwards', 'content-length', 'content-type',
    'route', 'record-route', 'user-agent', 'server', 'allow', 'supported', 'expires', 'authorization',
    'proxy-authorization', 'www-authenticate', 'proxy-authenticate', 'require', 'proxy-require', 'accept', 'date',
    'p-asserted-identity', 'p-preferred-identity', 'p-accountcode', 'session-expires', 'min-se', 'allow-events', 'event',
    'subject', 'privacy', 'reason', 'x-a2b-callref', 'content-disposition', 'accept-language', 'accept-encoding',
    'organization', 'timestamp', 'unsupported', 'warning', 'retry-after', 'remote-party-id', 'diversion', 'rseq', 'rack'];
  const out: string[][] = [];
  for (const n of names) (out[n.length] ??= []).push(n);
  return out;
})();

/**
 * canonicalName for the name at s[from, to) without slicing it first: known names are matched case-insensitively
 * against constants (which later compare by pointer). The name must already be validated as a token.
 */
export function canonicalNameAt(s: string, from: number, to: number): string {
  const len = to - from;
  if (len === 1) {
    const c = s[from]!;
    return COMPACT.get(c) ?? COMPACT.get(c.toLowerCase()) ?? c.toLowerCase();
  }
  const cands = BY_LENGTH[len];
  if (cands !== undefined) {
    for (let k = 0; k < cands.length; k++) {
      const cand = cands[k]!;
      let i = 0;
      // token chars: only 'A'-'Z' map onto another token char under | 0x20 (their lower case)
      while (i < len && (s.charCodeAt(from + i) | 0x20) === cand.charCodeAt(i)) i++;
      if (i === len) return cand;
    }
  }
  return s.slice(from, to).toLowerCase();
}

/** Canonical lower-case full name of a header (compact forms expanded). */
export function canonicalName(name: string): string {
  const k = KNOWN.get(name);
  if (k !== undefined) return k;
  const l = name.toLowerCase();
  if (l.length === 1) return COMPACT.get(l) ?? l;
  return l;
}

/** The spelling to write for a canonical name ('call-id' → 'Call-ID', 'p-accountcode' → 'P-Accountcode'). */
export function prettyName(lname: string): string {
  const p = PRETTY.get(lname);
  if (p !== undefined) return p;
  let out = '';
  let up = true;
  for (let i = 0; i < lname.length; i++) {
    const ch = lname[i]!;
    out += up ? ch.toUpperCase() : ch;
    up = ch === '-';
  }
  return out;
}

/** Headers whose values may contain unquoted commas, so they are never split into a list. */
const NOT_LISTS: ReadonlySet<string> = new Set([
  'www-authenticate', 'authorization', 'proxy-authenticate', 'proxy-authorization', 'date', 'user-agent', 'server',
  'subject', 'organization', 'call-id', 'cseq', 'from', 'to', 'content-length', 'max-forwards', 'retry-after',
  'timestamp', 'content-type', 'expires', 'min-expires', 'priority', 'mime-version', 'reply-to', 'content-disposition',
]);

export function isListHeader(lname: string): boolean {
  return !NOT_LISTS.has(lname);
}

const enum C {
  TAB = 9, SP = 32, DQUOTE = 34, COMMA = 44, SLASH = 47, COLON = 58, SEMI = 59, LT = 60, EQ = 61, GT = 62,
  LBRACK = 91, BSLASH = 92, RBRACK = 93,
}

function isWs(c: number): boolean { return c === C.SP || c === C.TAB || c === 13 || c === 10; }

/** Token characters (RFC 3261 §25.1). */
export function isTokenChar(c: number): boolean {
  if ((c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122)) return true;
  // - . ! % * _ + ` ' ~
  return c === 45 || c === 46 || c === 33 || c === 37 || c === 42 || c === 95 || c === 43 || c === 96 || c === 39 || c === 126;
}

export function isToken(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) if (!isTokenChar(s.charCodeAt(i))) return false;
  return true;
}

/** Index just past the quoted string starting at s[i] === '"', or -1 when it is unterminated. */
export function skipQuoted(s: string, i: number, end = s.length): number {
  for (let j = i + 1; j < end; j++) {
    const c = s.charCodeAt(j);
    if (c === C.BSLASH) j++;
    else if (c === C.DQUOTE) return j + 1;
  }
  return -1;
}

/** Removes the quotes and backslash escapes of a quoted-string. */
export function unquote(s: string): string {
  if (s.length < 2 || s.charCodeAt(0) !== C.DQUOTE) return s;
  const inner = s.slice(1, -1);
  if (inner.indexOf('\\') < 0) return inner;
  let out = '';
  for (let i = 0; i < inner.length; i++) {
    if (inner.charCodeAt(i) === C.BSLASH && i + 1 < inner.length) i++;
    out += inner[i];
  }
  return out;
}

/** Quotes a display name for writing. */
export function quote(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === C.DQUOTE || c === C.BSLASH) out += '\\';
    if (c === 13 || c === 10) continue;
    out += s[i];
  }
  return out + '"';
}

/**
 * Splits a header value at top-level commas: commas inside quoted strings and <...> do not split.
 * Items are trimmed and empty items dropped. Returns null when a quote or '<' is unbalanced.
 */
export function splitList(v: string): string[] | null {
  const out: string[] = [];
  let start = 0;
  const len = v.length;
  let i = 0;
  while (i < len) {
    const c = v.charCodeAt(i);
    if (c === C.DQUOTE) {
      const j = skipQuoted(v, i, len);
      if (j < 0) return null;
      i = j;
      continue;
    }
    if (c === C.LT) {
      const j = v.indexOf('>', i + 1);
      if (j < 0) return null;
      i = j + 1;
      continue;
    }
    if (c === C.COMMA) {
      const item = v.slice(start, i).trim();
      if (item.length > 0) out.push(item);
      start = i + 1;
    }
    i++;
  }
  const item = v.slice(start).trim();
  if (item.length > 0) out.push(item);
  return out;
}

/**
 * Parses header parameters `*( SEMI name [= token|host|quoted-string] )` from s[i]; values keep their quotes.
 * Returns the map, or null when malformed. Names are lower-cased.
 */
export function parseParams(s: string, i: number, into: Map<string, string | null>): boolean {
  const len = s.length;
  for (;;) {
    while (i < len && isWs(s.charCodeAt(i))) i++;
    if (i >= len) return true;
    if (s.charCodeAt(i) !== C.SEMI) return false;
    i++;
    while (i < len && isWs(s.charCodeAt(i))) i++;
    const ns = i;
    while (i < len && isTokenChar(s.charCodeAt(i))) i++;
    if (i === ns) return false;
    const name = s.slice(ns, i).toLowerCase();
    while (i < len && isWs(s.charCodeAt(i))) i++;
    if (i < len && s.charCodeAt(i) === C.EQ) {
      i++;
      while (i < len && isWs(s.charCodeAt(i))) i++;
      if (i < len && s.charCodeAt(i) === C.DQUOTE) {
        const j = skipQuoted(s, i, len);
        if (j < 0) return false;
        into.set(name, s.slice(i, j));
        i = j;
      } else {
        const vs = i;
        // token, host (incl. [v6] and ':')
        while (i < len) {
          const c = s.charCodeAt(i);
          if (isTokenChar(c) || c === C.COLON || c === C.LBRACK || c === C.RBRACK) i++;
          else break;
        }
        if (i === vs) return false;
        into.set(name, s.slice(vs, i));
      }
    } else {
      into.set(name, null);
    }
  }
}

// ---------------------------------------------------------------------------------------------- Via

export interface Via {
  /** 'SIP/2.0' normally. */
  protocol: string;
  /** Upper-case transport: 'UDP', 'TCP', 'TLS', 'SCTP', 'WS', ... */
  transport: string;
  /** sent-by host, IPv6 without brackets. */
  host: string;
  ipv6: boolean;
  port: number | undefined;
  branch: string | undefined;
  received: string | undefined;
  /** rport: undefined when absent, null when present without a value, else the number. */
  rport: number | null | undefined;
  maddr: string | undefined;
  /** All parameters, names lower-cased, values as written. */
  params: Map<string, string | null>;
  /** The via-parm text this was parsed from. */
  raw: string;
}

/** RFC 3261 branch magic cookie. */
export const MAGIC_COOKIE = 'z9hG4bK';

/** Parses one via-parm ('SIP/2.0/UDP host:port;params'); null when malformed. */
export function parseVia(raw: string): Via | null {
  const s = raw;
  const len = s.length;
  let i = 0;
  // 'SIP' '/' '2.0' '/' transport, LWS allowed around the slashes
  let protocol = '';
  let transport = '';
  let tokenEnd = 0;
  for (let f = 0; f < 3; f++) {
    while (i < len && isWs(s.charCodeAt(i))) i++;
    const st = i;
    while (i < len && isTokenChar(s.charCodeAt(i))) i++;
    if (i === st) return null;
    if (f === 0) protocol = s.slice(st, i).toUpperCase();
    else if (f === 1) protocol += `/${s.slice(st, i)}`;
    else transport = s.slice(st, i).toUpperCase();
    tokenEnd = i;
    while (i < len && isWs(s.charCodeAt(i))) i++;
    if (f < 2) {
      if (s.charCodeAt(i) !== C.SLASH) return null;
      i++;
    }
  }
  // LWS is required between the transport and sent-by
  if (i >= len || i === tokenEnd) return null;
  // sent-by
  let host: string;
  let ipv6 = false;
  if (s.charCodeAt(i) === C.LBRACK) {
    const rb = s.indexOf(']', i);
    if (rb < 0) return null;
    host = s.slice(i + 1, rb);
    if (host.length < 2 || host.indexOf(':') < 0) return null;
    for (let k = 0; k < host.length; k++) {
      const c = host.charCodeAt(k);
      if (!((c >= 48 && c <= 58) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102) || c === 46)) return null;
    }
    ipv6 = true;
    i = rb + 1;
  } else {
    const hs = i;
    while (i < len) {
      const c = s.charCodeAt(i);
      if ((c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 45 || c === 46 || c === 95) i++;
      else break;
    }
    if (i === hs) return null;
    host = s.slice(hs, i);
  }
  while (i < len && isWs(s.charCodeAt(i))) i++;
  let port: number | undefined;
  if (i < len && s.charCodeAt(i) === C.COLON) {
    i++;
    while (i < len && isWs(s.charCodeAt(i))) i++;
    const ps = i;
    while (i < len && s.charCodeAt(i) >= 48 && s.charCodeAt(i) <= 57) i++;
    const p = parsePort(s, ps, i);
    if (p < 0) return null;
    port = p;
  }
  const params = new Map<string, string | null>();
  if (!parseParams(s, i, params)) return null;
  let rport: number | null | undefined;
  if (params.has('rport')) {
    const rv = params.get('rport');
    if (rv === null || rv === undefined) rport = null;
    else {
      const p = parsePort(rv, 0, rv.length);
      if (p < 0) return null;
      rport = p;
    }
  }
  const branch = params.get('branch');
  const received = params.get('received');
  const maddr = params.get('maddr');
  if (branch === null || received === null || maddr === null) return null;
  return { protocol, transport, host, ipv6, port, branch, received, rport, maddr, params, raw };
}

/** Writes a Via value: 'SIP/2.0/UDP host:port;branch=...'. */
export function formatVia(transport: string, host: string, port: number | undefined, params: string): string {
  const h = host.indexOf(':') >= 0 && host.charCodeAt(0) !== C.LBRACK ? `[${host}]` : host;
  return `SIP/2.0/${transport.toUpperCase()} ${h}${port !== undefined ? `:${port}` : ''}${params}`;
}

// ---------------------------------------------------------------------------------------------- name-addr

export interface NameAddr {
  /** Display name without quotes/escapes (wire string); undefined when absent. */
  displayName: string | undefined;
  /** The URI text between < > (or the bare addr-spec). */
  uriRaw: string;
  /** Parsed URI; null when the URI text is not a valid absolute URI. */
  uri: SipUri | null;
  /** Header parameters (after the URI), names lower-cased. */
  params: Map<string, string | null>;
  tag: string | undefined;
  /** The text this was parsed from. */
  raw: string;
}

/**
 * Parses name-addr / addr-spec with header parameters (From, To, Contact, Route, Record-Route, Refer-To, ...).
 * Returns null when malformed or when the URI does not parse.
 */
export function parseNameAddr(raw: string): NameAddr | null {
  const s = raw;
  const len = s.length;
  let i = 0;
  while (i < len && isWs(s.charCodeAt(i))) i++;
  let displayName: string | undefined;
  let uriRaw: string;
  let after: number;
  const c0 = s.charCodeAt(i);
  if (c0 === C.DQUOTE) {
    const j = skipQuoted(s, i, len);
    if (j < 0) return null;
    displayName = unquote(s.slice(i, j));
    i = j;
    while (i < len && isWs(s.charCodeAt(i))) i++;
    if (s.charCodeAt(i) !== C.LT) return null;
  }
  const lt = c0 === C.DQUOTE ? i : s.indexOf('<', i);
  if (lt >= 0) {
    if (displayName === undefined && lt > i) {
      // display name as tokens: only token chars and LWS
      for (let k = i; k < lt; k++) {
        const c = s.charCodeAt(k);
        if (!isTokenChar(c) && !isWs(c) && c < 128) return null;
      }
      displayName = s.slice(i, lt).trim();
    }
    const gt = s.indexOf('>', lt + 1);
    if (gt < 0) return null;
    uriRaw = s.slice(lt + 1, gt);
    after = gt + 1;
  } else {
    // addr-spec: the URI ends at the first ';' (params belong to the header), and must not contain '?' or ','
    let j = i;
    while (j < len) {
      const c = s.charCodeAt(j);
      if (c === C.SEMI || isWs(c)) break;
      j++;
    }
    uriRaw = s.slice(i, j);
    after = j;
  }
  const uri = uriRaw === '*' ? null : parseUri(uriRaw);
  if (uri === null && uriRaw !== '*') return null;
  const params = new Map<string, string | null>();
  if (!parseParams(s, after, params)) return null;
  const tag = params.get('tag');
  if (tag === null) return null;
  return { displayName, uriRaw, uri, params, tag, raw };
}

// ---------------------------------------------------------------------------------------------- CSeq, numbers

export interface CSeq { seq: number; method: string }

/** 'CSeq: 1 INVITE' → { seq: 1, method: 'INVITE' }; null when malformed (seq must be < 2**31). */
export function parseCSeq(v: string): CSeq | null {
  const len = v.length;
  let i = 0;
  while (i < len && isWs(v.charCodeAt(i))) i++;
  const ns = i;
  let seq = 0;
  while (i < len) {
    const c = v.charCodeAt(i);
    if (c < 48 || c > 57) break;
    seq = seq * 10 + (c - 48);
    i++;
  }
  if (i === ns || i - ns > 10 || seq > 0x7fffffff) return null;
  const ws = i;
  while (i < len && isWs(v.charCodeAt(i))) i++;
  if (i === ws) return null;
  const ms = i;
  while (i < len && isTokenChar(v.charCodeAt(i))) i++;
  if (i === ms) return null;
  const method = v.slice(ms, i);
  while (i < len && isWs(v.charCodeAt(i))) i++;
  if (i !== len) return null;
  return { seq, method };
}

/** A non-negative decimal integer of at most `maxDigits` digits; -1 when malformed. */
export function parseDecimal(v: string, maxDigits: number): number {
  const s = v.trim();
  if (s.length === 0 || s.length > maxDigits) return -1;
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return -1;
    n = n * 10 + (c - 48);
  }
  return n;
}

/**
 * A copy of `s` that does not keep alive the string it was cut from. Values the parser returns are V8 sliced
 * strings of the message's whole header block (13 chars and longer), so a Call-ID kept for the length of a call
 * keeps the INVITE's ~1 KB header block with it. For strings that outlive their message (call state, dialogs).
 */
export function detached(s: string): string {
  // Shorter slices are copied by V8 already; concatenation then slice flattens into a new string of length+1.
  return s.length < 13 ? s : (` ${s}`).slice(1);
}

/** A Call-ID is `word [ "@" word ]`: printable, no whitespace. */
export function isValidCallId(v: string): boolean {
  if (v.length === 0 || v.length > 255) return false;
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c <= 32 || c >= 127) return false;
  }
  return true;
}
