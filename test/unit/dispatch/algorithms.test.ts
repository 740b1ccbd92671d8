import { describe, expect, it } from 'vitest';
import { call, firstPicks, makeDispatcher, row } from './helpers.js';
import { fnv1a32 } from '../../../src/dispatch/hash.js';

const three = [row(1), row(2), row(3)];

describe('fnv1a32', () => {
  it('matches the published FNV-1a test vectors', () => {
    expect(fnv1a32('')).toBe(0x811c9dc5);
    expect(fnv1a32('a')).toBe(0xe40c292c);
    expect(fnv1a32('foobar')).toBe(0xbf9cf968);
  });
});

describe('hash over Call-ID (default)', () => {
  it('keeps a Call-ID on the same box while the set is unchanged', () => {
    const d = makeDispatcher(three);
    const first = d.select(1, call('abc@host')).map((t) => t.id);
    for (let i = 0; i < 20; i++) expect(d.select(1, call('abc@host', `user${i}`)).map((t) => t.id)).toEqual(first);
    // a freshly built dispatcher (another instance, a restart) agrees
    expect(makeDispatcher(three).select(1, call('abc@host')).map((t) => t.id)).toEqual(first);
  });

  it('spreads 10,000 Call-IDs roughly evenly over three boxes', () => {
    const counts = firstPicks(makeDispatcher(three), 10_000);
    expect([...counts.keys()].sort()).toEqual(['1', '2', '3']);
    for (const c of counts.values()) expect(Math.abs(c - 10_000 / 3)).toBeLessThan(10_000 * 0.03);
  });

  it('returns every usable box once: the chosen one first, then a failover order', () => {
    const targets = makeDispatcher(three).select(1, call('x@y'));
    expect(targets.map((t) => t.id).sort()).toEqual(['1', '2', '3']);
    expect(targets[0]).toMatchObject({ uri: expect.stringMatching(/^sip:10\.0\.0\.\d:5060;transport=udp$/), port: 5060, proto: 'udp' });
  });

  it('moves only the calls of a box that leaves; the others stay where they were', () => {
    const d = makeDispatcher(three);
    const before = Array.from({ length: 3000 }, (_, i) => d.select(1, call(`c${i}`))[0]!.id);
    d.setState('2', 'disabled');
    let moved = 0;
    const movedTo = new Map<string, number>();
    for (let i = 0; i < 3000; i++) {
      const now = d.select(1, call(`c${i}`))[0]!.id;
      if (before[i] !== '2') expect(now).toBe(before[i]);
      else { moved++; movedTo.set(now, (movedTo.get(now) ?? 0) + 1); }
    }
    expect(moved).toBeGreaterThan(800);
    // the orphaned calls spread over both survivors, not all onto the "next" box
    expect(movedTo.get('1')! / moved).toBeGreaterThan(0.4);
    expect(movedTo.get('3')! / moved).toBeGreaterThan(0.4);
  });
});

describe('hash over From user', () => {
  it('sends every call of one caller to the same box, whatever the Call-ID', () => {
    const d = makeDispatcher(three, { defaultAlgorithm: 'hash-from' });
    const box = d.select(1, call('c1', 'bob'))[0]!.id;
    for (let i = 0; i < 50; i++) expect(d.select(1, call(`other-${i}`, 'bob'))[0]!.id).toBe(box);
    const users = new Set(Array.from({ length: 300 }, (_, i) => d.select(1, call('same', `user${i}`))[0]!.id));
    expect(users.size).toBe(3);
  });

  it('falls back to the Call-ID when the From user is empty', () => {
    const d = makeDispatcher(three, { defaultAlgorithm: 'hash-from' });
    const picks = new Set(Array.from({ length: 100 }, (_, i) => d.select(1, call(`cid-${i}`, ''))[0]!.id));
    expect(picks.size).toBe(3);
  });
});

describe('round-robin', () => {
  it('cycles through the boxes in id order, failover continuing the cycle', () => {
    const d = makeDispatcher([row(3), row(1), row(2)], { algorithms: { '1': 'round-robin' } });
    const orders = Array.from({ length: 4 }, (_, i) => d.select(1, call(`same-${i}`)).map((t) => t.id).join(''));
    expect(orders).toEqual(['123', '231', '312', '123']);
  });
});

describe('weighted', () => {
  it('honours weights within tolerance', () => {
    const d = makeDispatcher([row(1, { weight: 1 }), row(2, { weight: 2 }), row(3, { weight: 7 })], { defaultAlgorithm: 'weighted' });
    const counts = firstPicks(d, 10_000);
    expect(counts.get('1')! / 10_000).toBeCloseTo(0.1, 1);
    expect(counts.get('2')! / 10_000).toBeCloseTo(0.2, 1);
    expect(counts.get('3')! / 10_000).toBeCloseTo(0.7, 1);
    for (const [id, share] of [['1', 0.1], ['2', 0.2], ['3', 0.7]] as const) expect(Math.abs(counts.get(id)! / 10_000 - share)).toBeLessThan(0.025);
  });

  it('is stable per Call-ID and never puts a weight-0 box first while another is usable', () => {
    const d = makeDispatcher([row(1, { weight: 0 }), row(2, { weight: 5 }), row(3, { weight: 5 })], { defaultAlgorithm: 'weighted' });
    for (let i = 0; i < 500; i++) {
      const order = d.select(1, call(`w${i}`)).map((t) => t.id);
      expect(order[0]).not.toBe('1');
      expect(order[2]).toBe('1');
      expect(d.select(1, call(`w${i}`)).map((t) => t.id)).toEqual(order);
    }
  });
});

describe('priority', () => {
  it('orders by priority, highest first, ties by id', () => {
    const d = makeDispatcher([row(1, { priority: 5 }), row(2, { priority: 10 }), row(3, { priority: 5 }), row(4, { priority: -1 })], { defaultAlgorithm: 'priority' });
    for (let i = 0; i < 5; i++) expect(d.select(1, call(`p${i}`)).map((t) => t.id)).toEqual(['2', '1', '3', '4']);
  });
});

describe('least active calls', () => {
  it('picks the box with the fewest active calls and fills the boxes evenly', () => {
    const d = makeDispatcher(three, { defaultAlgorithm: 'least-calls' });
    for (let i = 0; i < 30; i++) {
      const r = d.routeSet(1, call(`lc${i}`));
      expect(r.kind).toBe('targets');
    }
    expect(d.list().map((v) => v.activeCalls)).toEqual([10, 10, 10]);
  });

  it('prefers the idle box and orders the rest by load', () => {
    const d = makeDispatcher(three, { defaultAlgorithm: 'least-calls' });
    for (let i = 0; i < 5; i++) d.callStarted(`a${i}`, '1');
    for (let i = 0; i < 2; i++) d.callStarted(`b${i}`, '3');
    expect(d.select(1, call('new')).map((t) => t.id)).toEqual(['2', '3', '1']);
    for (let i = 0; i < 5; i++) d.callEnded(`a${i}`);
    expect(d.select(1, call('new'))[2]!.id).toBe('3');
  });
});

describe('sets and algorithms per set', () => {
  it('keeps sets apart and uses the algorithm configured for each', () => {
    const d = makeDispatcher([row(1), row(2), row(3, { setid: 2, priority: 1 }), row(4, { setid: 2, priority: 9 })], { algorithms: { '2': 'priority' } });
    expect(d.algorithmOf(1)).toBe('hash-callid');
    expect(d.algorithmOf(2)).toBe('priority');
    expect(d.select(2, call('x')).map((t) => t.id)).toEqual(['4', '3']);
    expect(d.select(1, call('x')).map((t) => t.id).sort()).toEqual(['1', '2']);
    expect(d.select(9, call('x'))).toEqual([]);
  });
});
