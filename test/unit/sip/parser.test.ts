import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  createResponse, fromWire, parseMessage, parseNameAddr as parseNameAddrOrNull, parseOrThrow, SipParseError, toWire, type SipMessage, type SipRequest, type SipResponse,
} from '../../../src/sip/index.js';

const DIR = join(import.meta.dirname, '../../fixtures/sip');
const fixture = (name: string): Buffer => readFileSync(join(DIR, name));
const parse = (name: string): SipMessage => {
  const r = parseMessage(fixture(name));
  if (!r.ok) throw new Error(`${name}: ${r.error.kind} ${r.error.reason}`);
  return r.message;
};
const req = (name: string): SipRequest => parse(name) as SipRequest;

describe('valid fixtures', () => {
  const files = readdirSync(DIR).filter((f) => f.startsWith('valid-'));

  it.each(files)('%s parses and an unedited message serialises to the same bytes', (f) => {
    const buf = fixture(f);
    const m = parse(f);
    const out = m.toBuffer();
    expect(parseMessage(out).ok).toBe(true);
    if (['valid-udp-no-cl.sip', 'valid-udp-trailing.sip', 'valid-leading-crlf.sip', 'valid-torture-dblreq.sip'].includes(f)) return;
    expect(out.equals(buf)).toBe(true);
  });

  it('reads the request line, Request-URI and the mandatory headers of a typical INVITE', () => {
    const m = req('valid-invite.sip');
    expect(m.isRequest()).toBe(true);
    expect(m.method).toBe('INVITE');
    expect(m.uri).toMatchObject({ scheme: 'sip', user: 'bob', host: 'biloxi.com', port: undefined });
    expect(m.callId).toBe('a84b4c76e66710@pc33.atlanta.com');
    expect(m.cseq).toEqual({ seq: 314159, method: 'INVITE' });
    expect(m.from).toMatchObject({ displayName: 'Alice', uriRaw: 'sip:alice@atlanta.com', tag: '1928301774' });
    expect(m.to.tag).toBeUndefined();
    expect(m.topVia).toMatchObject({ transport: 'UDP', host: 'pc33.atlanta.com', port: 5060, branch: 'z9hG4bK776asdhds', rport: null });
    expect(m.maxForwards).toBe(70);
    expect(m.contentLength).toBe(m.body.length);
    expect(m.body.toString()).toMatch(/^v=0\r\n/);
    expect(m.contacts?.[0]?.uri?.host).toBe('pc33.atlanta.com');
    expect(m.routes).toEqual([]);
  });

  it('expands compact header names', () => {
    const m = req('valid-compact.sip');
    expect(m.callId).toBe('compact-1@192.0.2.7');
    expect(m.from.tag).toBe('ab12');
    expect(m.to.uri?.params.get('user')).toBe('phone');
    expect(m.topVia?.port).toBe(5062);
    expect(m.contacts?.[0]?.params.get('expires')).toBe('60');
    expect(m.getHeader('Content-Length')).toBe(String(m.body.length));
    expect(m.getHeader('Content-Type')).toBe('application/sdp');
    expect(m.headerValues('Supported')).toEqual(['timer', '100rel']);
    expect(m.getHeader('subject')).toBe('compact forms');
    expect(m.getHeader('Event')).toBe('presence');
    expect(m.getHeader('Allow-Events')).toBe('dialog');
    expect(m.getHeader('Content-Encoding')).toBe('identity');
    expect(m.getHeader('Session-Expires')).toBe('1800;refresher=uac');
    expect(m.maxForwards).toBe(5);
  });

  it('unfolds continuation lines', () => {
    const m = req('valid-folded.sip');
    expect(m.topVia?.branch).toBe('z9hG4bKfold1');
    expect(m.to.uriRaw).toBe('sip:gw.example.net');
    expect(m.from.displayName).toBe('Folded Name');
    expect(m.getHeader('Subject')).toBe('first line second line');
    expect(m.maxForwards).toBe(10);
  });

  it('reads IPv6 references in the Request-URI, Via, From and Record-Route', () => {
    const m = req('valid-ipv6.sip');
    expect(m.uri).toMatchObject({ host: '2001:db8::10', ipv6: true, port: 5070 });
    expect(m.uri.params.get('transport')).toBe('tcp');
    expect(m.uri.params.get('maddr')).toBe('[2001:db8::11]');
    expect(m.vias.map((v) => [v.host, v.port])).toEqual([['2001:db8::9', 5060], ['2001:db8::8', undefined]]);
    expect(m.topVia).toMatchObject({ received: '2001:db8::9', rport: 5060 });
    expect(m.from.uri).toMatchObject({ host: '2001:db8::9', port: 5060 });
    expect(m.recordRoutes?.[0]?.uri).toMatchObject({ host: '2001:db8::1', ipv6: true });
    expect(m.recordRoutes?.[0]?.uri?.params.has('lr')).toBe(true);
  });

  it('copes with odd whitespace, escapes in quoted strings and commas inside quotes and <>', () => {
    const m = req('valid-escapes.sip');
    expect(m.topVia).toMatchObject({ protocol: 'SIP/2.0', transport: 'UDP', host: 'host5.example.net', branch: 'z9hG4bKkdjuw', received: '192.0.2.2' });
    expect(m.to.uri?.user).toBe('user%40x');
    expect(m.to.displayName).toBe('BEL:\x07 DEL:\x7f');
    expect(m.from.displayName).toBe('J Rosenberg \\"');
    expect(m.from.params.get('x-quoted')).toBe('"a,b;c"');
    expect(m.contacts?.map((c) => c.uriRaw)).toEqual(['sip:a@b.example.com;x=y', 'sip:c@d.example.com']);
    expect(m.contacts?.[0]?.displayName).toBe('Quoted, with comma');
    expect(m.contacts?.[0]?.params.get('q')).toBe('0.7');
    expect(m.headerValues('unknown-header-1')).toEqual(['value with commas', '"quoted, comma"', '<sip:x@y,z>']);
    expect(m.routes?.map((r) => r.uri?.host)).toEqual(['p1.example.com', 'p2.example.com', 'p3.example.com']);
  });

  it('reads a response', () => {
    const m = parse('valid-response-200.sip') as SipResponse;
    expect(m.isResponse()).toBe(true);
    expect(m.status).toBe(200);
    expect(m.reason).toBe('OK');
    expect(m.vias).toHaveLength(2);
    expect(m.vias[1]?.received).toBe('192.0.2.101');
    expect(m.to.tag).toBe('a6c85cf');
    expect(m.recordRoutes?.[0]?.uriRaw).toBe('sip:gw.example.net;lr');
  });

  it('drops datagram bytes past Content-Length, and takes the rest of the datagram without one', () => {
    expect(req('valid-udp-trailing.sip').body.toString()).toBe('hello');
    expect(req('valid-udp-trailing.sip').toBuffer().toString()).not.toContain('TRAILING');
    const m = req('valid-udp-no-cl.sip');
    expect(m.body.toString()).toBe('rest of datagram');
    expect(m.contentLength).toBeUndefined();
    expect(m.toBuffer().toString()).toContain('\r\nContent-Length: 16\r\n');
  });

  it('accepts unusual tokens, escaped URIs and every P-Accountcode spelling', () => {
    const m = req('valid-unknown-method.sip');
    expect(m.method).toBe('NEWMETHOD');
    expect(m.uri.user).toBe('%61lice');
    expect(m.topVia?.branch).toBe("z9hG4bK-.!%*_+`'~");
    expect(m.to.uri?.user).toBe('alice');
    expect(m.from.tag).toBe("x-.!%*_+`'~");
    expect(m.callId).toBe('~`!@#$%^&*()_-+={}[]|\\:;"\'<>,.?/');
    expect(m.maxForwards).toBe(0);
    expect(m.headerValues('P-Accountcode')).toEqual(['100', '200', '300', '400']);
  });

  it('ignores CRLFs before the start line, accepts LF-only lines and non-SIP Request-URIs', () => {
    expect(req('valid-leading-crlf.sip').method).toBe('BYE');
    expect(req('valid-lf-only.sip').cseq).toEqual({ seq: 9, method: 'OPTIONS' });
    const tel = req('valid-tel-uri.sip');
    expect(tel.uri).toMatchObject({ scheme: 'tel', opaque: '+1-201-555-0123;phone-context=example.com' });
  });

  it('keeps UTF-8 bytes exactly and decodes display names on request', () => {
    const m = req('valid-utf8.sip');
    expect(fromWire(m.to.displayName ?? '')).toBe('Björn 日本');
    expect(fromWire(m.from.displayName ?? '')).toBe('Åsa');
    m.addHeader('X-Note', toWire('café'));
    m.addHeader('X-Kanji', '日本'); // beyond U+00FF: encoded automatically
    const back = parseOrThrow(m.toBuffer()) as SipRequest;
    expect(fromWire(back.getHeader('x-note') ?? '')).toBe('café');
    expect(fromWire(back.getHeader('x-kanji') ?? '')).toBe('日本');
    // a wire value copied from one message to another stays byte-identical
    const copy = parseOrThrow(createResponse(back as SipRequest, 200, { headers: [['X-To', back.getHeader('to')!]] }).toBuffer());
    expect(fromWire(parseNameAddrOrNull(copy.getHeader('x-to') ?? '')?.displayName ?? '')).toBe('Björn 日本');
    expect(fromWire(back.to.displayName ?? '')).toBe('Björn 日本');
  });
});

describe('torture cases (RFC 4475 style, written for this project)', () => {
  it('dblreq: a second request past Content-Length in the same datagram is discarded', () => {
    const m = req('valid-torture-dblreq.sip');
    expect(m.method).toBe('REGISTER');
    expect(m.body.length).toBe(0);
    expect(m.toBuffer().toString('latin1')).not.toContain('INVITE');
  });

  it('semiuri: a ";" in the user part stays in the user part', () => {
    const u = req('valid-torture-semiuri.sip').uri;
    expect(u.user).toBe('user;par=u%40example.net');
    expect(u.host).toBe('example.com');
    expect(u.params.size).toBe(0);
  });

  it('transports: comma-joined Via lines with unknown transports and odd spacing', () => {
    const vias = req('valid-torture-transports.sip').vias;
    expect(vias.map((v) => [v.transport, v.host])).toEqual([
      ['UDP', 't1.example.com'], ['SCTP', 't2.example.com'], ['TLS', 't3.example.com'], ['UNKNOWN', 't4.example.com'], ['TCP', 't5.example.com'],
    ]);
  });

  it('noreason / unreason: empty and UTF-8 reason phrases', () => {
    expect((parse('valid-torture-noreason.sip') as SipResponse).reason).toBe('');
    const r = parse('valid-torture-unreason.sip') as SipResponse;
    expect(r.status).toBe(200);
    expect(fromWire(r.reason)).toBe('= 2**3 * 5**2 но сто девяносто');
  });

  it('zero Max-Forwards parses (the proxy answers 483); a URN Request-URI parses as opaque', () => {
    expect(req('valid-torture-zeromf.sip').maxForwards).toBe(0);
    expect(req('valid-torture-urn.sip').uri).toMatchObject({ scheme: 'urn', opaque: 'service:sos' });
  });

  it('long values: a 3 KB header, 40 Route values, 100 URI parameters', () => {
    const m = req('valid-torture-long.sip');
    expect(m.getHeader('x-long')?.length).toBe(3000);
    expect(m.routes).toHaveLength(40);
    expect(m.contacts?.[0]?.uri?.params.size).toBe(100);
    expect(m.removeFirstRoute()?.uri?.host).toBe('r0.example.com');
    expect(parseOrThrow(m.toBuffer()).routes).toHaveLength(39);
  });

  it('multipart: a body containing blank lines is taken whole by Content-Length', () => {
    const m = req('valid-torture-multipart.sip');
    expect(m.body.toString('latin1')).toContain('--b1--');
    expect(m.body.length).toBe(m.contentLength);
  });
});

describe('malformed fixtures', () => {
  const cases: Array<[string, SipParseError['kind'], number, string]> = [
    ['bad-cseq-alpha.sip', 'bad', 400, 'Bad CSeq'],
    ['bad-cseq-overflow.sip', 'bad', 400, 'Bad CSeq'],
    ['bad-cseq-method.sip', 'bad', 400, 'CSeq method does not match'],
    ['bad-missing-callid.sip', 'bad', 400, 'Missing Call-ID'],
    ['bad-missing-cseq.sip', 'bad', 400, 'Missing CSeq'],
    ['bad-missing-from.sip', 'bad', 400, 'Missing From'],
    ['bad-max-forwards-alpha.sip', 'bad', 400, 'Bad Max-Forwards'],
    ['bad-max-forwards-big.sip', 'bad', 400, 'Bad Max-Forwards'],
    ['bad-duplicate-to.sip', 'bad', 400, 'Duplicate To'],
    ['bad-duplicate-callid.sip', 'bad', 400, 'Duplicate Call-ID'],
    ['bad-cl-larger.sip', 'bad', 400, 'Content-Length larger than message'],
    ['bad-cl-negative.sip', 'bad', 400, 'Bad Content-Length'],
    ['bad-cl-conflict.sip', 'bad', 400, 'Conflicting Content-Length'],
    ['bad-from-unterminated.sip', 'bad', 400, 'Bad From'],
    ['bad-to-bad-uri.sip', 'bad', 400, 'Bad To'],
    ['bad-request-uri.sip', 'bad', 400, 'Bad Request-URI'],
    ['bad-request-uri-empty-host.sip', 'bad', 400, 'Bad Request-URI'],
    ['bad-version.sip', 'bad', 505, 'Version Not Supported'],
    ['bad-header-no-colon.sip', 'bad', 400, 'Bad header line'],
    ['bad-callid-space.sip', 'bad', 400, 'Bad Call-ID'],
    ['bad-second-via.sip', 'bad', 400, 'Bad Via'],
    ['bad-nul.sip', 'garbage', 400, 'NUL in header'],
    ['bad-via-port.sip', 'garbage', 400, 'Bad Via'],
    ['bad-top-via.sip', 'garbage', 400, 'Bad Via'],
    ['bad-missing-via.sip', 'garbage', 400, 'Missing Via'],
    ['bad-ack-cseq.sip', 'garbage', 400, 'Bad CSeq'],
    ['bad-response-no-cseq.sip', 'garbage', 400, 'Missing CSeq'],
    ['bad-status-line.sip', 'garbage', 400, 'Bad status line'],
    ['bad-request-line.sip', 'garbage', 400, 'Bad request line'],
    ['bad-method-chars.sip', 'garbage', 400, 'Bad request line'],
    ['bad-bare-cr.sip', 'bad', 400, 'Bare CR in header'],
    ['bad-binary.sip', 'garbage', 400, 'NUL in header'],
    ['bad-empty-lines.sip', 'garbage', 400, 'Empty message'],
    ['bad-torture-ltgtruri.sip', 'bad', 400, 'Bad Request-URI'],
    ['bad-torture-lwsruri.sip', 'bad', 400, 'Bad Request-URI'],
    ['bad-torture-badaspec.sip', 'bad', 400, 'Bad To'],
    ['bad-torture-quotbal.sip', 'bad', 400, 'Bad From'],
    ['bad-torture-scalarmf.sip', 'bad', 400, 'Bad Max-Forwards'],
    ['bad-torture-cseqneg.sip', 'bad', 400, 'Bad CSeq'],
    ['bad-torture-viaparam.sip', 'garbage', 400, 'Bad Via'],
  ];

  it('every bad-* fixture has an expectation', () => {
    const files = readdirSync(DIR).filter((f) => f.startsWith('bad-')).sort();
    expect(cases.map((c) => c[0]).sort()).toEqual(files);
  });

  it.each(cases)('%s → %s %i "%s"', (file, kind, status, reason) => {
    const r = parseMessage(fixture(file));
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error).toBeInstanceOf(SipParseError);
    expect({ kind: r.error.kind, status: r.error.status, reason: r.error.reason }).toEqual({ kind, status, reason });
    expect(r.error.answerable).toBe(kind !== 'garbage');
    expect(r.error.code).toBe('GW_ERR_SIP_PARSE');
  });

  it('an answerable error carries what a stateless 400 needs', () => {
    const r = parseMessage(fixture('bad-cseq-alpha.sip'));
    if (r.ok || !r.error.message) throw new Error('expected an answerable error');
    const res = createResponse(r.error.message, r.error.status, { reason: r.error.reason, toTag: 'gw1' });
    const text = res.toString();
    expect(text.startsWith('SIP/2.0 400 Bad CSeq\r\n')).toBe(true);
    expect(text).toContain('Via: SIP/2.0/UDP pc33.atlanta.com:5060;branch=z9hG4bK776asdhds;rport\r\n');
    expect(text).toContain('To: Bob <sip:bob@biloxi.com>;tag=gw1\r\n');
    expect(text).toContain('CSeq: abc INVITE\r\n');
    expect(text).toContain('Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n');
    expect(text.endsWith('Content-Length: 0\r\n\r\n')).toBe(true);
  });

  it('a bare CR cannot smuggle a header past the gateway, not even into our 400', () => {
    const r = parseMessage(fixture('bad-bare-cr.sip'));
    expect(r.ok).toBe(false);
    const evil = fixture('valid-invite.sip').toString('latin1').replace(';tag=1928301774', ';tag=1928301774\rX-Injected: 1');
    const e = parseMessage(Buffer.from(evil, 'latin1'));
    if (e.ok || !e.error.message) throw new Error('expected an answerable error');
    expect(e.error.reason).toBe('Bare CR in header');
    const out = createResponse(e.error.message, 400, { reason: e.error.reason }).toBuffer().toString('latin1');
    expect(out.replace(/\r\n/g, '')).not.toContain('\r');
  });

  it('an oversize datagram maps to 513 and stays answerable', () => {
    const big = fixture('valid-invite.sip');
    const r = parseMessage(big, { maxMessageSize: 200 });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error).toMatchObject({ kind: 'too-large', status: 513, code: 'GW_ERR_SIP_TOO_LARGE' });
    expect(r.error.answerable).toBe(true);
    expect(r.error.toGwError().sipStatus).toBe(513);
  });

  it('stream mode requires an exact Content-Length', () => {
    const noCl = parseMessage(fixture('valid-udp-no-cl.sip'), { stream: true });
    expect(!noCl.ok && noCl.error.reason).toBe('Missing Content-Length');
    const trailing = parseMessage(fixture('valid-udp-trailing.sip'), { stream: true });
    expect(!trailing.ok && trailing.error.reason).toBe('Content-Length mismatch');
    expect(parseMessage(fixture('valid-invite.sip'), { stream: true }).ok).toBe(true);
  });
});
