// Building messages in code: responses to requests (copying the headers RFC 3261 §8.2.6.2 requires) and
// requests from scratch (OPTIONS probes, BYEs). Header values are copied as raw lines, never re-parsed.
import { headerLine, sanitizeValue, SipRequest, SipResponse, type HeaderLine } from './message.js';
import { newTag } from './ids.js';

/** Default reason phrases (RFC 3261 §21 and the ones a proxy sends). */
export const REASONS: Readonly<Record<number, string>> = {
  100: 'Trying', 180: 'Ringing', 181: 'Call Is Being Forwarded', 182: 'Queued', 183: 'Session Progress',
  200: 'OK', 202: 'Accepted', 300: 'Multiple Choices', 301: 'Moved Permanently', 302: 'Moved Temporarily',
  400: 'Bad Request', 401: 'Unauthorized', 402: 'Payment Required', 403: 'Forbidden', 404: 'Not Found',
  405: 'Method Not Allowed', 406: 'Not Acceptable', 407: 'Proxy Authentication Required', 408: 'Request Timeout',
  410: 'Gone', 413: 'Request Entity Too Large', 414: 'Request-URI Too Long', 415: 'Unsupported Media Type',
  416: 'Unsupported URI Scheme', 420: 'Bad Extension', 421: 'Extension Required', 423: 'Interval Too Brief',
  429: 'Too Many Requests', 480: 'Temporarily Unavailable', 481: 'Call/Transaction Does Not Exist',
  482: 'Loop Detected', 483: 'Too Many Hops', 484: 'Address Incomplete', 485: 'Ambiguous', 486: 'Busy Here',
  487: 'Request Terminated', 488: 'Not Acceptable Here', 491: 'Request Pending', 500: 'Server Internal Error',
  501: 'Not Implemented', 502: 'Bad Gateway', 503: 'Service Unavailable', 504: 'Server Time-out',
  505: 'Version Not Supported', 513: 'Message Too Large', 600: 'Busy Everywhere', 603: 'Decline',
  604: 'Does Not Exist Anywhere', 606: 'Not Acceptable',
};

export interface ResponseOptions {
  reason?: string;
  /** To tag to add when the request's To has none (status > 100). Generated when omitted. */
  toTag?: string;
  /** Extra headers, in order (e.g. [['Proxy-Authenticate', '...'], ['Server', 'a2b-gateway']]). */
  headers?: ReadonlyArray<readonly [string, string]>;
  body?: Buffer | string;
  contentType?: string;
}

/**
 * A response to `req`: status line, then Via (all, in order), From, To (+tag for status > 100 when absent),
 * Call-ID, CSeq copied from the request as raw values; then `opts.headers`; Content-Length is added on send.
 * Works on the partial request of an answerable SipParseError (malformed headers are copied as they are).
 */
export function createResponse(req: SipRequest, status: number, opts: ResponseOptions = {}): SipResponse {
  const headers: HeaderLine[] = [];
  // Via lines re-written (not byte-copied): a malformed request's values are sanitised on the way out
  for (const h of req.headers) if (h.lname === 'via') headers.push(headerLine(h.name.length === 1 ? 'Via' : h.name, h.value));
  const copy = (lname: string, name: string): void => {
    const v = req.getHeader(lname);
    if (v !== undefined) headers.push(headerLine(name, v));
  };
  copy('from', 'From');
  const to = req.getHeader('to');
  if (to !== undefined) {
    let v = to;
    if (status > 100) {
      const parsed = req.tryTo();
      if (parsed !== null && parsed.tag === undefined) v = `${to};tag=${opts.toTag ?? newTag()}`;
    }
    headers.push(headerLine('To', v));
  }
  copy('call-id', 'Call-ID');
  copy('cseq', 'CSeq');
  if (status === 100) copy('timestamp', 'Timestamp'); // RFC 3261 §8.2.6.1
  if (opts.headers) for (const [n, v] of opts.headers) headers.push(headerLine(n, v));
  const res = new SipResponse(status, sanitizeValue(opts.reason ?? REASONS[status] ?? 'Unknown'), headers);
  if (opts.body !== undefined) res.setBody(opts.body, opts.contentType);
  return res;
}

export interface RequestOptions {
  method: string;
  uri: string;
  /** Via value(s), top first; usually added later by the client transaction. */
  via?: string[];
  from: string;
  to: string;
  callId: string;
  cseq: number;
  maxForwards?: number;
  route?: string[];
  contact?: string;
  headers?: ReadonlyArray<readonly [string, string]>;
  body?: Buffer | string;
  contentType?: string;
}

/** A request built from scratch (OPTIONS probe, BYE from the gateway). */
export function createRequest(o: RequestOptions): SipRequest {
  const headers: HeaderLine[] = [];
  for (const v of o.via ?? []) headers.push(headerLine('Via', v));
  headers.push(headerLine('Max-Forwards', String(o.maxForwards ?? 70)));
  for (const r of o.route ?? []) headers.push(headerLine('Route', r));
  headers.push(headerLine('From', o.from), headerLine('To', o.to), headerLine('Call-ID', o.callId),
    headerLine('CSeq', `${o.cseq} ${o.method}`));
  if (o.contact !== undefined) headers.push(headerLine('Contact', o.contact));
  for (const [n, v] of o.headers ?? []) headers.push(headerLine(n, v));
  const req = new SipRequest(o.method, sanitizeValue(o.uri).replace(/ /g, '%20'), headers);
  if (o.body !== undefined) req.setBody(o.body, o.contentType);
  return req;
}
