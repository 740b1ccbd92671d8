// HTTP Digest for SIP (RFC 7616 with RFC 8760's SHA-256 for SIP, RFC 2617 MD5): parsing
// Proxy-Authorization, building Proxy-Authenticate, computing and comparing responses.
// The parser never throws: attacker bytes give a `malformed` result, never an exception.
import { hash, timingSafeEqual } from 'node:crypto';

export type DigestAlgorithm = 'MD5' | 'SHA-256';

const HASH_NAME: Record<DigestAlgorithm, string> = { 'MD5': 'md5', 'SHA-256': 'sha256' };
const HEX_LEN: Record<DigestAlgorithm, number> = { 'MD5': 32, 'SHA-256': 64 };

/** Credentials (or a challenge) as parsed: scheme plus lower-cased parameter names. */
export interface ParsedCredentials {
  scheme: string;
  params: Map<string, string>;
  /** A parameter appeared twice: ambiguous, so the credentials are unusable. */
  duplicate: boolean;
}

export type ParseResult = { ok: true; credentials: ParsedCredentials[] } | { ok: false; reason: string };

/** Longer than any honest Proxy-Authorization; refusing early keeps the parser's work bounded. */
export const MAX_AUTH_HEADER = 4096;
const MAX_PARAMS = 32;

function isTchar(c: number): boolean {
  // RFC 9110 tchar: ALPHA DIGIT ! # $ % & ' * + - . ^ _ ` | ~
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) ||
    c === 33 || (c >= 35 && c <= 39) || c === 42 || c === 43 || c === 45 || c === 46 || c === 94 || c === 95 || c === 96 || c === 124 || c === 126;
}

function isWs(c: number): boolean {
  return c === 32 || c === 9 || c === 13 || c === 10;
}

/**
 * Parses one or more Proxy-Authorization values (RFC 7235 credentials syntax). Values are joined with
 * "," first, so a SIP layer that split the header at commas loses nothing. Unquoted values are read
 * leniently up to the next comma or blank (real phones send `uri=sip:...` unquoted).
 */
export function parseCredentials(values: readonly string[]): ParseResult {
  const s = values.join(',');
  if (s.length > MAX_AUTH_HEADER) return { ok: false, reason: 'too long' };
  const out: ParsedCredentials[] = [];
  let i = 0;
  const n = s.length;
  const skipWs = (): void => { while (i < n && isWs(s.charCodeAt(i))) i++; };
  const readToken = (): string => {
    const start = i;
    while (i < n && isTchar(s.charCodeAt(i))) i++;
    return s.slice(start, i);
  };
  let current: ParsedCredentials | undefined;
  let params = 0;
  while (i < n) {
    skipWs();
    if (i < n && s.charCodeAt(i) === 44) { i++; continue; }
    if (i >= n) break;
    const tokStart = i;
    const tok = readToken();
    if (tok === '') return { ok: false, reason: `unexpected character at ${i}` };
    skipWs();
    if (i < n && s.charCodeAt(i) === 61) {
      // name=value: a parameter of the current credentials.
      if (!current) return { ok: false, reason: 'parameter before scheme' };
      i++;
      skipWs();
      let value: string;
      if (i < n && s.charCodeAt(i) === 34) {
        i++;
        let v = '';
        let closed = false;
        let chunk = i;
        while (i < n) {
          const c = s.charCodeAt(i);
          if (c === 92) {
            v += s.slice(chunk, i);
            if (i + 1 >= n) break;
            v += s[i + 1];
            i += 2;
            chunk = i;
            continue;
          }
          if (c === 34) { v += s.slice(chunk, i); i++; closed = true; break; }
          i++;
        }
        if (!closed) return { ok: false, reason: 'unterminated quoted string' };
        value = v;
      } else {
        const start = i;
        while (i < n) {
          const c = s.charCodeAt(i);
          if (c === 44 || isWs(c) || c === 34) break;
          i++;
        }
        value = s.slice(start, i);
      }
      if (++params > MAX_PARAMS) return { ok: false, reason: 'too many parameters' };
      const name = tok.toLowerCase();
      if (current.params.has(name)) current.duplicate = true;
      else current.params.set(name, value);
      skipWs();
      if (i < n && s.charCodeAt(i) !== 44) return { ok: false, reason: `expected "," at ${i}` };
      continue;
    }
    // A token not followed by "=": a new scheme (the previous credentials, if any, are complete).
    if (i === tokStart + tok.length) {
      // token directly followed by something other than blank/"="/","/end
      if (i < n && s.charCodeAt(i) !== 44) return { ok: false, reason: `unexpected character at ${i}` };
    }
    current = { scheme: tok, params: new Map(), duplicate: false };
    out.push(current);
  }
  return { ok: true, credentials: out };
}

/** Quoted-string for a header value: backslash-escapes `"` and `\`. */
export function quote(s: string): string {
  return `"${s.replace(/[\\"]/g, '\\$&')}"`;
}

export function hashHex(alg: DigestAlgorithm, data: string): string {
  return hash(HASH_NAME[alg], data, 'hex'); // one-shot: no Hash object per call (~1 µs less each)
}

export interface DigestInput {
  algorithm: DigestAlgorithm;
  username: string;
  realm: string;
  password: string;
  method: string;
  uri: string;
  nonce: string;
  nc: string;
  cnonce: string;
  qop: 'auth';
}

/** RFC 7616 §3.4.1 response for qop=auth: KD(H(A1), nonce:nc:cnonce:qop:H(A2)). */
export function computeResponse(d: DigestInput): string {
  const ha1 = hashHex(d.algorithm, `${d.username}:${d.realm}:${d.password}`);
  const ha2 = hashHex(d.algorithm, `${d.method}:${d.uri}`);
  return hashHex(d.algorithm, `${ha1}:${d.nonce}:${d.nc}:${d.cnonce}:${d.qop}:${ha2}`);
}

/** Constant-time comparison of a computed hex digest with the client's (case-insensitive hex). */
export function responsesEqual(expectedHex: string, given: string): boolean {
  const a = Buffer.from(expectedHex, 'latin1');
  const g = given.length === expectedHex.length ? given.toLowerCase() : expectedHex;
  const b = Buffer.from(g, 'latin1');
  // Unequal lengths still run one comparison of the same size, then fail.
  return timingSafeEqual(a, b) && given.length === expectedHex.length;
}

export function parseAlgorithm(s: string | undefined): DigestAlgorithm | undefined {
  if (s === undefined) return 'MD5'; // RFC 2617: absent means MD5
  const u = s.toUpperCase();
  if (u === 'MD5') return 'MD5';
  if (u === 'SHA-256') return 'SHA-256';
  return undefined;
}

/** One Proxy-Authenticate value. */
export function challengeValue(opts: { realm: string; nonce: string; algorithm: DigestAlgorithm; stale?: boolean; opaque?: string }): string {
  let v = `Digest realm=${quote(opts.realm)}, nonce=${quote(opts.nonce)}, algorithm=${opts.algorithm}, qop="auth"`;
  if (opts.opaque !== undefined) v += `, opaque=${quote(opts.opaque)}`;
  if (opts.stale) v += ', stale=true';
  return v;
}

/** The fields a usable qop=auth Digest response must carry, validated; or why it is unusable. */
export interface DigestCredentials {
  username: string;
  realm: string;
  nonce: string;
  uri: string;
  response: string;
  algorithm: DigestAlgorithm;
  qop: 'auth';
  nc: string;
  ncValue: number;
  cnonce: string;
}

const NC_RE = /^[0-9a-fA-F]{8}$/;
const HEX_RE = /^[0-9a-fA-F]+$/;

export function validateDigest(c: ParsedCredentials): { ok: true; value: DigestCredentials } | { ok: false; reason: string } {
  if (c.duplicate) return { ok: false, reason: 'duplicate parameter' };
  const p = c.params;
  const username = p.get('username');
  const realm = p.get('realm');
  const nonce = p.get('nonce');
  const uri = p.get('uri');
  const response = p.get('response');
  if (p.has('userhash') && p.get('userhash')!.toLowerCase() === 'true') return { ok: false, reason: 'userhash not offered' };
  if (username === undefined || username === '') return { ok: false, reason: 'no username' };
  if (realm === undefined || nonce === undefined || uri === undefined || response === undefined) {
    return { ok: false, reason: 'missing realm, nonce, uri or response' };
  }
  const algorithm = parseAlgorithm(p.get('algorithm'));
  if (!algorithm) return { ok: false, reason: 'unsupported algorithm' };
  const qop = p.get('qop');
  if (qop === undefined || qop.toLowerCase() !== 'auth') return { ok: false, reason: 'qop=auth required' };
  const nc = p.get('nc');
  const cnonce = p.get('cnonce');
  if (nc === undefined || !NC_RE.test(nc)) return { ok: false, reason: 'bad nc' };
  if (cnonce === undefined || cnonce === '') return { ok: false, reason: 'no cnonce' };
  if (response.length !== HEX_LEN[algorithm] || !HEX_RE.test(response)) return { ok: false, reason: 'bad response' };
  const ncValue = parseInt(nc, 16);
  if (ncValue === 0) return { ok: false, reason: 'nc must start at 1' };
  return { ok: true, value: { username, realm, nonce, uri, response, algorithm, qop: 'auth', nc, ncValue, cnonce } };
}
