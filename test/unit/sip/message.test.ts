import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  canonicalName, canonicalNameAt, createRequest, createResponse, newBranch, newCallId, newTag, parseOrThrow, parseUri, formatUri, splitList,
  type SipRequest, type SipResponse,
} from '../../../src/sip/index.js';

const DIR = join(import.meta.dirname, '../../fixtures/sip');
const load = (name: string): SipRequest => parseOrThrow(readFileSync(join(DIR, name))) as SipRequest;

describe('raw-line edits', () => {
  it('removes every instance of a header: any case, compact form, repeated and comma-joined', () => {
    const m = load('valid-unknown-method.sip');
    expect(m.removeHeader('P-ACCOUNTCODE')).toBe(3);
    expect(m.header('p-accountcode')).toEqual([]);
    m.addHeader('P-Accountcode', '777');
    const text = m.toString();
    expect(text.match(/accountcode/gi)).toHaveLength(1);
    expect(text).toContain('\r\nP-Accountcode: 777\r\n');
    // compact forms are the same header
    const c = load('valid-compact.sip');
    expect(c.removeHeader('Call-ID')).toBe(1);
    expect(c.toString()).not.toMatch(/\r\ni:/);
  });

  it('pushes and pops the top Via, including from a comma-joined line', () => {
    const m = parseOrThrow(readFileSync(join(DIR, 'valid-response-200.sip'))) as SipResponse;
    const top = m.popVia();
    expect(top?.branch).toBe('z9hG4bKproxy1');
    expect(m.vias.map((v) => v.branch)).toEqual(['z9hG4bK776asdhds']);
    expect(m.toString()).toContain('\r\nVia: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds;received=192.0.2.101\r\n');
    const r = load('valid-invite.sip');
    r.pushVia('SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bKgw;rport');
    const back = parseOrThrow(r.toBuffer());
    expect(back.vias.map((v) => v.branch)).toEqual(['z9hG4bKgw', 'z9hG4bK776asdhds']);
    expect(back.vias[0]?.transport).toBe('TCP');
  });

  it('prepends Record-Route, removes the first Route value and keeps the others', () => {
    const m = load('valid-escapes.sip');
    const first = m.removeFirstRoute();
    expect(first?.uri?.host).toBe('p1.example.com');
    expect(m.routes?.map((r) => r.uri?.host)).toEqual(['p2.example.com', 'p3.example.com']);
    m.prependRecordRoute('<sip:192.0.2.1;lr>');
    m.prependRecordRoute('<sip:192.0.2.1;transport=tcp;lr>');
    const back = parseOrThrow(m.toBuffer());
    expect(back.recordRoutes?.map((r) => r.uriRaw)).toEqual(['sip:192.0.2.1;transport=tcp;lr', 'sip:192.0.2.1;lr']);
    expect(back.routes?.map((r) => r.uri?.host)).toEqual(['p2.example.com', 'p3.example.com']);
  });

  it('decrements Max-Forwards, and adds it when absent', () => {
    const m = load('valid-invite.sip');
    expect(m.decrementMaxForwards()).toBe(69);
    expect(parseOrThrow(m.toBuffer()).maxForwards).toBe(69);
    m.removeHeader('max-forwards');
    expect(m.maxForwards).toBeUndefined();
    expect(m.decrementMaxForwards(70)).toBe(70);
    m.setMaxForwards(3);
    expect(m.header('Max-Forwards')).toEqual(['3']);
  });

  it('copies untouched byte runs verbatim around an edit', () => {
    const orig = readFileSync(join(DIR, 'valid-escapes.sip')).toString('latin1');
    const m = load('valid-escapes.sip');
    m.setHeader('Max-Forwards', '67');
    const out = m.toBuffer().toString('latin1');
    expect(out).toBe(orig.replace('Max-Forwards: 68', 'Max-Forwards: 67'));
  });

  it('fixes Content-Length when the body changes', () => {
    const m = load('valid-invite.sip');
    m.setBody('v=0\r\n', 'application/sdp');
    const out = m.toString();
    expect(out).toContain('\r\nContent-Length: 5\r\n');
    expect(out.match(/Content-Length/g)).toHaveLength(1);
    expect(out.endsWith('\r\n\r\nv=0\r\n')).toBe(true);
  });

  it('rewrites the Request-URI and the status line', () => {
    const m = load('valid-invite.sip');
    m.setUri('sip:bob@192.0.2.44:5080;transport=tcp');
    expect(m.toString().startsWith('INVITE sip:bob@192.0.2.44:5080;transport=tcp SIP/2.0\r\nVia:')).toBe(true);
    expect(m.uri.port).toBe(5080);
    const r = createResponse(m, 503);
    r.setStatus(500, 'Server Internal Error');
    expect(r.toString().startsWith('SIP/2.0 500 Server Internal Error\r\n')).toBe(true);
  });

  it('a clone is edited independently of the original', () => {
    const m = load('valid-invite.sip');
    const before = m.toBuffer().toString('latin1');
    const a = m.clone();
    const b = m.clone();
    a.pushVia('SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKa');
    b.pushVia('SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKb');
    a.setUri('sip:a@10.0.0.2');
    expect(a.topVia?.branch).toBe('z9hG4bKa');
    expect(b.topVia?.branch).toBe('z9hG4bKb');
    expect(b.uri.host).toBe('biloxi.com');
    expect(m.toBuffer().toString('latin1')).toBe(before);
  });

  it('values cannot inject header lines; header names must be tokens', () => {
    const m = load('valid-invite.sip');
    m.addHeader('X-Evil', 'a\r\nVia: SIP/2.0/UDP evil;branch=z9hG4bKx');
    m.setUri('sip:bob\r\nX: y@example.com');
    const back = parseOrThrow(m.toBuffer()) as SipRequest;
    expect(back.vias).toHaveLength(1);
    expect(back.getHeader('x-evil')).toBe('a Via: SIP/2.0/UDP evil;branch=z9hG4bKx');
    expect(back.uriRaw).toBe('sip:bob%20X:%20y@example.com');
    expect(() => m.addHeader('Bad Name', 'x')).toThrow(/invalid header name/);
    expect(createResponse(m, 400, { reason: 'Bad\r\nX: y' }).toString()).toMatch(/^SIP\/2.0 400 Bad X: y\r\n/);
  });

  it('replaces the top Via value, keeping the rest of a comma-joined line', () => {
    const m = parseOrThrow(readFileSync(join(DIR, 'valid-response-200.sip')));
    m.replaceTopVia('SIP/2.0/UDP gw.example.net:5060;branch=z9hG4bKproxy1;received=10.0.0.9');
    expect(m.vias.map((v) => v.received)).toEqual(['10.0.0.9', '192.0.2.101']);
  });
});

describe('building messages', () => {
  it('a response copies Via, From, To, Call-ID, CSeq and adds a To tag except for 100', () => {
    const m = load('valid-ipv6.sip');
    const trying = createResponse(m, 100);
    expect(trying.to.tag).toBeUndefined();
    const ok = createResponse(m, 486, { toTag: 'xyz', headers: [['Server', 'a2b-gateway']] });
    const back = parseOrThrow(ok.toBuffer()) as SipResponse;
    expect(back.status).toBe(486);
    expect(back.reason).toBe('Busy Here');
    expect(back.vias.map((v) => v.branch)).toEqual(['z9hG4bKv6a', 'z9hG4bKv6b']);
    expect(back.to.tag).toBe('xyz');
    expect(back.from.tag).toBe('v6');
    expect(back.callId).toBe(m.callId);
    expect(back.cseq).toEqual({ seq: 2, method: 'INVITE' });
    expect(back.getHeader('server')).toBe('a2b-gateway');
    // an existing To tag is kept
    const inDialog = createResponse(parseOrThrow(createResponse(m, 200, { toTag: 't1' }).toBuffer()) as unknown as SipRequest, 200);
    expect(inDialog.to.tag).toBe('t1');
  });

  it('builds a request from scratch', () => {
    const r = createRequest({
      method: 'OPTIONS', uri: 'sip:192.0.2.50:5060', via: [`SIP/2.0/UDP 192.0.2.1:5060;branch=${newBranch()}`],
      from: `<sip:gw@192.0.2.1>;tag=${newTag()}`, to: '<sip:192.0.2.50:5060>', callId: newCallId('192.0.2.1'), cseq: 1,
    });
    const back = parseOrThrow(r.toBuffer()) as SipRequest;
    expect(back.method).toBe('OPTIONS');
    expect(back.maxForwards).toBe(70);
    expect(back.contentLength).toBe(0);
    expect(back.topVia?.branch?.startsWith('z9hG4bK')).toBe(true);
  });

  it('generates unguessable, distinct identifiers', () => {
    const branches = new Set(Array.from({ length: 1000 }, () => newBranch()));
    expect(branches.size).toBe(1000);
    for (const b of branches) expect(b).toMatch(/^z9hG4bK[0-9a-f]{32}$/);
    expect(newTag()).toMatch(/^[0-9a-f]{16}$/);
    expect(newCallId('h.example')).toMatch(/^[0-9a-f]{32}@h\.example$/);
    expect(new Set(Array.from({ length: 1000 }, () => newTag())).size).toBe(1000);
  });
});

describe('header names', () => {
  it('expands every compact form, in either case', () => {
    const expected: Record<string, string> = {
      i: 'call-id', f: 'from', t: 'to', v: 'via', m: 'contact', l: 'content-length', c: 'content-type', k: 'supported',
      s: 'subject', e: 'content-encoding', o: 'event', u: 'allow-events', r: 'refer-to', b: 'referred-by',
      x: 'session-expires', y: 'identity', a: 'accept-contact', j: 'reject-contact', d: 'request-disposition', n: 'identity-info',
    };
    for (const [c, full] of Object.entries(expected)) {
      expect(canonicalName(c)).toBe(full);
      expect(canonicalName(c.toUpperCase())).toBe(full);
      expect(canonicalName(full.toUpperCase())).toBe(full);
    }
    const m = parseOrThrow(readFileSync(join(DIR, 'valid-invite.sip')).toString('latin1').replace('Contact:', 'r: <sip:x@y>\r\nB: <sip:z@w>\r\ny: abc\r\nContact:'));
    expect(m.getHeader('Refer-To')).toBe('<sip:x@y>');
    expect(m.getHeader('referred-by')).toBe('<sip:z@w>');
    expect(m.getHeader('IDENTITY')).toBe('abc');
  });

  it('the parser\'s in-place name matcher agrees with canonicalName on any casing', () => {
    const names = ['Via', 'VIA', 'vIa', 'Call-ID', 'CALL-id', 'Max-Forwards', 'MAX-FORWARDS', 'P-Accountcode', 'p-accountCODE',
      'X-A2B-Callref', 'Proxy-Authorization', 'Content-Length', 'l', 'L', 'I', 'X-Unknown-Thing', 'Vi', 'Viaa', 'Cseq', 'Rack', 'q'];
    for (const n of names) expect(canonicalNameAt(`  ${n}: x`, 2, 2 + n.length)).toBe(canonicalName(n));
  });
});

describe('URIs and lists', () => {
  it('parses URI parts, params and headers', () => {
    const u = parseUri('sips:alice:secret@[::1]:5061;transport=TCP;lr;maddr=10.0.0.1?subject=hi&priority=urgent');
    expect(u).toMatchObject({ scheme: 'sips', user: 'alice', password: 'secret', host: '::1', ipv6: true, port: 5061 });
    expect([...(u?.params ?? [])]).toEqual([['transport', 'TCP'], ['lr', null], ['maddr', '10.0.0.1']]);
    expect([...(u?.headers ?? [])]).toEqual([['subject', 'hi'], ['priority', 'urgent']]);
    expect(formatUri(u!)).toBe('sips:alice:secret@[::1]:5061;transport=TCP;lr;maddr=10.0.0.1?subject=hi&priority=urgent');
    expect(parseUri('sip:user;phone-context=x@example.com')?.user).toBe('user;phone-context=x');
  });

  it.each(['', 'sip:', 'sip:@host', 'sip:host:99999', 'sip:[::1', 'sip:a@b@c', 'sip:ho st', 'sip:host;', 'sip:host?x', '1sip:x', 'sip:[zz::1]'])(
    'rejects %j', (s) => expect(parseUri(s)).toBeNull());

  it('splits lists at top-level commas only', () => {
    expect(splitList('a, "b,c", <sip:d,e>;x="f,g" ,, h')).toEqual(['a', '"b,c"', '<sip:d,e>;x="f,g"', 'h']);
    expect(splitList('"unterminated, x')).toBeNull();
    expect(splitList('<sip:x, y')).toBeNull();
  });
});
