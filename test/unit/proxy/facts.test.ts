import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import { describe, expect, it } from 'vitest';
import { factsOf } from '../../../src/proxy/facts.js';
import { detached, parseMessage, type SipRequest } from '../../../src/sip/index.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

// A header block of ~3 KB, as INVITEs with long Via chains, Record-Routes and vendor headers have.
const PAD = `X-Pad: ${'p'.repeat(2500)}\r\n`;
function invite(i: number): SipRequest {
  const text = `INVITE sip:+4915112345678@gw.example.net SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-${i}-abcdef\r\n` +
    `Max-Forwards: 70\r\nFrom: "Alice" <sip:1001@gw.example.net>;tag=8d3f61a2-${i}-tagtagtag\r\nTo: <sip:+4915112345678@gw.example.net>\r\n` +
    `Call-ID: NjRiZDk0ZmY3YzQ2YjRmYzA1NjE0ZTVhN2U4OWQwYjE-${i}\r\nCSeq: 1 INVITE\r\nUser-Agent: Zoiper rv2.10.8.3\r\n${PAD}Content-Length: 0\r\n\r\n`;
  const r = parseMessage(Buffer.from(text, 'latin1'));
  if (!r.ok) throw new Error(r.error.reason);
  return r.message as SipRequest;
}

/** Heap bytes kept per item when `keep` is held for N parsed requests and the requests themselves are dropped. */
function retainedPerItem(keep: (req: SipRequest) => unknown): number {
  const n = 3000;
  const held: unknown[] = new Array(n);
  gc();
  const before = process.memoryUsage().heapUsed;
  for (let i = 0; i < n; i++) held[i] = keep(invite(i));
  gc();
  const after = process.memoryUsage().heapUsed;
  expect(held.length).toBe(n);
  return (after - before) / n;
}

describe('strings that outlive their message', () => {
  it('detached() keeps the text', () => {
    const m = invite(7);
    expect(detached(m.callId)).toBe(m.callId);
    expect(detached('short')).toBe('short');
    expect(detached('')).toBe('');
  });

  it('a kept slice holds the whole header block; a detached copy does not', () => {
    expect(retainedPerItem((r) => r.callId)).toBeGreaterThan(2500);
    expect(retainedPerItem((r) => detached(r.callId))).toBeLessThan(400);
  });

  it('the facts a call keeps do not hold the request', () => {
    // What accounting, billing, the dispatcher and dialogs keep for the length of a call.
    const kept = retainedPerItem((r) => {
      const f = factsOf(r);
      return [f.callId, f.fromTag, f.fromUser, f.fromDomain, f.ruri, f.ruriUser, f.ruriHost, f.toUser, f.toDomain, f.userAgent];
    });
    expect(kept).toBeLessThan(1200);
  });
});
