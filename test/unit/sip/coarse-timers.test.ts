// Coalesced fixed-delay timers: grouping by the slack, firing window, error isolation, clock steps, close().
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { CoarseTimers } from '../../../src/sip/coarse-timers.js';

beforeEach(() => { vi.useFakeTimers({ now: 1_000_000 }); });
afterEach(() => { vi.useRealTimers(); });

describe('CoarseTimers', () => {
  it('fires each item between delay and delay + slack after it was added, one Node timer per slack window', () => {
    const fired: Array<[string, number]> = [];
    const t0 = Date.now();
    const ct = new CoarseTimers<string>(1000, 100, (x) => fired.push([x, Date.now() - t0]), () => undefined);
    ct.add('a');
    vi.advanceTimersByTime(60);
    ct.add('b');
    vi.advanceTimersByTime(60); // 120 ms: a new window
    ct.add('c');
    expect(vi.getTimerCount()).toBe(2);
    expect(ct.size).toBe(3);
    vi.advanceTimersByTime(1100 - 120 - 1);
    expect(fired).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(fired).toEqual([['a', 1100], ['b', 1100]]); // b waited 1040 ms
    vi.advanceTimersByTime(120);
    expect(fired.at(-1)).toEqual(['c', 1220]); // c waited 1100 ms
    expect(ct.size).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('slack 0: one timer per item, exactly on time', () => {
    const fired: number[] = [];
    const t0 = Date.now();
    const ct = new CoarseTimers<number>(500, 0, (x) => fired.push(Date.now() - t0 - x), () => undefined);
    ct.add(0);
    ct.add(0);
    vi.advanceTimersByTime(7);
    ct.add(7);
    expect(vi.getTimerCount()).toBe(3);
    vi.advanceTimersByTime(600);
    expect(fired).toEqual([500, 500, 500]);
  });

  it('a throwing callback is reported and the rest of its bucket still fires', () => {
    const errors: unknown[] = [];
    const fired: number[] = [];
    const ct = new CoarseTimers<number>(100, 50, (x) => { if (x === 2) throw new Error('boom'); fired.push(x); }, (e) => errors.push(e));
    for (const x of [1, 2, 3]) ct.add(x);
    vi.advanceTimersByTime(150);
    expect(fired).toEqual([1, 3]);
    expect(errors).toHaveLength(1);
  });

  it('a clock stepped back opens a new window rather than joining an old one; the delay is still the timer\'s', () => {
    const fired: string[] = [];
    const ct = new CoarseTimers<string>(1000, 100, (x) => fired.push(x), () => undefined);
    ct.add('before');
    vi.setSystemTime(Date.now() - 60_000);
    ct.add('after-step');
    expect(vi.getTimerCount()).toBe(2);
    vi.advanceTimersByTime(1100);
    expect(fired).toEqual(['before', 'after-step']);
  });

  it('close() drops everything pending', () => {
    const fired: number[] = [];
    const ct = new CoarseTimers<number>(100, 10, (x) => fired.push(x), () => undefined);
    ct.add(1);
    vi.advanceTimersByTime(20);
    ct.add(2);
    ct.close();
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(1000);
    expect(fired).toEqual([]);
    ct.add(3); // usable again
    vi.advanceTimersByTime(110);
    expect(fired).toEqual([3]);
  });
});
