// SIP URI (RFC 3261 §19.1) parsing and formatting. One pass over the string, no regexes.
// Strings are "wire strings": latin1-decoded bytes, so every char is one byte of the message.

export interface SipUri {
  /** Lower-case scheme: 'sip', 'sips', 'tel', ... */
  scheme: string;
  /** User part as written (still %-escaped). Undefined when the URI has no userinfo. */
  user: string | undefined;
  password: string | undefined;
  /** Host without IPv6 brackets ('::1', 'example.com', '192.0.2.1'). '' for non-SIP schemes. */
  host: string;
  /** True when the host was an IPv6 reference ('[...]'). */
  ipv6: boolean;
  port: number | undefined;
  /** URI parameters, names lower-cased; a parameter without '=' has value null (e.g. lr). Read-only (shared when empty). */
  params: ReadonlyMap<string, string | null>;
  /** URI headers (after '?'), names as written. Read-only (shared when empty). */
  headers: ReadonlyMap<string, string>;
  /** For schemes other than sip/sips: everything after 'scheme:'. */
  opaque: string | undefined;
  /** The text this URI was parsed from. */
  raw: string;
}

// Shared empty maps: most URIs have no headers and many no parameters; never mutated.
const NO_PARAMS: ReadonlyMap<string, string | null> = new Map();
const NO_HEADERS: ReadonlyMap<string, string> = new Map();

const enum C {
  TAB = 9, SP = 32, DQUOTE = 34, PERCENT = 37, AMP = 38, PLUS = 43, COMMA = 44, DASH = 45, DOT = 46,
  COLON = 58, SEMI = 59, LT = 60, EQ = 61, GT = 62, QM = 63, AT = 64, LBRACK = 91, RBRACK = 93, US = 95,
}

function isAlpha(c: number): boolean { return (c >= 65 && c <= 90) || (c >= 97 && c <= 122); }
function isDigit(c: number): boolean { return c >= 48 && c <= 57; }
function isHex(c: number): boolean { return isDigit(c) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102); }

/** Characters that never appear unescaped inside a URI: controls, space, DEL, '"', '<', '>', and 8-bit bytes. */
function isUriChar(c: number): boolean {
  return c > 32 && c < 127 && c !== C.DQUOTE && c !== C.LT && c !== C.GT;
}

/** Host name / IPv4 characters (lenient: '_' is seen in the wild). */
function isHostChar(c: number): boolean {
  return isAlpha(c) || isDigit(c) || c === C.DASH || c === C.DOT || c === C.US;
}

/** Parses a decimal port (1..5 digits, <= 65535) in s[from, to); -1 when invalid. */
export function parsePort(s: string, from: number, to: number): number {
  if (to <= from || to - from > 5) return -1;
  let n = 0;
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (!isDigit(c)) return -1;
    n = n * 10 + (c - 48);
  }
  return n <= 65535 ? n : -1;
}

/** Validates an IPv6 reference body (between the brackets): hex digits, ':' and '.' (embedded IPv4). */
function isIpv6Body(s: string, from: number, to: number): boolean {
  if (to - from < 2 || to - from > 45) return false;
  let colons = 0;
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (c === C.COLON) colons++;
    else if (!isHex(c) && c !== C.DOT) return false;
  }
  return colons >= 2;
}

/** Parses `;name[=value]` pairs in s[from, to) into a map with lower-cased names. Returns null on an empty name. */
export function parseUriParams(s: string, from: number, to: number, into: Map<string, string | null>): boolean {
  let i = from;
  while (i < to) {
    // s[i] is ';'
    let j = i + 1;
    let eq = -1;
    while (j < to && s.charCodeAt(j) !== C.SEMI) {
      if (eq < 0 && s.charCodeAt(j) === C.EQ) eq = j;
      j++;
    }
    const nameEnd = eq < 0 ? j : eq;
    if (nameEnd === i + 1) return false;
    const name = s.slice(i + 1, nameEnd).toLowerCase();
    into.set(name, eq < 0 ? null : s.slice(eq + 1, j));
    i = j;
  }
  return true;
}

function validChars(s: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (!isUriChar(s.charCodeAt(i))) return false;
  return true;
}

/** Parses a URI; null when it is not a well-formed absolute URI. Never throws. */
export function parseUri(raw: string): SipUri | null {
  const len = raw.length;
  if (len === 0 || len > 4096) return null;
  // scheme
  let i = 0;
  if (!isAlpha(raw.charCodeAt(0))) return null;
  while (i < len) {
    const c = raw.charCodeAt(i);
    if (c === C.COLON) break;
    if (!(isAlpha(c) || isDigit(c) || c === C.PLUS || c === C.DASH || c === C.DOT)) return null;
    i++;
  }
  if (i >= len || i === 0) return null;
  const scheme = raw.slice(0, i).toLowerCase();
  const start = i + 1;
  if (!validChars(raw, start, len) || start >= len) return null;
  const uri: SipUri = {
    scheme, user: undefined, password: undefined, host: '', ipv6: false, port: undefined,
    params: NO_PARAMS, headers: NO_HEADERS, opaque: undefined, raw,
  };
  if (scheme !== 'sip' && scheme !== 'sips') {
    uri.opaque = raw.slice(start);
    return uri;
  }
  // userinfo: '@' never appears unescaped in params or headers, but '?' and ';' may appear in the user part
  let hp = start;
  const at = raw.indexOf('@', start);
  if (at >= 0) {
    if (at === start) return null;
    const colon = raw.indexOf(':', start);
    if (colon >= 0 && colon < at) {
      uri.user = raw.slice(start, colon);
      uri.password = raw.slice(colon + 1, at);
      if (colon === start) return null;
    } else {
      uri.user = raw.slice(start, at);
    }
    if (raw.indexOf('@', at + 1) >= 0) return null;
    hp = at + 1;
  }
  // headers
  let end = raw.indexOf('?', hp);
  if (end < 0) end = len;
  else {
    const headers = new Map<string, string>();
    if (!parseUriHeaders(raw, end + 1, len, headers)) return null;
    uri.headers = headers;
  }
  // host
  let p = hp;
  if (raw.charCodeAt(p) === C.LBRACK) {
    const rb = raw.indexOf(']', p);
    if (rb < 0 || rb > end || !isIpv6Body(raw, p + 1, rb)) return null;
    uri.host = raw.slice(p + 1, rb);
    uri.ipv6 = true;
    p = rb + 1;
  } else {
    while (p < end && isHostChar(raw.charCodeAt(p))) p++;
    if (p === hp) return null;
    uri.host = raw.slice(hp, p);
  }
  // port
  if (p < end && raw.charCodeAt(p) === C.COLON) {
    let q = p + 1;
    while (q < end && isDigit(raw.charCodeAt(q))) q++;
    const port = parsePort(raw, p + 1, q);
    if (port < 0) return null;
    uri.port = port;
    p = q;
  }
  if (p < end && raw.charCodeAt(p) !== C.SEMI) return null;
  if (p < end) {
    const params = new Map<string, string | null>();
    if (!parseUriParams(raw, p, end, params)) return null;
    uri.params = params;
  }
  return uri;
}

function parseUriHeaders(s: string, from: number, to: number, into: Map<string, string>): boolean {
  let i = from;
  while (i < to) {
    let j = s.indexOf('&', i);
    if (j < 0 || j > to) j = to;
    const eq = s.indexOf('=', i);
    if (eq < 0 || eq >= j || eq === i) return false;
    into.set(s.slice(i, eq), s.slice(eq + 1, j));
    i = j + 1;
  }
  return true;
}

/** Host as it appears in a URI or Via: IPv6 in brackets. */
export function formatHost(host: string): string {
  return host.indexOf(':') >= 0 && host.charCodeAt(0) !== C.LBRACK ? `[${host}]` : host;
}

/** Serialises a URI from its parts (used after editing parts; unedited URIs keep `raw`). */
export function formatUri(u: SipUri): string {
  if (u.opaque !== undefined) return `${u.scheme}:${u.opaque}`;
  let s = `${u.scheme}:`;
  if (u.user !== undefined) s += u.password !== undefined ? `${u.user}:${u.password}@` : `${u.user}@`;
  s += u.ipv6 ? `[${u.host}]` : u.host;
  if (u.port !== undefined) s += `:${u.port}`;
  for (const [k, v] of u.params) s += v === null ? `;${k}` : `;${k}=${v}`;
  if (u.headers.size > 0) {
    let first = true;
    for (const [k, v] of u.headers) { s += `${first ? '?' : '&'}${k}=${v}`; first = false; }
  }
  return s;
}

/** Percent-decodes a URI component (user part, header value); invalid escapes are kept as written. */
export function unescapeUri(s: string): string {
  if (s.indexOf('%') < 0) return s;
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === C.PERCENT && i + 2 < s.length && isHex(s.charCodeAt(i + 1)) && isHex(s.charCodeAt(i + 2))) {
      out += String.fromCharCode(parseInt(s.slice(i + 1, i + 3), 16));
      i += 2;
    } else out += s[i];
  }
  return out;
}

/** The transport a URI asks for ('udp' | 'tcp' | 'tls' | ...), lower-cased; undefined when absent. */
export function uriTransport(u: SipUri): string | undefined {
  const t = u.params.get('transport');
  return t ? t.toLowerCase() : undefined;
}

/** RFC 3261 §19.1.4 comparison, simplified to what routing needs: scheme, user, host (case-insensitive), port. */
export function sameAddress(a: SipUri, b: SipUri): boolean {
  return a.scheme === b.scheme && a.user === b.user && a.host.toLowerCase() === b.host.toLowerCase()
    && (a.port ?? 0) === (b.port ?? 0);
}
