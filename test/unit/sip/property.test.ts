// Property tests (fast-check, fixed seed): what the gateway writes, the parser reads back identically.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  createRequest, formatUri, parseNameAddr, parseOrThrow, parseUri, quote, splitList, type SipRequest, type SipUri,
} from '../../../src/sip/index.js';

const SEED = 20261122;
const alnum = fc.stringMatching(/^[a-z0-9]{1,12}$/);
const userChars = fc.stringMatching(/^[a-zA-Z0-9\-_.!~*'()&=+$,;?/]{1,16}$/).filter((u) => !u.includes('@'));
const hostname = fc.array(alnum, { minLength: 1, maxLength: 4 }).map((p) => p.join('.'));
const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((a) => a.join('.'));
const ipv6 = fc.ipV6();
const host = fc.oneof(hostname.map((h) => ({ host: h, ipv6: false })), ipv4.map((h) => ({ host: h, ipv6: false })), ipv6.map((h) => ({ host: h, ipv6: true })));
const paramValue = fc.option(fc.stringMatching(/^[a-zA-Z0-9\-_.!~*'()]{1,10}$/), { nil: null });

const uriArb = fc.record({
  scheme: fc.constantFrom('sip', 'sips'),
  user: fc.option(userChars, { nil: undefined }),
  h: host,
  port: fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined }),
  params: fc.uniqueArray(fc.tuple(alnum, paramValue), { selector: (p) => p[0], maxLength: 5 }),
  headers: fc.uniqueArray(fc.tuple(alnum, alnum), { selector: (p) => p[0], maxLength: 3 }),
}).map((r): SipUri => ({
  scheme: r.scheme, user: r.user, password: undefined, host: r.h.host, ipv6: r.h.ipv6, port: r.port,
  params: new Map(r.params), headers: new Map(r.headers), opaque: undefined, raw: '',
}));

describe('properties', () => {
  it('formatUri → parseUri gives back every part', () => {
    fc.assert(fc.property(uriArb, (u) => {
      const text = formatUri(u);
      const back = parseUri(text);
      expect(back).not.toBeNull();
      expect({ ...back!, raw: '' }).toEqual(u);
    }), { seed: SEED, numRuns: 200 });
  });

  it('any display name survives quote() → parseNameAddr()', () => {
    const printable = fc.string({ unit: fc.constantFrom(...'ab Z09"\\\'<>,;:@=%\t'.split('')), maxLength: 20 });
    fc.assert(fc.property(printable, uriArb, fc.option(alnum, { nil: undefined }), (name, u, tag) => {
      const value = `${quote(name)} <${formatUri(u)}>${tag ? `;tag=${tag}` : ''}`;
      const na = parseNameAddr(value);
      expect(na).not.toBeNull();
      expect(na!.displayName).toBe(name.replace(/\t/g, '\t'));
      expect(na!.uriRaw).toBe(formatUri(u));
      expect(na!.tag).toBe(tag);
      // and a list of them splits back into the same items
      expect(splitList(`${value}, ${value}`)).toEqual([value, value]);
    }), { seed: SEED, numRuns: 200 });
  });

  it('a request built from arbitrary extension headers serialises and parses back to the same values', () => {
    const name = fc.stringMatching(/^X-[A-Za-z0-9-]{1,12}$/);
    const value = fc.string({ unit: fc.constantFrom(...'abcXYZ019 ,;:="<>@'.split('')), minLength: 1, maxLength: 30 }).map((v) => v.trim()).filter((v) => v.length > 0);
    fc.assert(fc.property(fc.array(fc.tuple(name, value), { maxLength: 8 }), fc.string({ maxLength: 50 }), (extra, body) => {
      const req = createRequest({
        method: 'MESSAGE', uri: 'sip:bob@example.com', via: ['SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKprop'],
        from: '<sip:alice@example.com>;tag=1', to: '<sip:bob@example.com>', callId: 'prop@192.0.2.1', cseq: 7,
        headers: extra, body, contentType: 'text/plain',
      });
      const back = parseOrThrow(req.toBuffer()) as SipRequest;
      for (const [n, v] of extra) expect(back.header(n)).toEqual(extra.filter(([m]) => m.toLowerCase() === n.toLowerCase()).map(([, w]) => w));
      expect(back.body.toString('utf8')).toBe(body);
      expect(back.contentLength).toBe(Buffer.byteLength(body));
    }), { seed: SEED, numRuns: 150 });
  });
});
