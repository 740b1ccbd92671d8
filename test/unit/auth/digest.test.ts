import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  challengeValue, computeResponse, parseCredentials, quote, responsesEqual, validateDigest, MAX_AUTH_HEADER,
} from '../../../src/auth/digest.js';

// RFC 7616 §3.9.1 (SHA-256 and MD5) and RFC 2617 §3.5.
const RFC7616 = {
  username: 'Mufasa', realm: 'http-auth@example.org', password: 'Circle of Life', method: 'GET', uri: '/dir/index.html',
  nonce: '7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v', nc: '00000001', cnonce: 'f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ', qop: 'auth' as const,
};

describe('digest response', () => {
  it('matches the RFC 7616 SHA-256 example', () => {
    expect(computeResponse({ ...RFC7616, algorithm: 'SHA-256' })).toBe('753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1');
  });

  it('matches the RFC 7616 MD5 example', () => {
    expect(computeResponse({ ...RFC7616, algorithm: 'MD5' })).toBe('8ca523f5e9506fed4657c9700eebdbec');
  });

  it('matches the RFC 2617 example', () => {
    expect(computeResponse({
      algorithm: 'MD5', username: 'Mufasa', realm: 'testrealm@host.com', password: 'Circle Of Life', method: 'GET', uri: '/dir/index.html',
      nonce: 'dcd98b7102dd2f0e8b11d0f600bfb0c093', nc: '00000001', cnonce: '0a4f113b', qop: 'auth',
    })).toBe('6629fae49393a05397450978507c4ef1');
  });

  it('compares in constant time, case-insensitively, and refuses other lengths', () => {
    const r = computeResponse({ ...RFC7616, algorithm: 'MD5' });
    expect(responsesEqual(r, r)).toBe(true);
    expect(responsesEqual(r, r.toUpperCase())).toBe(true);
    expect(responsesEqual(r, r.slice(0, -1) + (r.endsWith('0') ? '1' : '0'))).toBe(false);
    expect(responsesEqual(r, r.slice(0, -1))).toBe(false);
    expect(responsesEqual(r, r + '0')).toBe(false);
    expect(responsesEqual(r, '')).toBe(false);
  });
});

describe('Proxy-Authorization parser', () => {
  const header = 'Digest username="4242424242", realm="a2b-gateway", nonce="abc", uri="sip:1555@gw.example.net", ' +
    'response="0123456789abcdef0123456789abcdef", algorithm=MD5, qop=auth, nc=00000001, cnonce="xyz"';

  it('reads a typical SIP phone header', () => {
    const r = parseCredentials([header]);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.credentials).toHaveLength(1);
    const c = r.credentials[0]!;
    expect(c.scheme).toBe('Digest');
    expect(Object.fromEntries(c.params)).toEqual({
      username: '4242424242', realm: 'a2b-gateway', nonce: 'abc', uri: 'sip:1555@gw.example.net',
      response: '0123456789abcdef0123456789abcdef', algorithm: 'MD5', qop: 'auth', nc: '00000001', cnonce: 'xyz',
    });
    const v = validateDigest(c);
    expect(v.ok && v.value.ncValue).toBe(1);
  });

  it('handles escapes, commas inside quotes, odd spacing, case and unknown parameters', () => {
    const r = parseCredentials(['digest  USERNAME = "a\\"b\\\\c" ,realm="x, y",uri=sip:1@h;transport=tcp , foo="bar", opaque=""']);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const p = r.credentials[0]!.params;
    expect(p.get('username')).toBe('a"b\\c');
    expect(p.get('realm')).toBe('x, y');
    expect(p.get('uri')).toBe('sip:1@h;transport=tcp');
    expect(p.get('foo')).toBe('bar');
    expect(p.get('opaque')).toBe('');
  });

  it('rejoins a header that the SIP layer split at commas, and separates several credentials', () => {
    const split = header.split(', ');
    const r = parseCredentials(split);
    expect(r.ok && Object.fromEntries(r.credentials[0]!.params)).toEqual(r.ok && Object.fromEntries((parseCredentials([header]) as { ok: true; credentials: Array<{ params: Map<string, string> }> }).credentials[0]!.params));
    const two = parseCredentials(['Digest realm="upstream", username="u"', 'Digest realm="a2b-gateway", username="v"']);
    expect(two.ok && two.credentials.map((c) => c.params.get('realm'))).toEqual(['upstream', 'a2b-gateway']);
  });

  it('marks duplicated parameters, which validation refuses', () => {
    const r = parseCredentials([header + ', username="someone-else"']);
    expect(r.ok && r.credentials[0]!.duplicate).toBe(true);
    if (r.ok) expect(validateDigest(r.credentials[0]!)).toEqual({ ok: false, reason: 'duplicate parameter' });
  });

  it('reports garbage as malformed instead of throwing', () => {
    for (const bad of ['Digest username="unterminated', '=x', 'Digest a=b c', 'Digest a="b"c="d"', '"quoted"', 'Digest a=b,, ,=c', 'x'.repeat(MAX_AUTH_HEADER + 1)]) {
      expect(parseCredentials([bad]).ok, bad).toBe(false);
    }
    fc.assert(fc.property(fc.array(fc.string({ maxLength: 200 }), { maxLength: 4 }), (vals) => { parseCredentials(vals); return true; }), { numRuns: 2000 });
    // and the same with digest-looking fragments
    const frag = fc.constantFrom('Digest', ' ', ',', '=', '"', '\\', 'username', 'realm', 'x', '\t', 'nc=00000001');
    fc.assert(fc.property(fc.array(frag, { maxLength: 40 }), (parts) => {
      const r = parseCredentials([parts.join('')]);
      if (r.ok) for (const c of r.credentials) validateDigest(c);
      return true;
    }), { numRuns: 2000 });
  });

  it('validates what a qop=auth response must carry', () => {
    const base = { username: 'u', realm: 'r', nonce: 'n', uri: 'sip:x@y', response: '0'.repeat(64), algorithm: 'SHA-256', qop: 'auth', nc: '0000000a', cnonce: 'c' };
    const check = (over: Record<string, string | undefined>) => {
      const params = new Map(Object.entries({ ...base, ...over }).filter(([, v]) => v !== undefined) as Array<[string, string]>);
      return validateDigest({ scheme: 'Digest', params, duplicate: false });
    };
    expect(check({})).toMatchObject({ ok: true, value: { algorithm: 'SHA-256', ncValue: 10 } });
    expect(check({ algorithm: 'sha-256' }).ok).toBe(true);
    expect(check({ algorithm: undefined }).ok).toBe(false); // absent = MD5, whose response is 32 hex digits
    expect(check({ algorithm: undefined, response: '0'.repeat(32) })).toMatchObject({ ok: true, value: { algorithm: 'MD5' } });
    expect(check({ algorithm: 'SHA-512-256' })).toEqual({ ok: false, reason: 'unsupported algorithm' });
    expect(check({ qop: undefined })).toEqual({ ok: false, reason: 'qop=auth required' });
    expect(check({ qop: 'auth-int' })).toEqual({ ok: false, reason: 'qop=auth required' });
    expect(check({ nc: '1' })).toEqual({ ok: false, reason: 'bad nc' });
    expect(check({ nc: '00000000' })).toEqual({ ok: false, reason: 'nc must start at 1' });
    expect(check({ cnonce: undefined })).toEqual({ ok: false, reason: 'no cnonce' });
    expect(check({ response: 'z'.repeat(64) })).toEqual({ ok: false, reason: 'bad response' });
    expect(check({ username: '' })).toEqual({ ok: false, reason: 'no username' });
    expect(check({ uri: undefined }).ok).toBe(false);
    expect(check({ userhash: 'true' })).toEqual({ ok: false, reason: 'userhash not offered' });
  });
});

describe('challenge', () => {
  it('quotes realm and nonce, offers qop=auth and marks stale', () => {
    expect(challengeValue({ realm: 'a "b"', nonce: 'N', algorithm: 'SHA-256' })).toBe('Digest realm="a \\"b\\"", nonce="N", algorithm=SHA-256, qop="auth"');
    expect(challengeValue({ realm: 'r', nonce: 'N', algorithm: 'MD5', stale: true })).toBe('Digest realm="r", nonce="N", algorithm=MD5, qop="auth", stale=true');
    expect(quote('\\')).toBe('"\\\\"');
  });

  it('parses back what it builds', () => {
    const r = parseCredentials([challengeValue({ realm: 'we\\ird "realm"', nonce: 'N', algorithm: 'MD5', stale: true })]);
    expect(r.ok && r.credentials[0]!.params.get('realm')).toBe('we\\ird "realm"');
  });
});
