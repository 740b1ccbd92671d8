import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { contentLength, parseMessage, StreamFramer, type FramerErrorKind } from '../../../src/sip/index.js';

const DIR = join(import.meta.dirname, '../../fixtures/sip');
const INVITE = readFileSync(join(DIR, 'valid-invite.sip'));
const COMPACT = readFileSync(join(DIR, 'valid-compact.sip'));
const RESPONSE = readFileSync(join(DIR, 'valid-response-200.sip'));

function run(chunks: Buffer[], max = 65535) {
  const out = { messages: [] as Buffer[], pings: 0, errors: [] as Array<[FramerErrorKind, string, boolean]> };
  const f = new StreamFramer(max, {
    onMessage: (b) => out.messages.push(Buffer.from(b)),
    onPing: () => { out.pings++; },
    onError: (k, r, head) => out.errors.push([k, r, head !== undefined]),
  });
  for (const c of chunks) f.push(c);
  return { ...out, framer: f };
}

function bytes(...parts: Array<Buffer | string>): Buffer {
  return Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : p)));
}

describe('StreamFramer', () => {
  it('frames back-to-back messages delivered in one chunk', () => {
    const r = run([bytes(INVITE, COMPACT, RESPONSE)]);
    expect(r.messages).toEqual([INVITE, COMPACT, RESPONSE]);
    for (const m of r.messages) expect(parseMessage(m, { stream: true }).ok).toBe(true);
  });

  it('frames a stream delivered one byte at a time', () => {
    const all = bytes(INVITE, RESPONSE);
    const r = run([...all].map((b) => Buffer.from([b])));
    expect(r.messages).toEqual([INVITE, RESPONSE]);
    expect(r.framer.buffered).toBe(0);
  });

  it('a large message trickling in one byte per segment is framed, and earlier messages stay intact', () => {
    const pad = `X-Pad: ${'p'.repeat(12_000)}\r\n`;
    const big = Buffer.from(INVITE.toString('latin1').replace('Max-Forwards: 70\r\n', `Max-Forwards: 70\r\n${pad}`), 'latin1');
    const got: Buffer[] = [];
    const f = new StreamFramer(65535, { onMessage: (b) => got.push(b), onPing: () => undefined, onError: (k) => { throw new Error(k); } });
    const all = Buffer.concat([big, big, big]);
    for (let i = 0; i < all.length; i++) f.push(all.subarray(i, i + 1));
    expect(got).toHaveLength(3);
    for (const g of got) expect(g.equals(big)).toBe(true); // not overwritten by later input (the store only grows)
    expect(f.buffered).toBe(0);
  });

  it('answers a CRLFCRLF keep-alive ping, even split across chunks, and skips lone CRLF pongs', () => {
    const r = run([bytes('\r\n\r\n'), bytes('\r\n'), bytes(INVITE.subarray(0, 10)), bytes(INVITE.subarray(10), '\r'), bytes('\n\r'), bytes('\n'), bytes('\r\n', RESPONSE)]);
    expect(r.pings).toBe(2);
    expect(r.messages).toEqual([INVITE, RESPONSE]);
  });

  it('a body containing a blank line is read by Content-Length, not by CRLFCRLF', () => {
    const body = 'a=1\r\n\r\nb=2\r\n';
    const msg = bytes(`MESSAGE sip:x@y SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nl: ${body.length}\r\n\r\n${body}`);
    const r = run([msg, msg]);
    expect(r.messages).toEqual([msg, msg]);
  });

  it('a message without Content-Length is a fatal error that hands over the header block', () => {
    const noCl = readFileSync(join(DIR, 'valid-udp-no-cl.sip'));
    const r = run([noCl, INVITE]);
    expect(r.errors).toEqual([['missing-content-length', 'Missing Content-Length', true]]);
    expect(r.messages).toEqual([]);
    expect(r.framer.failed).toBe(true);
  });

  it('refuses a message over the size limit, by Content-Length or by an endless header block', () => {
    expect(run([INVITE], 200).errors).toEqual([['too-large', 'Message Too Large', true]]);
    const endless = run([bytes('INVITE sip:x SIP/2.0\r\n'), bytes('X-Pad: '.padEnd(300, 'a'))], 256);
    expect(endless.errors).toEqual([['too-large', 'Message Too Large', false]]);
  });

  it('rejects conflicting or malformed Content-Length and a bare CR between messages', () => {
    expect(run([bytes('OPTIONS sip:x SIP/2.0\r\nContent-Length: 1\r\nl: 2\r\n\r\nab')]).errors[0]?.[0]).toBe('bad-content-length');
    expect(run([bytes('OPTIONS sip:x SIP/2.0\r\nContent-Length: x\r\n\r\n')]).errors[0]?.[0]).toBe('bad-content-length');
    expect(run([bytes('\rX')]).errors[0]?.[0]).toBe('bad-framing');
  });

  it('reads Content-Length in any case and compact form, and ignores look-alike names', () => {
    const head = (s: string): Buffer => bytes(`INVITE sip:x SIP/2.0\r\n${s}\r\n\r\n`);
    expect(contentLength(head('content-length : 12'), head('content-length : 12').length)).toBe(12);
    expect(contentLength(head('L:7'), head('L:7').length)).toBe(7);
    expect(contentLength(head('Location: 5\r\nContent-Language: en'), 60)).toBe(-1);
  });
});
