import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { CallSlots } from '../../../src/billing/slots.js';

describe('CallSlots (simultaneous calls per account)', () => {
  let slots: CallSlots;
  let leaks: string[];
  beforeEach(() => {
    vi.useFakeTimers();
    leaks = [];
    slots = new CallSlots({ setupTimeoutMs: 60_000, answeredTimeoutMs: 3_600_000, onLeak: (s) => leaks.push(s.callId) });
  });
  afterEach(() => {
    slots.close();
    vi.useRealTimers();
  });

  it('refuses past the limit and admits again after a release; releasing twice frees one slot', () => {
    const r1 = slots.tryAcquire('a', 'acct', 2)!;
    const r2 = slots.tryAcquire('b', 'acct', 2)!;
    expect(slots.tryAcquire('c', 'acct', 2)).toBeUndefined();
    expect(slots.tryAcquire('x', 'other', 2)).toBeDefined();
    r1();
    r1();
    expect(slots.count('acct')).toBe(1);
    expect(slots.tryAcquire('c', 'acct', 2)).toBeDefined();
    expect(slots.tryAcquire('d', 'acct', 2)).toBeUndefined();
    r2();
    expect(slots.count('acct')).toBe(1);
  });

  it('holds reserved credit per account until the slot is freed', () => {
    const r1 = slots.tryAcquire('a', 'acct', 0, 500n)!;
    slots.tryAcquire('b', 'acct', 0, 250n);
    slots.tryAcquire('c', 'acct', 0);
    expect(slots.reserved('acct')).toBe(750n);
    r1();
    r1();
    expect(slots.reserved('acct')).toBe(250n);
    slots.failed('b');
    expect(slots.reserved('acct')).toBe(0n);
    expect(slots.reserved('other')).toBe(0n);
  });

  it('limit 0 counts without refusing', () => {
    for (let i = 0; i < 5; i++) expect(slots.tryAcquire(`c${i}`, 'acct', 0)).toBeDefined();
    expect(slots.count('acct')).toBe(5);
  });

  it('calls sharing a Call-ID (different caller tags) are freed one by one, never all by one event', () => {
    // A caller chooses its Call-IDs: reusing one must not let the end of one call free the others' slots.
    slots.tryAcquire('X', 'acct', 3, 100n, 't1');
    slots.tryAcquire('X', 'acct', 3, 100n, 't2');
    slots.tryAcquire('X', 'acct', 3, 100n, 't3');
    slots.answered('X', 't1');
    slots.failed('X', 't2');
    expect(slots.count('acct')).toBe(2);
    // t3 still ringing: the failure of t2 did not free it, and t1's answer did not mark it answered.
    slots.failed('X', 't3');
    expect(slots.count('acct')).toBe(1);
    slots.tryAcquire('X', 'acct', 3, 100n, 't4');
    slots.answered('X', 't4');
    // A BYE from t1's callee: From = callee tag (unknown here), To = t1.
    slots.ended('X', ['callee-tag', 't1']);
    expect(slots.count('acct')).toBe(1);
    expect(slots.reserved('acct')).toBe(100n);
    // Tags naming no call free nothing while two calls share the Call-ID...
    slots.tryAcquire('X', 'acct', 3, 0n, 't5');
    slots.ended('X', ['nobody', 'nobody-either']);
    expect(slots.count('acct')).toBe(2);
    // ...and the lone call of a Call-ID when only one is left.
    slots.failed('X', 't5');
    slots.ended('X', ['nobody', 'nobody-either']);
    expect(slots.count('acct')).toBe(0);
  });

  it('failed frees unanswered slots only; ended frees the answered one', () => {
    slots.tryAcquire('a', 'acct', 0);
    slots.tryAcquire('b', 'acct', 0);
    slots.answered('b');
    slots.failed('a');
    slots.failed('b');
    expect(slots.count('acct')).toBe(1);
    slots.ended('b');
    expect(slots.count('acct')).toBe(0);
    expect(slots.total).toBe(0);
  });

  it('a slot never leaks: setup deadline while ringing, lifetime deadline once answered', () => {
    slots.tryAcquire('ringing', 'acct', 0);
    slots.tryAcquire('up', 'acct', 0);
    slots.answered('up');
    vi.advanceTimersByTime(60_000);
    expect(leaks).toEqual(['ringing']);
    expect(slots.count('acct')).toBe(1);
    vi.advanceTimersByTime(3_600_000);
    expect(leaks).toEqual(['ringing', 'up']);
    expect(slots.count('acct')).toBe(0);
  });

  it('a released slot does not fire its deadline', () => {
    const r = slots.tryAcquire('a', 'acct', 0)!;
    r();
    vi.advanceTimersByTime(120_000);
    expect(leaks).toEqual([]);
  });

  it('adopts calls restored after a restart (once per call)', () => {
    slots.adopt('r1', 'acct', 30_000);
    slots.adopt('r1', 'acct', 30_000);
    expect(slots.count('acct')).toBe(1);
    expect(slots.tryAcquire('n', 'acct', 1)).toBeUndefined();
    slots.ended('r1');
    expect(slots.tryAcquire('n', 'acct', 1)).toBeDefined();
  });
});
