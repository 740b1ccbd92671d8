import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  applicableRates, availableCredit, budgetSeconds, callCost, formatMoney, normaliseNumber, parseMoney, prefixCandidates,
  weekMinuteClock, type RateCandidate,
} from '../../../src/billing/rating.js';

const m = (s: string) => parseMoney(s)!;

function rate(prefix: string, perMin: string, initblock: number, billingblock: number, extra: Partial<RateCandidate> = {}): RateCandidate {
  return {
    rateId: 1, planId: 1, dialprefix: prefix, rate: m(perMin), initblock, billingblock,
    connectcharge: 0n, disconnectcharge: 0n, startSec: 0, stopSec: 0, planStartSec: 0, planStopSec: 0,
    starttime: 0, endtime: 10079, ...extra,
  };
}

describe('money', () => {
  it('parses DECIMAL(15,5) text exactly', () => {
    expect(parseMoney('0.10000')).toBe(10000n);
    expect(parseMoney('10')).toBe(1000000n);
    expect(parseMoney('-3.5')).toBe(-350000n);
    expect(parseMoney('.06')).toBe(6000n);
    expect(parseMoney(50)).toBe(5000000n);
    expect(parseMoney('0.123456789')).toBe(12345n);
    expect(parseMoney('1e5')).toBeUndefined();
    expect(parseMoney('')).toBeUndefined();
    expect(parseMoney(null)).toBeUndefined();
    expect(formatMoney(-350000n)).toBe('-3.50000');
  });

  it('adds the credit limit for postpaid cards only', () => {
    expect(availableCredit({ credit: m('-20'), typepaid: 1, creditlimit: m('50') })).toBe(m('30'));
    expect(availableCredit({ credit: m('5'), typepaid: 0, creditlimit: m('50') })).toBe(m('5'));
  });
});

describe('dialled number', () => {
  it("strips a leading '+' or '00' and separators", () => {
    expect(normaliseNumber('+441234')).toBe('441234');
    expect(normaliseNumber('00441234')).toBe('441234');
    expect(normaliseNumber('1999-555.01')).toBe('199955501');
    expect(normaliseNumber('0441234')).toBe('0441234');
  });
  it('refuses what is not a number', () => {
    expect(normaliseNumber('alice')).toBeUndefined();
    expect(normaliseNumber('+')).toBeUndefined();
    expect(normaliseNumber('12*3')).toBeUndefined();
    expect(normaliseNumber('1'.repeat(31))).toBeUndefined();
    expect(normaliseNumber('')).toBeUndefined();
  });
  it('looks up every prefix, longest first, then the catch-all', () => {
    expect(prefixCandidates('4420')).toEqual(['4420', '442', '44', '4', 'defaultprefix']);
  });
});

describe('budget (seconds the credit buys)', () => {
  it('erin: 0.10 at 0.06/min in 6 s blocks buys 96 s', () => {
    expect(budgetSeconds(m('0.1'), rate('1999', '0.06', 6, 6))).toEqual({ kind: 'seconds', seconds: 96 });
  });
  it('charges the initial block first, then whole billing blocks', () => {
    // 1.00 at 1.20/min: 30 s initial block costs 0.60, leaves 0.40 = 3 blocks of 6 s (0.12 each) + change.
    expect(budgetSeconds(m('1'), rate('44', '1.2', 30, 6))).toEqual({ kind: 'seconds', seconds: 48 });
    // Not enough for the initial block: nothing.
    expect(budgetSeconds(m('0.59'), rate('44', '1.2', 30, 6))).toEqual({ kind: 'none' });
    // Exactly the initial block.
    expect(budgetSeconds(m('0.6'), rate('44', '1.2', 30, 6))).toEqual({ kind: 'seconds', seconds: 30 });
  });
  it('takes the connect and disconnect charges off before any time', () => {
    const r = rate('33', '0.10', 60, 60, { connectcharge: m('0.05') });
    expect(budgetSeconds(m('0.25'), r)).toEqual({ kind: 'seconds', seconds: 120 });
    expect(budgetSeconds(m('0.14'), r)).toEqual({ kind: 'none' });
    expect(budgetSeconds(m('0.04'), r)).toEqual({ kind: 'none' });
    expect(budgetSeconds(m('0.30'), { ...r, disconnectcharge: m('0.05') })).toEqual({ kind: 'seconds', seconds: 120 });
  });
  it('a free route is unlimited but still needs the connect charge', () => {
    expect(budgetSeconds(0n, rate('800', '0', 0, 0))).toEqual({ kind: 'unlimited' });
    expect(budgetSeconds(m('0.01'), rate('800', '0', 0, 0, { connectcharge: m('0.02') }))).toEqual({ kind: 'none' });
  });
  it('no initial block and no billing block: per-second billing', () => {
    expect(budgetSeconds(m('1'), rate('1', '0.60', 0, 0))).toEqual({ kind: 'seconds', seconds: 100 });
  });
  it('no credit or negative credit buys nothing', () => {
    expect(budgetSeconds(0n, rate('1', '0.02', 60, 60))).toEqual({ kind: 'none' });
    expect(budgetSeconds(m('-1'), rate('1', '0.02', 60, 60))).toEqual({ kind: 'none' });
  });
  it('bob: postpaid limit 50 at 0.02/min in 60 s blocks', () => {
    expect(budgetSeconds(m('50'), rate('1', '0.02', 60, 60))).toEqual({ kind: 'seconds', seconds: 150000 });
  });
  it('huge credit is capped to a safe integer', () => {
    expect(budgetSeconds(m('9999999999'), rate('1', '0.00001', 1, 1))).toEqual({ kind: 'seconds', seconds: 1_000_000_000 });
  });
});

describe('call cost (the inverse of the budget)', () => {
  it('charges, the initial block at least, then whole blocks, rounded up', () => {
    const r = rate('1999', '0.06', 6, 6);
    expect(callCost(96, r)).toBe(m('0.096'));
    expect(callCost(1, r)).toBe(m('0.006'));
    expect(callCost(7, r)).toBe(m('0.012'));
    expect(callCost(0, rate('33', '0.10', 60, 60, { connectcharge: m('0.05') }))).toBe(m('0.05'));
    expect(callCost(10, rate('1', '0.00001', 0, 0))).toBe(1n); // 0.0000017 rounds up to 0.00001
  });

  it('property: the budget is affordable and one more block is not', () => {
    fc.assert(fc.property(
      fc.bigInt({ min: 0n, max: 10_000_000_000n }), fc.bigInt({ min: 1n, max: 1_000_000n }),
      fc.integer({ min: 0, max: 120 }), fc.integer({ min: 0, max: 120 }), fc.bigInt({ min: 0n, max: 100_000n }),
      (credit, perMin, initblock, billingblock, connect) => {
        const r = rate('1', '0', initblock, billingblock, { rate: perMin, connectcharge: connect });
        const b = budgetSeconds(credit, r);
        if (b.kind === 'seconds') {
          if (b.seconds >= 1_000_000_000) return;
          expect(callCost(b.seconds, r)).toBeLessThanOrEqual(credit);
          expect(callCost(b.seconds + Math.max(1, billingblock), r)).toBeGreaterThan(credit);
        } else if (b.kind === 'none') {
          expect(callCost(Math.max(1, initblock), r)).toBeGreaterThan(credit);
        }
      },
    ), { numRuns: 500 });
  });
});

describe('which rate applies', () => {
  const now = Date.UTC(2026, 10, 23, 10, 30) / 1000; // Monday 10:30 UTC
  const wm = 10 * 60 + 30;
  const cards = [rate('1', '0.02', 60, 60), rate('1999', '0.06', 6, 6), rate('44', '0.05', 30, 6), rate('4420', '0.03', 30, 6)];

  it('longest prefix wins', () => {
    expect(applicableRates(cards, '19995550100', now, wm).map((r) => r.dialprefix)).toEqual(['1999']);
    expect(applicableRates(cards, '12125550100', now, wm).map((r) => r.dialprefix)).toEqual(['1']);
    expect(applicableRates(cards, '442071234567', now, wm).map((r) => r.dialprefix)).toEqual(['4420']);
    expect(applicableRates(cards, '447700900123', now, wm).map((r) => r.dialprefix)).toEqual(['44']);
    expect(applicableRates(cards, '33123456789', now, wm)).toEqual([]);
  });

  it('the catch-all applies only when no prefix matches', () => {
    const withDefault = [...cards, rate('defaultprefix', '0.5', 60, 60)];
    expect(applicableRates(withDefault, '33123', now, wm).map((r) => r.dialprefix)).toEqual(['defaultprefix']);
    expect(applicableRates(withDefault, '1999', now, wm).map((r) => r.dialprefix)).toEqual(['1999']);
  });

  it('ignores rate cards and plans outside their dates (stop exclusive, 0 = open)', () => {
    const expired = rate('1999', '0.01', 6, 6, { stopSec: now });
    const future = rate('1999', '0.01', 6, 6, { startSec: now + 1 });
    const planOver = rate('1999', '0.01', 6, 6, { planStopSec: now - 10 });
    const planLater = rate('1999', '0.01', 6, 6, { planStartSec: now + 60 });
    const live = rate('199', '0.07', 6, 6, { startSec: now, stopSec: now + 1 });
    expect(applicableRates([expired, future, planOver, planLater, live], '19995550100', now, wm).map((r) => r.dialprefix)).toEqual(['199']);
  });

  it('honours the week-minute window, both ends inclusive', () => {
    const peak = rate('44', '0.09', 30, 6, { starttime: wm, endtime: wm });
    const offPeak = rate('44', '0.02', 30, 6, { starttime: wm + 1, endtime: 10079 });
    expect(applicableRates([peak, offPeak], '4477', now, wm).map((r) => r.rate)).toEqual([m('0.09')]);
    expect(applicableRates([peak, offPeak], '4477', now, wm + 1).map((r) => r.rate)).toEqual([m('0.02')]);
  });

  it('returns every plan that ties on the longest prefix', () => {
    const a = { ...rate('44', '0.05', 30, 6), planId: 1 };
    const b = { ...rate('44', '0.08', 30, 6), planId: 2 };
    expect(applicableRates([a, b], '4477', now, wm)).toHaveLength(2);
  });
});

describe('week minute (A2Billing: minutes since Monday 00:00)', () => {
  it('counts from Monday in the given timezone', () => {
    const utc = weekMinuteClock('UTC');
    expect(utc(Date.UTC(2026, 10, 23, 0, 0))).toBe(0); // Monday 00:00
    expect(utc(Date.UTC(2026, 10, 23, 10, 30))).toBe(630);
    expect(utc(Date.UTC(2026, 10, 22, 23, 59))).toBe(10079); // Sunday 23:59
    const paris = weekMinuteClock('Europe/Paris');
    expect(paris(Date.UTC(2026, 10, 22, 23, 0))).toBe(0); // Monday 00:00 in Paris (UTC+1)
  });
  it('rejects an unknown timezone when built', () => {
    expect(() => weekMinuteClock('Mars/Olympus')).toThrow();
  });
});
