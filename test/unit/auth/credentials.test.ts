import { describe, expect, it } from 'vitest';
import { CredentialCache, toCredentials, type SubscriberRow } from '../../../src/auth/credentials.js';
import { silentLogger } from '../../../src/log.js';

const row = (username: string, password = 'pw', extra: Partial<SubscriberRow> = {}): SubscriberRow =>
  ({ username, domain: '', password, accountcode: `acc-${username}`, card_id: 7, card_status: 1, ...extra });

/** A row source the test controls: what it holds, whether it is "down", and how often it was asked. */
function source(rows: SubscriberRow[]) {
  const s = { rows, down: false, calls: 0, hang: false };
  const fn = async (u: string): Promise<SubscriberRow[]> => {
    s.calls++;
    if (s.hang) return new Promise(() => undefined);
    await Promise.resolve();
    if (s.down) throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:3306'), { code: 'ECONNREFUSED' });
    return s.rows.filter((r) => r.username.toLowerCase().trim() === u.toLowerCase().trim()); // a folding collation
  };
  return Object.assign(s, { fn });
}

function clock() {
  let t = 1_000_000;
  return { now: () => t, advance: (ms: number) => { t += ms; } };
}

describe('toCredentials', () => {
  it('keeps exact usernames of active cards with a password and an account', () => {
    expect(toCredentials('bob', [row('bob'), row('Bob'), row('bob '), row('bob', ''), row('bob', 'x', { card_status: 0 }), row('bob', 'y', { accountcode: '' })]))
      .toEqual([{ username: 'bob', password: 'pw', accountcode: 'acc-bob', cardId: 7 }]);
  });
});

describe('CredentialCache', () => {
  it('answers from the cache until the entry expires, for known and unknown names alike', async () => {
    const c = clock();
    const src = source([row('alice')]);
    const cache = new CredentialCache({ source: src.fn, log: silentLogger(), ttlSec: 60, timeoutMs: 1000, now: c.now });
    expect(await cache.lookup('alice')).toMatchObject({ status: 'found', stale: false });
    expect(await cache.lookup('nobody')).toEqual({ status: 'unknown', stale: false });
    expect(src.calls).toBe(2);
    await cache.lookup('alice');
    await cache.lookup('nobody');
    expect(src.calls).toBe(2);
    c.advance(60_000);
    await cache.lookup('alice');
    expect(src.calls).toBe(3);
  });

  it('asks the source once for concurrent lookups of one name', async () => {
    const src = source([row('alice')]);
    const cache = new CredentialCache({ source: src.fn, log: silentLogger(), ttlSec: 60, timeoutMs: 1000 });
    const all = await Promise.all(Array.from({ length: 10 }, () => cache.lookup('alice')));
    expect(src.calls).toBe(1);
    expect(all.every((r) => r.status === 'found')).toBe(true);
  });

  it('keeps answering cached names while the source is down, fails fast for the others, then recovers', async () => {
    const c = clock();
    const src = source([row('alice'), row('dave')]);
    const cache = new CredentialCache({ source: src.fn, log: silentLogger(), ttlSec: 0, timeoutMs: 1000, failFastMs: 1000, now: c.now });
    await cache.lookup('alice');
    await cache.lookup('ghost');
    src.down = true;
    expect(await cache.lookup('alice')).toMatchObject({ status: 'found', stale: true });
    expect(await cache.lookup('ghost')).toEqual({ status: 'unknown', stale: true });
    const calls = src.calls;
    expect(await cache.lookup('dave')).toEqual({ status: 'unavailable' });
    expect(src.calls).toBe(calls); // within the fail-fast pause: not even asked
    expect(cache.stats().lastError).toContain('ECONNREFUSED');
    c.advance(1000);
    src.down = false;
    expect(await cache.lookup('dave')).toMatchObject({ status: 'found', stale: false });
    expect(cache.stats().lastError).toBeUndefined();
  });

  it('gives up on a hanging source after timeoutMs', async () => {
    const src = source([row('alice')]);
    src.hang = true;
    const cache = new CredentialCache({ source: src.fn, log: silentLogger(), ttlSec: 60, timeoutMs: 20 });
    expect(await cache.lookup('alice')).toEqual({ status: 'unavailable' });
  });

  it('keeps invented names from pushing real accounts out', async () => {
    const src = source([row('alice')]);
    const cache = new CredentialCache({ source: src.fn, log: silentLogger(), ttlSec: 60, timeoutMs: 1000, maxPositive: 10, maxNegative: 5 });
    await cache.lookup('alice');
    for (let i = 0; i < 100; i++) await cache.lookup(`invented-${i}`);
    expect(cache.stats()).toMatchObject({ cached: 1, cachedUnknown: 5 });
    const calls = src.calls;
    await cache.lookup('alice');
    expect(src.calls).toBe(calls);
  });

  it('never asks about names longer than the column', async () => {
    const src = source([]);
    const cache = new CredentialCache({ source: src.fn, log: silentLogger(), ttlSec: 60, timeoutMs: 1000 });
    expect(await cache.lookup('x'.repeat(81))).toEqual({ status: 'unknown', stale: false });
    expect(await cache.lookup('')).toEqual({ status: 'unknown', stale: false });
    expect(src.calls).toBe(0);
  });

  it('invalidate() forces a refresh but keeps entries as the outage fallback', async () => {
    const src = source([row('alice')]);
    const cache = new CredentialCache({ source: src.fn, log: silentLogger(), ttlSec: 60, timeoutMs: 1000 });
    await cache.lookup('alice');
    cache.invalidate();
    src.down = true;
    expect(await cache.lookup('alice')).toMatchObject({ status: 'found', stale: true });
    expect(src.calls).toBe(2);
  });
});
