// Deterministic fuzzing of the receive path: tens of thousands of mutated messages through the parser (nothing
// may throw; whatever parses must be fully readable, editable and re-serialisable), and random chunkings of
// message streams through the TCP framer (what comes out must equal what went in).
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  createResponse, parseMessage, StreamFramer, type SipMessage,
} from '../../../src/sip/index.js';

const DIR = join(import.meta.dirname, '../../fixtures/sip');
const CORPUS = readdirSync(DIR).sort().map((f) => readFileSync(join(DIR, f)));
const VALID = readdirSync(DIR).filter((f) => f.startsWith('valid-') && !f.includes('no-cl') && !f.includes('trailing') && !f.includes('lf-only') && !f.includes('leading-crlf') && !f.includes('dblreq')).sort()
  .map((f) => readFileSync(join(DIR, f)));

const VALID_ALL = readdirSync(DIR).filter((f) => f.startsWith('valid-')).sort().map((f) => readFileSync(join(DIR, f)));

/** mulberry32: small, fast, deterministic. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const TOKENS = [':', ',', ';', '"', '\\', '<', '>', '[', ']', '@', '=', '?', '&', '%', ' ', '\t', '\r\n', '\r\n ', '\n', '\r',
  '\0', '\r\n\r\n', 'z9hG4bK', 'sip:', 'SIP/2.0', '4294967296', '99999999999', '-1', 'Via: ', 'l: 99\r\n', 'Content-Length: 0\r\n',
  'CSeq: 1 INVITE\r\n', 'v: SIP/2.0/UDP [::1', ';branch=', ';rport', ';received=', 'tag=', '\xff', '\u00e9', 'Max-Forwards: 0\r\n'];

function mutate(src: Buffer, rnd: () => number): Buffer {
  let b = Buffer.from(src);
  const n = 1 + Math.floor(rnd() * rnd() * 4);
  for (let k = 0; k < n; k++) {
    const pos = Math.floor(rnd() * (b.length + 1));
    switch (Math.floor(rnd() * 7)) {
      case 0: // flip a byte
        if (b.length) b[Math.min(pos, b.length - 1)] = Math.floor(rnd() * 256);
        break;
      case 1: { // insert a token
        const tok = Buffer.from(TOKENS[Math.floor(rnd() * TOKENS.length)]!, 'latin1');
        b = Buffer.concat([b.subarray(0, pos), tok, b.subarray(pos)]);
        break;
      }
      case 2: { // delete a range
        const len = Math.floor(rnd() * 20);
        b = Buffer.concat([b.subarray(0, pos), b.subarray(pos + len)]);
        break;
      }
      case 3: { // duplicate a range (repeated headers)
        const len = Math.floor(rnd() * 60);
        b = Buffer.concat([b.subarray(0, pos + len), b.subarray(pos, pos + len), b.subarray(pos + len)]);
        break;
      }
      case 4: // truncate
        b = b.subarray(0, pos);
        break;
      case 5: { // splice a line from another corpus message
        const other = CORPUS[Math.floor(rnd() * CORPUS.length)]!.toString('latin1').split('\r\n');
        const line = other[Math.floor(rnd() * other.length)]!;
        const nl = b.indexOf('\r\n', pos);
        const at = nl < 0 ? b.length : nl + 2;
        b = Buffer.concat([b.subarray(0, at), Buffer.from(`${line}\r\n`, 'latin1'), b.subarray(at)]);
        break;
      }
      default: { // case change of a run (header names are case-insensitive)
        const len = Math.floor(rnd() * 12);
        for (let i = pos; i < Math.min(b.length, pos + len); i++) {
          const c = b[i]!;
          if (c >= 97 && c <= 122) b[i] = c - 32;
          else if (c >= 65 && c <= 90) b[i] = c + 32;
        }
      }
    }
  }
  return b;
}

/** Touches everything the proxy can touch on a parsed message; `deep` also builds, edits and re-parses. */
function exercise(m: SipMessage, deep: boolean): void {
  void m.callId; void m.cseq; void m.from; void m.to; void m.vias; void m.topVia;
  void m.routes; void m.recordRoutes; void m.contacts; void m.maxForwards; void m.contentLength;
  for (const h of m.headers) { m.header(h.name); m.headerValues(h.lname); }
  if (m.isRequest()) void m.uri;
  if (!deep) return;
  if (m.isRequest()) {
    createResponse(m, 100).toBuffer();
    createResponse(m, 486).toBuffer();
  }
  const out = m.toBuffer();
  const again = parseMessage(out);
  if (!again.ok) throw new Error(`re-serialised message does not parse: ${again.error.reason}`);
  const c = m.clone();
  c.popVia();
  c.pushVia('SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKfuzz;rport');
  c.removeFirstRoute();
  c.prependRecordRoute('<sip:192.0.2.1;lr>');
  c.removeHeader('p-accountcode');
  c.addHeader('P-Accountcode', '42');
  if (c.maxForwards !== 0) c.decrementMaxForwards();
  const edited = parseMessage(c.toBuffer());
  if (!edited.ok) throw new Error(`edited message does not parse: ${edited.error.reason}`);
}

describe('parser fuzz', () => {
  it('20 000 mutated messages: nothing throws, every success is readable, editable and round-trips', () => {
    const rnd = prng(0x5eed);
    let ok = 0;
    let answerable = 0;
    let garbage = 0;
    for (let i = 0; i < 20_000; i++) {
      const input = mutate(i % 4 === 0 ? CORPUS[(i >> 2) % CORPUS.length]! : VALID_ALL[i % VALID_ALL.length]!, rnd);
      const stream = i % 5 === 0;
      const r = parseMessage(input, { maxMessageSize: 4096, stream });
      if (r.ok) {
        ok++;
        try {
          exercise(r.message, ok % 4 === 0);
        } catch (e) {
          throw new Error(`input #${i} ${JSON.stringify(input.toString('latin1'))}: ${(e as Error).message}`);
        }
      } else if (r.error.answerable) {
        answerable++;
        if (r.error.reason.length === 0 || /[\r\n]/.test(r.error.reason)) throw new Error(`bad reason phrase ${r.error.reason}`);
        createResponse(r.error.message!, r.error.status, { reason: r.error.reason }).toBuffer();
      } else {
        garbage++;
      }
    }
    console.log(`parser fuzz: ${ok} parsed, ${answerable} answerable errors, ${garbage} garbage`);
    // the mutations must actually reach every outcome
    expect(ok).toBeGreaterThan(4000);
    expect(answerable).toBeGreaterThan(2000);
    expect(garbage).toBeGreaterThan(2000);
  });
});

describe('framer fuzz', () => {
  it('1 000 random chunkings of message streams with keep-alives frame back exactly the messages sent', () => {
    const rnd = prng(42);
    for (let round = 0; round < 1000; round++) {
      const sent: Buffer[] = [];
      const parts: Buffer[] = [];
      let pings = 0;
      const count = 1 + Math.floor(rnd() * 5);
      for (let k = 0; k < count; k++) {
        if (rnd() < 0.3) { parts.push(Buffer.from('\r\n\r\n')); pings++; }
        if (rnd() < 0.2) parts.push(Buffer.from('\r\n'));
        const m = VALID[Math.floor(rnd() * VALID.length)]!;
        sent.push(m);
        parts.push(m);
      }
      const stream = Buffer.concat(parts);
      const got: Buffer[] = [];
      let gotPings = 0;
      const f = new StreamFramer(65535, {
        onMessage: (b) => got.push(Buffer.from(b)),
        onPing: () => { gotPings++; },
        onError: (k, r) => { throw new Error(`framer error ${k} ${r}`); },
      });
      let pos = 0;
      while (pos < stream.length) {
        const len = rnd() < 0.5 ? 1 + Math.floor(rnd() * 8) : 1 + Math.floor(rnd() * 600);
        f.push(stream.subarray(pos, pos + len));
        pos += len;
      }
      // (Buffer.equals: vitest's deep equality on buffers is far too slow for thousands of rounds)
      if (got.length !== sent.length || got.some((g, i) => !g.equals(sent[i]!)) || gotPings !== pings) {
        throw new Error(`round ${round}: framed ${got.length}/${sent.length} messages, ${gotPings}/${pings} pings`);
      }
      for (const m of got) if (!parseMessage(m, { stream: true }).ok) throw new Error(`round ${round}: framed message does not parse`);
    }
  });

  it('2 000 mutated streams never make the framer throw', () => {
    const rnd = prng(7);
    for (let round = 0; round < 2000; round++) {
      const stream = mutate(Buffer.concat([VALID[round % VALID.length]!, VALID[(round + 1) % VALID.length]!]), rnd);
      const f = new StreamFramer(2048, {
        onMessage: (b) => { parseMessage(b, { stream: true }); },
        onPing: () => undefined,
        onError: () => undefined,
      });
      let pos = 0;
      while (pos < stream.length) {
        const len = 1 + Math.floor(rnd() * 200);
        f.push(stream.subarray(pos, pos + len));
        pos += len;
      }
    }
  });
});
