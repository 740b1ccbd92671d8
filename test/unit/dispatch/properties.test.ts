import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ALGORITHMS } from '../../../src/dispatch/algorithms.js';
import { parseDestinationUri } from '../../../src/dispatch/destination.js';
import { makeDispatcher, row } from './helpers.js';

describe('selection properties (fast-check)', () => {
  it('returns each usable destination exactly once, active before probing, never inactive/disabled, deterministically', () => {
    fc.assert(fc.property(
      fc.constantFrom(...ALGORITHMS),
      fc.array(fc.record({ state: fc.integer({ min: 0, max: 3 }), weight: fc.integer({ min: 0, max: 5 }), priority: fc.integer({ min: -3, max: 3 }) }), { maxLength: 8 }),
      fc.string(),
      fc.string(),
      (alg, specs, callId, fromUser) => {
        const rows = specs.map((s, i) => row(i + 1, s));
        const d = makeDispatcher(rows, { defaultAlgorithm: alg });
        const order = d.select(1, { callId, fromUser }).map((t) => t.id);
        const stateOf = (id: string) => specs[Number(id) - 1]!.state;
        expect(new Set(order).size).toBe(order.length);
        expect(order.slice().sort()).toEqual(rows.filter((r) => r.state === 0 || r.state === 2).map((r) => String(r.id)).sort());
        const firstProbing = order.findIndex((id) => stateOf(id) === 2);
        if (firstProbing >= 0) expect(order.slice(firstProbing).every((id) => stateOf(id) === 2)).toBe(true);
        if (alg !== 'round-robin') expect(d.select(1, { callId, fromUser }).map((t) => t.id)).toEqual(order);
      },
    ), { numRuns: 300 });
  });
});

describe('destination URIs', () => {
  it.each([
    ['sip:10.0.0.1', { host: '10.0.0.1', port: 5060, proto: 'udp' }],
    ['SIP:asterisk-1.example.net:5070;TRANSPORT=TCP;lr', { host: 'asterisk-1.example.net', port: 5070, proto: 'tcp' }],
    ['sip:pbx@10.0.0.9:5080', { host: '10.0.0.9', port: 5080, proto: 'udp' }],
    ['sip:[::1]', { host: '::1', port: 5060, proto: 'udp' }],
  ])('parses %s', (uri, expected) => {
    expect(parseDestinationUri(uri)).toEqual(expected);
  });

  it.each([
    ['', /empty/],
    ['10.0.0.1:5060', /must start with sip:/],
    ['sips:10.0.0.1', /must start with sip:/],
    ['sip:', /invalid host/],
    ['sip:10.0.0.1:0', /invalid port "0"/],
    ['sip:10.0.0.1:50a', /invalid port/],
    ['sip:ho st', /invalid host/],
    ['sip:[::1', /unterminated IPv6/],
    ['sip:[::1]x', /junk after the host/],
    ['sip:10.0.0.1;transport=tls', /unsupported transport "tls"/],
    ['sip:10.0.0.1?X-Foo=1', /must not carry URI headers/],
  ])('rejects %j', (uri, problem) => {
    const r = parseDestinationUri(uri);
    expect('problem' in r && r.problem).toMatch(problem);
  });
});
