import { describe, expect, it } from 'vitest';
import { billableSeconds, buildRateBook, priceCall } from '../../../src/reconcile/rating.js';
import { RATES } from './harness.js';

describe('rating', () => {
  it('rounds the first block up to initblock and later time to billingblock', () => {
    expect(billableSeconds(0, 30, 6)).toBe(0);
    expect(billableSeconds(1, 30, 6)).toBe(30);
    expect(billableSeconds(30, 30, 6)).toBe(30);
    expect(billableSeconds(31, 30, 6)).toBe(36);
    expect(billableSeconds(36, 30, 6)).toBe(36);
    expect(billableSeconds(61, 60, 60)).toBe(120);
    expect(billableSeconds(7, 0, 0)).toBe(7);
    expect(billableSeconds(7.2, 0, 0)).toBe(8);
  });

  it('prices connect charge plus rate per minute; nothing for an unanswered call', () => {
    const fr = RATES.find((r) => r.prefix === '33')!;
    expect(priceCall(0, fr)).toBe(0);
    expect(priceCall(1, fr)).toBeCloseTo(0.15, 5);
    expect(priceCall(95, fr)).toBeCloseTo(0.25, 5);
  });

  it('finds the longest prefix of the number in the tariff group plans', () => {
    const book = buildRateBook(new Map([[1, [1]]]), RATES);
    expect(book.find(1, '442079460000')?.prefix).toBe('4420');
    expect(book.find(1, '447700900123')?.prefix).toBe('44');
    expect(book.find(1, '+19995551234')?.prefix).toBe('1999');
    expect(book.find(1, '4912345')).toBeUndefined();
    expect(book.find(2, '442079460000')).toBeUndefined();
    expect(book.price(1, '442079460000', 120)).toBeCloseTo(0.06, 5);
    const withDefault = buildRateBook(new Map([[1, [1]]]), [...RATES, { plan: 1, prefix: 'defaultprefix', rate: 1, initblock: 60, billingblock: 60, connect: 0 }]);
    expect(withDefault.price(1, '4912345', 30)).toBeCloseTo(1, 5);
  });
});
