// The SIP message model. A parsed message keeps the bytes it came from; headers are raw lines (offsets into
// those bytes) parsed only when asked for. Edits replace or insert lines; serialising copies untouched runs
// of the original bytes and writes only the edited lines, so a forwarded request is never rebuilt.
//
// Strings are "wire strings": the header block is decoded as latin1, one char per byte, so offsets in the
// strings are byte offsets and unedited bytes go out exactly as they came in. Values given to the edit methods
// are wire strings too (copy a value from one message to another unchanged); convert non-ASCII JS text with
// toWire() (done automatically when a string has characters beyond U+00FF).
import { GwError } from '../errors.js';
import {
  canonicalName, isListHeader, isToken, parseCSeq, parseDecimal, parseNameAddr, parseVia, prettyName, splitList,
  type CSeq, type NameAddr, type Via,
} from './headers.js';
import { parseUri, type SipUri } from './uri.js';

/** One header line. Treat as immutable: edits replace the entry. */
export interface HeaderLine {
  /** The name as written on the wire ('v', 'VIA', 'Via'). */
  readonly name: string;
  /** Canonical lower-case full name ('via'). */
  readonly lname: string;
  /** The value: trimmed, folded lines joined with one space. */
  readonly value: string;
  /** [start, end) of the raw line including its line terminator in the source bytes; start is -1 for lines the gateway wrote. */
  readonly start: number;
  readonly end: number;
}

export type TransportProto = 'udp' | 'tcp';

/** Where a received message came from (set by the transport layer). */
export interface MessageSource {
  proto: TransportProto;
  /** Remote address (IPv6 without brackets) and port. */
  address: string;
  port: number;
  localAddress: string;
  localPort: number;
  /** TCP connection id, for replying on the same connection. */
  connectionId?: number;
}

const CRLF = '\r\n';

// Short strings (header names, most values) are copied by a JS loop: cheaper than a call into C++; long ones use
// Buffer#latin1Write, which skips write()'s argument juggling (falls back to write() if it ever goes away).
type Latin1Writer = { latin1Write?: (s: string, offset: number, length: number) => number };
function latin1Write(out: Buffer, s: string, pos: number): number {
  const n = s.length;
  if (n < 48) {
    for (let i = 0; i < n; i++) out[pos + i] = s.charCodeAt(i);
    return n;
  }
  const w = (out as unknown as Latin1Writer).latin1Write;
  return w !== undefined ? w.call(out, s, pos, s.length) : out.write(s, pos, 'latin1');
}
const EMPTY = Buffer.alloc(0);

/** Converts a JS (UTF-16) string to a wire string (UTF-8 bytes as latin1 chars). ASCII passes through. */
export function toWire(s: string): string {
  for (let i = 0; i < s.length; i++) {
    if (s.charCodeAt(i) > 0x7e) return Buffer.from(s, 'utf8').toString('latin1');
  }
  return s;
}

/** Converts a wire string back to a JS string (for display names and logs). */
export function fromWire(s: string): string {
  for (let i = 0; i < s.length; i++) {
    if (s.charCodeAt(i) > 0x7e) return Buffer.from(s, 'latin1').toString('utf8');
  }
  return s;
}

/**
 * A value written by the gateway. Values are wire strings (what a parsed message returns can be written back
 * unchanged); a string with characters beyond U+00FF can only be JS text and is UTF-8 encoded. CR/LF become spaces
 * so no value can inject a header line.
 */
export function sanitizeValue(value: string): string {
  let v = value;
  for (let i = 0; i < v.length; i++) {
    if (v.charCodeAt(i) > 0xff) { v = toWire(v); break; }
  }
  return v.indexOf('\r') >= 0 || v.indexOf('\n') >= 0 ? v.replace(/[\r\n]+[ \t]*/g, ' ') : v;
}

function newLine(name: string, value: string): HeaderLine {
  if (!isToken(name)) throw new GwError('GW_ERR_SIP_PARSE', `invalid header name ${JSON.stringify(name)}`);
  const lname = canonicalName(name);
  return { name: name.length === 1 || name === lname ? prettyName(lname) : name, lname, value: sanitizeValue(value), start: -1, end: -1 };
}

function fail(what: string): never {
  throw new GwError('GW_ERR_SIP_PARSE', what);
}

export abstract class SipMessage {
  /** Header lines in wire order. Do not mutate entries; use the edit methods. */
  headers: HeaderLine[];
  body: Buffer;
  /** Set by the transport layer on received messages. */
  source: MessageSource | undefined;

  /** Source bytes (null for messages built in code) and the extent of the message in them. */
  protected src: Buffer | null;
  protected msgStart: number;
  protected msgEnd: number;
  /** [start, end) of the start line incl. terminator in src; start -1 once rewritten. */
  protected slStart: number;
  protected slEnd: number;
  private modified: boolean;

  // lazily parsed values (undefined = not parsed yet; null = malformed or absent)
  private cVias: Via[] | null | undefined;
  private cFrom: NameAddr | null | undefined;
  private cTo: NameAddr | null | undefined;
  private cCSeq: CSeq | null | undefined;
  private cRoutes: NameAddr[] | null | undefined;
  private cRecordRoutes: NameAddr[] | null | undefined;
  private cContacts: NameAddr[] | null | undefined;

  protected constructor(headers: HeaderLine[], body: Buffer, src: Buffer | null, msgStart: number, msgEnd: number, slStart: number, slEnd: number) {
    this.headers = headers;
    this.body = body;
    this.src = src;
    this.msgStart = msgStart;
    this.msgEnd = msgEnd;
    this.slStart = slStart;
    this.slEnd = slEnd;
    this.modified = src === null;
    this.source = undefined;
  }

  abstract isRequest(): this is SipRequest;
  isResponse(): this is SipResponse { return !this.isRequest(); }
  /** The start line as a wire string, without terminator. */
  abstract startLine(): string;

  // ------------------------------------------------------------------------------------------ raw access

  /** Values of every line of this header (any spelling, compact form), one entry per line, unsplit. */
  header(name: string): string[] {
    const l = canonicalName(name);
    const out: string[] = [];
    for (const h of this.headers) if (h.lname === l) out.push(h.value);
    return out;
  }

  /** All values of a header: every line, split at top-level commas for list headers. */
  headerValues(name: string): string[] {
    const l = canonicalName(name);
    const list = isListHeader(l);
    const out: string[] = [];
    for (const h of this.headers) {
      if (h.lname !== l) continue;
      if (!list) { out.push(h.value); continue; }
      const parts = splitList(h.value);
      if (parts === null) out.push(h.value);
      else for (const p of parts) out.push(p);
    }
    return out;
  }

  /** First line's value, or undefined. */
  getHeader(name: string): string | undefined {
    const l = canonicalName(name);
    for (const h of this.headers) if (h.lname === l) return h.value;
    return undefined;
  }

  hasHeader(name: string): boolean {
    return this.getHeader(name) !== undefined;
  }

  // ------------------------------------------------------------------------------------------ parsed accessors

  /** Call-ID (mandatory; validated by the parser). */
  get callId(): string {
    return this.getHeader('call-id') ?? fail('Missing Call-ID');
  }

  get cseq(): CSeq { return this.tryCSeq() ?? fail('Bad CSeq'); }
  get from(): NameAddr { return this.tryFrom() ?? fail('Bad From'); }
  get to(): NameAddr { return this.tryTo() ?? fail('Bad To'); }
  /** Every Via value, top first (validated by the parser). */
  get vias(): Via[] { return this.tryVias() ?? fail('Bad Via'); }

  /** The top Via, or undefined when there is none (a response whose last Via we popped). */
  get topVia(): Via | undefined {
    return this.vias[0];
  }

  // Non-throwing forms: null when absent or malformed.
  tryCSeq(): CSeq | null {
    if (this.cCSeq === undefined) {
      const v = this.getHeader('cseq');
      this.cCSeq = v === undefined ? null : parseCSeq(v);
    }
    return this.cCSeq;
  }

  tryFrom(): NameAddr | null {
    if (this.cFrom === undefined) {
      const v = this.getHeader('from');
      this.cFrom = v === undefined ? null : parseNameAddr(v);
    }
    return this.cFrom;
  }

  tryTo(): NameAddr | null {
    if (this.cTo === undefined) {
      const v = this.getHeader('to');
      this.cTo = v === undefined ? null : parseNameAddr(v);
    }
    return this.cTo;
  }

  tryVias(): Via[] | null {
    if (this.cVias === undefined) this.cVias = this.parseList('via', parseVia);
    return this.cVias;
  }

  /** The first value of the first Via line alone (enough to answer even when a later Via is malformed). */
  tryTopVia(): Via | null {
    if (this.cVias) return this.cVias[0] ?? null; // already parsed (the parser validated them all)
    const v = this.getHeader('via');
    if (v === undefined) return null;
    const parts = splitList(v);
    return parts === null || parts.length === 0 ? null : parseVia(parts[0]!);
  }

  /** Route values in order; null when a Route header is malformed. */
  get routes(): NameAddr[] | null {
    if (this.cRoutes === undefined) this.cRoutes = this.parseList('route', parseNameAddr);
    return this.cRoutes;
  }

  /** Record-Route values in order; null when malformed. */
  get recordRoutes(): NameAddr[] | null {
    if (this.cRecordRoutes === undefined) this.cRecordRoutes = this.parseList('record-route', parseNameAddr);
    return this.cRecordRoutes;
  }

  /** Contact values; null when malformed. `Contact: *` gives one entry with uriRaw '*' and uri null. */
  get contacts(): NameAddr[] | null {
    if (this.cContacts === undefined) this.cContacts = this.parseList('contact', parseNameAddr);
    return this.cContacts;
  }

  /** Max-Forwards, undefined when absent (a bad value is rejected by the parser). */
  get maxForwards(): number | undefined {
    const v = this.getHeader('max-forwards');
    if (v === undefined) return undefined;
    const n = parseDecimal(v, 3);
    return n < 0 ? undefined : n;
  }

  /** Content-Length header value, undefined when absent. */
  get contentLength(): number | undefined {
    const v = this.getHeader('content-length');
    if (v === undefined) return undefined;
    const n = parseDecimal(v, 9);
    return n < 0 ? undefined : n;
  }

  private parseList<T>(lname: string, parse: (s: string) => T | null): T[] | null {
    const out: T[] = [];
    for (const h of this.headers) {
      if (h.lname !== lname) continue;
      if (h.value.indexOf(',') < 0) {
        // one value on the line (the common case): no list splitting
        const v = h.value.length > 0 ? parse(h.value) : null;
        if (v === null) return null;
        out.push(v);
        continue;
      }
      const parts = splitList(h.value);
      if (parts === null || parts.length === 0) return null;
      for (const p of parts) {
        const v = parse(p);
        if (v === null) return null;
        out.push(v);
      }
    }
    return out;
  }

  // ------------------------------------------------------------------------------------------ edits

  private touched(lname: string): void {
    this.modified = true;
    switch (lname) {
      case 'via': this.cVias = undefined; break;
      case 'from': this.cFrom = undefined; break;
      case 'to': this.cTo = undefined; break;
      case 'cseq': this.cCSeq = undefined; break;
      case 'route': this.cRoutes = undefined; break;
      case 'record-route': this.cRecordRoutes = undefined; break;
      case 'contact': this.cContacts = undefined; break;
      default: break;
    }
  }

  protected startLineChanged(): void { this.modified = true; this.slStart = -1; }

  /** Appends a header line at the end. */
  addHeader(name: string, value: string): this {
    const h = newLine(name, value);
    this.headers.push(h);
    this.touched(h.lname);
    return this;
  }

  /** Inserts a header line before all others. */
  prependHeader(name: string, value: string): this {
    const h = newLine(name, value);
    this.headers.unshift(h);
    this.touched(h.lname);
    return this;
  }

  /** Removes every line of this header (any case, compact form, repeated or comma-joined). Returns lines removed. */
  removeHeader(name: string): number {
    const l = canonicalName(name);
    const before = this.headers.length;
    this.headers = this.headers.filter((h) => h.lname !== l);
    const n = before - this.headers.length;
    if (n > 0) this.touched(l);
    return n;
  }

  /** Replaces the first line of this header in place (removing any others), or appends it. */
  setHeader(name: string, value: string): this {
    const l = canonicalName(name);
    const idx = this.headers.findIndex((h) => h.lname === l);
    if (idx < 0) return this.addHeader(name, value);
    const old = this.headers[idx]!;
    const h: HeaderLine = { name: old.name, lname: l, value: sanitizeValue(value), start: -1, end: -1 };
    this.headers = this.headers.filter((x, i) => i === idx || x.lname !== l);
    this.headers[this.headers.indexOf(old)] = h;
    this.touched(l);
    return this;
  }

  /** Inserts `name: value` before the first line of the same header, or at `fallback` when there is none. */
  private insertTop(lname: string, name: string, value: string, fallback: number): void {
    let idx = this.headers.findIndex((h) => h.lname === lname);
    if (idx < 0) idx = Math.min(fallback, this.headers.length);
    this.headers.splice(idx, 0, newLine(name, value));
    this.touched(lname);
  }

  /** Removes the first value of a (comma-list) header, keeping the rest of its line. Returns the removed text. */
  private removeFirstValue(lname: string): string | undefined {
    const idx = this.headers.findIndex((h) => h.lname === lname);
    if (idx < 0) return undefined;
    const h = this.headers[idx]!;
    const parts = splitList(h.value);
    if (parts === null || parts.length <= 1) {
      this.headers.splice(idx, 1);
      this.touched(lname);
      return parts === null ? h.value : parts[0] ?? h.value;
    }
    this.headers[idx] = { name: h.name, lname, value: parts.slice(1).join(', '), start: -1, end: -1 };
    this.touched(lname);
    return parts[0];
  }

  /** Adds a Via on top ('SIP/2.0/UDP host:port;branch=z9hG4bK...'). */
  pushVia(value: string): this {
    this.insertTop('via', 'Via', value, 0);
    return this;
  }

  /** Removes the top Via value and returns it parsed (null when it was malformed, undefined when none). */
  popVia(): Via | null | undefined {
    const v = this.removeFirstValue('via');
    return v === undefined ? undefined : parseVia(v);
  }

  /** Rewrites the top Via value (e.g. to add received/rport). */
  replaceTopVia(value: string): this {
    const idx = this.headers.findIndex((h) => h.lname === 'via');
    if (idx < 0) return this.pushVia(value);
    const h = this.headers[idx]!;
    const parts = h.value.indexOf(',') < 0 ? null : splitList(h.value);
    const rest = parts !== null && parts.length > 1 ? `, ${parts.slice(1).join(', ')}` : '';
    this.headers[idx] = { name: h.name, lname: 'via', value: sanitizeValue(value) + rest, start: -1, end: -1 };
    this.touched('via');
    return this;
  }

  /** Adds a Record-Route value on top ('<sip:host;lr>'). */
  prependRecordRoute(value: string): this {
    this.insertTop('record-route', 'Record-Route', value, this.afterVias());
    return this;
  }

  /** Adds a Route value on top. */
  prependRoute(value: string): this {
    this.insertTop('route', 'Route', value, this.afterVias());
    return this;
  }

  /** Removes the first Route value; returns it parsed (null when malformed, undefined when there was none). */
  removeFirstRoute(): NameAddr | null | undefined {
    const v = this.removeFirstValue('route');
    return v === undefined ? undefined : parseNameAddr(v);
  }

  /** Sets Max-Forwards. */
  setMaxForwards(n: number): this {
    return this.setHeader('Max-Forwards', String(n));
  }

  /**
   * Decrements Max-Forwards and returns the new value; when absent adds `ifAbsent` (RFC 3261 §16.6 step 3) and
   * returns it. Check `maxForwards === 0` (→ 483) before calling.
   */
  decrementMaxForwards(ifAbsent = 70): number {
    const cur = this.maxForwards;
    const next = cur === undefined ? ifAbsent : Math.max(0, cur - 1);
    this.setMaxForwards(next);
    return next;
  }

  /** Replaces the body; Content-Length (and Content-Type when given) follow. */
  setBody(body: Buffer | string, contentType?: string): this {
    this.body = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
    this.modified = true;
    if (contentType !== undefined) this.setHeader('Content-Type', contentType);
    return this;
  }

  private afterVias(): number {
    let last = -1;
    for (let i = 0; i < this.headers.length; i++) if (this.headers[i]!.lname === 'via') last = i;
    return last + 1;
  }

  /** A copy that can be edited independently (shares the immutable source bytes and header entries). */
  abstract clone(): SipMessage;

  protected copyInto<T extends SipMessage>(m: T): T {
    m.headers = this.headers.slice();
    m.body = this.body;
    m.src = this.src;
    m.msgStart = this.msgStart;
    m.msgEnd = this.msgEnd;
    m.slStart = this.slStart;
    m.slEnd = this.slEnd;
    m.modified = this.modified;
    m.source = this.source;
    return m;
  }

  // ------------------------------------------------------------------------------------------ serialise

  /** The message as wire bytes. Untouched messages return their original bytes without copying. */
  toBuffer(): Buffer {
    // Content-Length must match the body (streams require it; a changed body changes it).
    let clLines = 0;
    let cl = -1;
    for (const h of this.headers) {
      if (h.lname === 'content-length') { clLines++; cl = parseDecimal(h.value, 9); }
    }
    if (clLines !== 1 || cl !== this.body.length) {
      this.removeHeader('content-length');
      this.headers.push(newLine('Content-Length', String(this.body.length)));
      this.modified = true;
    }
    const src = this.src;
    if (!this.modified && src !== null) return src.subarray(this.msgStart, this.msgEnd);

    const sl = this.slStart < 0 || src === null ? this.startLine() + CRLF : null;
    let total = sl !== null ? sl.length : this.slEnd - this.slStart;
    for (const h of this.headers) total += h.start >= 0 ? h.end - h.start : h.name.length + h.value.length + 4;
    total += 2 + this.body.length;
    const out = Buffer.allocUnsafe(total);
    let pos = sl !== null ? latin1Write(out, sl, 0) : src!.copy(out, 0, this.slStart, this.slEnd);
    let runS = -1;
    let runE = -1;
    for (const h of this.headers) {
      if (h.start >= 0) {
        if (h.start === runE) { runE = h.end; continue; }
        if (runS >= 0) pos += src!.copy(out, pos, runS, runE);
        runS = h.start; runE = h.end;
        continue;
      }
      if (runS >= 0) { pos += src!.copy(out, pos, runS, runE); runS = -1; runE = -1; }
      pos += latin1Write(out, h.name, pos);
      out[pos++] = 58; out[pos++] = 32;
      pos += latin1Write(out, h.value, pos);
      out[pos++] = 13; out[pos++] = 10;
    }
    if (runS >= 0) pos += src!.copy(out, pos, runS, runE);
    out[pos++] = 13; out[pos++] = 10;
    if (this.body.length > 0) pos += this.body.copy(out, pos);
    return pos === total ? out : out.subarray(0, pos);
  }

  /** The message as a JS string (for logs and tests). */
  toString(): string {
    return this.toBuffer().toString('utf8');
  }
}

export class SipRequest extends SipMessage {
  method: string;
  /** Request-URI text as written. */
  uriRaw: string;
  private cUri: SipUri | null | undefined;

  /** @internal use parseMessage() or createRequest() */
  constructor(method: string, uriRaw: string, headers: HeaderLine[], body: Buffer = EMPTY,
    src: Buffer | null = null, msgStart = 0, msgEnd = 0, slStart = -1, slEnd = -1) {
    super(headers, body, src, msgStart, msgEnd, slStart, slEnd);
    this.method = method;
    this.uriRaw = uriRaw;
    this.cUri = undefined;
  }

  isRequest(): this is SipRequest { return true; }

  /** Parsed Request-URI (validated by the parser). */
  get uri(): SipUri { return this.tryUri() ?? fail('Bad Request-URI'); }

  tryUri(): SipUri | null {
    if (this.cUri === undefined) this.cUri = parseUri(this.uriRaw);
    return this.cUri;
  }

  /** Replaces the Request-URI. */
  setUri(uri: string): this {
    this.uriRaw = sanitizeValue(uri).replace(/ /g, '%20');
    this.cUri = undefined;
    this.startLineChanged();
    return this;
  }

  startLine(): string { return `${this.method} ${this.uriRaw} SIP/2.0`; }

  clone(): SipRequest {
    const m = this.copyInto(new SipRequest(this.method, this.uriRaw, []));
    m.cUri = this.cUri;
    return m;
  }
}

export class SipResponse extends SipMessage {
  status: number;
  reason: string;

  /** @internal use parseMessage() or createResponse() */
  constructor(status: number, reason: string, headers: HeaderLine[], body: Buffer = EMPTY,
    src: Buffer | null = null, msgStart = 0, msgEnd = 0, slStart = -1, slEnd = -1) {
    super(headers, body, src, msgStart, msgEnd, slStart, slEnd);
    this.status = status;
    this.reason = reason;
  }

  isRequest(): this is SipRequest { return false; }

  startLine(): string { return `SIP/2.0 ${this.status} ${this.reason}`; }

  /** Changes status and reason (e.g. a proxy rewriting a final response). */
  setStatus(status: number, reason: string): this {
    this.status = status;
    this.reason = sanitizeValue(reason);
    this.startLineChanged();
    return this;
  }

  clone(): SipResponse {
    return this.copyInto(new SipResponse(this.status, this.reason, []));
  }
}

/** Builds a header line for a message built in code. */
export function headerLine(name: string, value: string): HeaderLine {
  return newLine(name, value);
}

