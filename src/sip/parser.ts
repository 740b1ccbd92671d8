// Wire bytes → SipRequest | SipResponse, or a SipParseError that says why and whether it can be answered.
// Nothing here throws: every failure is a returned value. One native search for the end of the header block,
// one latin1 decode of that block, one pass over its lines; only the headers needed to route and to answer
// (Via, From, To, Call-ID, CSeq, Max-Forwards, Content-Length, Request-URI) are parsed eagerly.
import type { ErrorCode } from '../errors.js';
import { GwError } from '../errors.js';
import { canonicalNameAt, isTokenChar, isValidCallId, parseDecimal } from './headers.js';
import { SipRequest, SipResponse, type HeaderLine, type SipMessage } from './message.js';

export type ParseErrorKind =
  /** Malformed but answerable with `status` (a request whose top Via can be read, not an ACK). */
  | 'bad'
  /** Bigger than the configured limit (answer 513 when `message` is set). */
  | 'too-large'
  /** Cannot be answered (not SIP, no usable Via, a malformed response, an ACK): count and drop. */
  | 'garbage';

/**
 * A parse failure. Deliberately not an Error (no stack capture): hostile traffic produces many of these.
 * `reason` is a SIP reason phrase ("Bad CSeq", "Missing Call-ID") fit for the status line.
 */
export class SipParseError {
  readonly code: ErrorCode;
  constructor(
    readonly kind: ParseErrorKind,
    /** SIP status to answer with: 400, 505 or 513. */
    readonly status: number,
    readonly reason: string,
    /** The request as far as it could be read, when the failure can be answered (see createResponse). */
    readonly message: SipRequest | null = null,
  ) {
    this.code = kind === 'too-large' ? 'GW_ERR_SIP_TOO_LARGE' : 'GW_ERR_SIP_PARSE';
  }

  /** True when a stateless error response can be sent (a non-ACK request with a readable top Via). */
  get answerable(): boolean {
    return this.message !== null;
  }

  toGwError(): GwError {
    return new GwError(this.code, this.reason);
  }
}

export type ParseResult = { ok: true; message: SipMessage } | { ok: false; error: SipParseError };

export interface ParseOptions {
  /** Messages larger than this are rejected ('too-large', status 513). */
  maxMessageSize?: number;
  /** True for TCP: Content-Length is required and must match the framed bytes exactly. */
  stream?: boolean;
}

const CR = 13;
const LF = 10;
const DEFAULT_MAX = 65535;
// needles as Buffers: a string needle is converted to a Buffer on every call
const CRLFCRLF = Buffer.from('\r\n\r\n', 'latin1');
const LFLF = Buffer.from('\n\n', 'latin1');

/** Parses one message. Never throws. */
export function parseMessage(buf: Buffer, opts: ParseOptions = {}): ParseResult {
  try {
    return parseUnsafe(buf, opts);
  } catch {
    // a bug in the parser must not take down the receive path
    return { ok: false, error: new SipParseError('garbage', 400, 'Unparseable message') };
  }
}

function garbage(reason: string): ParseResult {
  return { ok: false, error: new SipParseError('garbage', 400, reason) };
}

function parseUnsafe(buf: Buffer, opts: ParseOptions): ParseResult {
  const max = opts.maxMessageSize ?? DEFAULT_MAX;
  const total = buf.length;
  // RFC 3261 §7.5: CRLFs before the start line are ignored
  let start = 0;
  while (start < total && (buf[start] === CR || buf[start] === LF)) start++;
  if (start >= total) return garbage('Empty message');
  if (total - start < 12) return garbage('Truncated message');

  // end of the header block
  let headEnd: number;
  let bodyStart: number;
  const crlf2 = buf.indexOf(CRLFCRLF, start);
  if (crlf2 >= 0) { headEnd = crlf2 + 2; bodyStart = crlf2 + 4; } else {
    const lf2 = buf.indexOf(LFLF, start);
    if (lf2 >= 0) { headEnd = lf2 + 1; bodyStart = lf2 + 2; } else if (opts.stream) {
      return garbage('Missing end of headers');
    } else { headEnd = total; bodyStart = total; }
  }
  const head = buf.toString('latin1', 0, headEnd);

  // bare CR and NUL smuggle header boundaries past other parsers: refuse them
  if (head.indexOf('\0', start) >= 0) return garbage('NUL in header');
  let bad = '';
  for (let p = head.indexOf('\r', start); p >= 0; p = head.indexOf('\r', p + 1)) {
    if (head.charCodeAt(p + 1) !== LF) { bad = 'Bare CR in header'; break; }
  }

  // start line
  let nl = head.indexOf('\n', start);
  if (nl < 0) nl = headEnd;
  const slTextEnd = nl > start && head.charCodeAt(nl - 1) === CR ? nl - 1 : nl;
  const slEnd = nl < headEnd ? nl + 1 : headEnd;
  const sl = head.slice(start, slTextEnd);
  let isRequest: boolean;
  let method = '';
  let uriRaw = '';
  let status = 0;
  let reason = '';
  if (sl.length >= 8 && sl.charCodeAt(0) === 83 /* S */ && sl.slice(0, 8).toUpperCase() === 'SIP/2.0 ') {
    isRequest = false;
    const code = sl.slice(8, 11);
    status = parseDecimal(code, 3);
    if (status < 100 || status > 699 || (sl.length > 11 && sl.charCodeAt(11) !== 32)) return garbage('Bad status line');
    reason = sl.length > 12 ? sl.slice(12) : '';
  } else {
    isRequest = true;
    // the version is after the LAST space, so a Request-URI with spaces in it is reported as a bad URI (answerable)
    const sp1 = sl.indexOf(' ');
    const sp2 = sp1 < 0 ? -1 : sl.lastIndexOf(' ');
    if (sp1 <= 0 || sp2 <= sp1) return garbage('Bad request line');
    method = sl.slice(0, sp1);
    for (let i = 0; i < method.length; i++) if (!isTokenChar(method.charCodeAt(i))) return garbage('Bad request line');
    uriRaw = sl.slice(sp1 + 1, sp2);
    const version = sl.slice(sp2 + 1);
    if (version.length < 5 || version.slice(0, 4).toUpperCase() !== 'SIP/') return garbage('Bad request line');
    if (version !== 'SIP/2.0' && version.toUpperCase() !== 'SIP/2.0') {
      // a well-formed request of another version gets 505 when its headers let us answer
      bad ||= '!505';
    }
  }

  // header lines
  const headers: HeaderLine[] = [];
  let pos = slEnd;
  let prev: HeaderLine | null = null;
  while (pos < headEnd) {
    let e = head.indexOf('\n', pos);
    const next = e < 0 || e >= headEnd ? headEnd : e + 1;
    if (e < 0 || e >= headEnd) e = headEnd;
    const textEnd = e > pos && head.charCodeAt(e - 1) === CR ? e - 1 : e;
    if (textEnd === pos) { pos = next; continue; } // the blank line itself (LF-only case)
    const c0 = head.charCodeAt(pos);
    if (c0 === 32 || c0 === 9) {
      // folded continuation of the previous header
      if (prev === null) { bad ||= 'Bad header folding'; pos = next; continue; }
      let vs = pos;
      while (vs < textEnd && (head.charCodeAt(vs) === 32 || head.charCodeAt(vs) === 9)) vs++;
      const more = head.slice(vs, textEnd).trimEnd();
      const value: string = more.length === 0 ? prev.value : prev.value.length === 0 ? more : `${prev.value} ${more}`;
      const cut: boolean = prev.start < 0 || next === e;
      prev = { name: prev.name, lname: prev.lname, value, start: cut ? -1 : prev.start, end: cut ? -1 : next };
      headers[headers.length - 1] = prev;
      pos = next;
      continue;
    }
    const colon = head.indexOf(':', pos);
    if (colon < 0 || colon >= textEnd) { bad ||= 'Bad header line'; pos = next; prev = null; continue; }
    let ne = colon;
    while (ne > pos && (head.charCodeAt(ne - 1) === 32 || head.charCodeAt(ne - 1) === 9)) ne--;
    let okName = ne > pos;
    for (let i = pos; i < ne && okName; i++) if (!isTokenChar(head.charCodeAt(i))) okName = false;
    if (!okName) { bad ||= 'Bad header name'; pos = next; prev = null; continue; }
    let vs = colon + 1;
    while (vs < textEnd && (head.charCodeAt(vs) === 32 || head.charCodeAt(vs) === 9)) vs++;
    let ve = textEnd;
    while (ve > vs && (head.charCodeAt(ve - 1) === 32 || head.charCodeAt(ve - 1) === 9)) ve--;
    const name = head.slice(pos, ne);
    const lname = canonicalNameAt(head, pos, ne);
    // a last line without its terminator (datagram with no blank line) is rewritten on output, never copied
    const unterminated = next === e;
    prev = { name, lname, value: head.slice(vs, ve), start: unterminated ? -1 : pos, end: unterminated ? -1 : next };
    headers.push(prev);
    pos = next;
  }

  // body per Content-Length
  let clCount = 0;
  let clValue = -1;
  for (const h of headers) {
    if (h.lname !== 'content-length') continue;
    const n = parseDecimal(h.value, 9);
    if (clCount > 0 && n !== clValue) bad ||= 'Conflicting Content-Length';
    clCount++;
    clValue = n;
    if (n < 0) bad ||= 'Bad Content-Length';
  }
  let msgEnd = total;
  if (clCount > 0 && clValue >= 0) {
    if (bodyStart + clValue > total) bad ||= 'Content-Length larger than message';
    else msgEnd = bodyStart + clValue; // UDP: bytes past Content-Length are discarded
    if (opts.stream && bodyStart + clValue !== total) bad ||= 'Content-Length mismatch';
  } else if (clCount === 0 && opts.stream) {
    bad ||= 'Missing Content-Length';
  }
  const body = msgEnd > bodyStart ? buf.subarray(bodyStart, msgEnd) : buf.subarray(bodyStart, bodyStart);

  const msg: SipMessage = isRequest
    ? new SipRequest(method, uriRaw, headers, body, buf, start, msgEnd, start, slEnd)
    : new SipResponse(status, reason, headers, body, buf, start, msgEnd, start, slEnd);

  // mandatory headers: what a proxy needs to route and what a 400 needs to be answered
  const why = bad || checkMandatory(msg);
  if (why === '' && total > max) {
    return { ok: false, error: new SipParseError('too-large', 513, 'Message Too Large', answerable(msg)) };
  }
  if (why === '') return { ok: true, message: msg };
  if (total > max) return { ok: false, error: new SipParseError('too-large', 513, 'Message Too Large', answerable(msg)) };
  const ans = answerable(msg);
  if (why === '!505') return ans ? { ok: false, error: new SipParseError('bad', 505, 'Version Not Supported', ans) } : garbage('Version Not Supported');
  if (ans === null) return garbage(why);
  return { ok: false, error: new SipParseError('bad', 400, why, ans) };
}

/** The request, when a stateless answer can be sent for it: a non-ACK request whose top Via parses. */
function answerable(msg: SipMessage): SipRequest | null {
  if (!msg.isRequest() || msg.method === 'ACK') return null;
  return msg.tryTopVia() !== null ? msg : null;
}

/** Returns '' when the message has what routing and answering need, else the reason phrase. */
function checkMandatory(msg: SipMessage): string {
  // one pass to count the headers that must appear once
  let vias = 0; let cids = 0; let cseqs = 0; let froms = 0; let tos = 0; let mfs = 0;
  let cid = ''; let mf = '';
  for (const h of msg.headers) {
    switch (h.lname) {
      case 'via': vias++; break;
      case 'call-id': cids++; cid = h.value; break;
      case 'cseq': cseqs++; break;
      case 'from': froms++; break;
      case 'to': tos++; break;
      case 'max-forwards': mfs++; mf = h.value; break;
      default: break;
    }
  }
  if (vias === 0) return 'Missing Via';
  const vlist = msg.tryVias();
  if (vlist === null || vlist.length === 0) return 'Bad Via';
  if (cids === 0) return 'Missing Call-ID';
  if (cids > 1) return 'Duplicate Call-ID';
  if (!isValidCallId(cid)) return 'Bad Call-ID';
  if (cseqs === 0) return 'Missing CSeq';
  if (cseqs > 1) return 'Duplicate CSeq';
  const cseq = msg.tryCSeq();
  if (cseq === null) return 'Bad CSeq';
  if (froms === 0) return 'Missing From';
  if (froms > 1) return 'Duplicate From';
  if (msg.tryFrom() === null) return 'Bad From';
  if (tos === 0) return 'Missing To';
  if (tos > 1) return 'Duplicate To';
  if (msg.tryTo() === null) return 'Bad To';
  if (mfs > 1) return 'Duplicate Max-Forwards';
  if (mfs === 1) {
    const n = parseDecimal(mf, 3);
    if (n < 0 || n > 255) return 'Bad Max-Forwards';
  }
  if (msg.isRequest()) {
    if (cseq.method !== msg.method) return 'CSeq method does not match';
    if (msg.tryUri() === null) return 'Bad Request-URI';
  }
  return '';
}

/** Shorthand for tests and tools: parses a string written with \r\n (throws GwError when it does not parse). */
export function parseOrThrow(text: string | Buffer, opts?: ParseOptions): SipMessage {
  const r = parseMessage(typeof text === 'string' ? Buffer.from(text, 'utf8') : text, opts);
  if (!r.ok) throw r.error.toGwError();
  return r.message;
}
