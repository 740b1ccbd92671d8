import { describe, expect, it } from 'vitest';
import { NONCE_LENGTH, NonceCounter, NonceService } from '../../../src/auth/nonce.js';

const SECRET = 'a-shared-secret-of-32-characters';

function clock(start = 1_700_000_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => { t += ms; } };
}

describe('NonceService', () => {
  it('accepts its own nonce until it expires, then calls it stale', () => {
    const c = clock();
    const s = new NonceService({ secret: SECRET, realm: 'gw', ttlSec: 300, now: c.now });
    const n = s.issue();
    expect(n).toHaveLength(NONCE_LENGTH);
    expect(s.check(n)).toEqual({ status: 'valid', expiresAt: c.now() + 300_000 });
    c.advance(299_999);
    expect(s.check(n).status).toBe('valid');
    c.advance(1);
    expect(s.check(n).status).toBe('stale');
  });

  it('issues a different nonce every time', () => {
    const s = new NonceService({ secret: SECRET, realm: 'gw', ttlSec: 300 });
    const seen = new Set(Array.from({ length: 1000 }, () => s.issue()));
    expect(seen.size).toBe(1000);
  });

  it('accepts a nonce from another instance with the same secret and realm', () => {
    const a = new NonceService({ secret: SECRET, realm: 'gw', ttlSec: 300 });
    const b = new NonceService({ secret: SECRET, realm: 'gw', ttlSec: 60 });
    expect(b.check(a.issue()).status).toBe('valid');
  });

  it('refuses a nonce signed with another secret or for another realm', () => {
    const a = new NonceService({ secret: SECRET, realm: 'gw', ttlSec: 300 });
    expect(new NonceService({ secret: SECRET + 'x', realm: 'gw', ttlSec: 300 }).check(a.issue()).status).toBe('invalid');
    expect(new NonceService({ secret: SECRET, realm: 'gw2', ttlSec: 300 }).check(a.issue()).status).toBe('invalid');
  });

  it('refuses any tampered nonce, including a stretched lifetime', () => {
    const s = new NonceService({ secret: SECRET, realm: 'gw', ttlSec: 300 });
    const n = s.issue();
    const raw = Buffer.from(n, 'base64url');
    for (let i = 0; i < raw.length; i++) {
      const t = Buffer.from(raw);
      t[i] = t[i]! ^ 0x01;
      expect(s.check(t.toString('base64url')).status, `byte ${i}`).toBe('invalid');
    }
    const later = Buffer.from(raw);
    later.writeUIntBE(later.readUIntBE(1, 6) + 86_400_000, 1, 6);
    expect(s.check(later.toString('base64url')).status).toBe('invalid');
    expect(s.check('').status).toBe('invalid');
    expect(s.check(n + 'A').status).toBe('invalid');
    expect(s.check('!'.repeat(NONCE_LENGTH)).status).toBe('invalid');
  });

  it('refuses another spelling of the same bytes (it would get a fresh nonce-count)', () => {
    const s = new NonceService({ secret: SECRET, realm: 'gw', ttlSec: 300 });
    let n = s.issue();
    while (!/[-_]/.test(n)) n = s.issue();
    // Node's decoder also takes the standard alphabet: '+' for '-' and '/' for '_' give the same bytes.
    const respelled = n.replace('-', '+').replace('_', '/');
    expect(Buffer.from(respelled, 'base64url').equals(Buffer.from(n, 'base64url'))).toBe(true);
    expect(s.check(n).status).toBe('valid');
    expect(s.check(respelled).status).toBe('invalid');
  });
});

describe('NonceCounter', () => {
  it('accepts increasing nc and refuses a replayed or lower one', () => {
    const c = new NonceCounter();
    const exp = Date.now() + 60_000;
    expect(c.accept('n1', exp, 1)).toBe('ok');
    expect(c.accept('n1', exp, 1)).toBe('replay');
    expect(c.accept('n1', exp, 2)).toBe('ok');
    expect(c.accept('n1', exp, 5)).toBe('ok');
    expect(c.accept('n1', exp, 4)).toBe('replay');
    expect(c.accept('n2', exp, 1)).toBe('ok');
  });

  it('stays bounded, and refuses nonces it may have forgotten instead of letting them replay', () => {
    const c = clock();
    const counter = new NonceCounter(3, c.now);
    const exp = (k: number) => c.now() + 1000 + k;
    counter.accept('a', exp(1), 1);
    counter.accept('b', exp(2), 1);
    counter.accept('c', exp(3), 1);
    expect(counter.accept('d', exp(4), 1)).toBe('ok'); // evicts 'a'
    expect(counter.size).toBe(3);
    expect(counter.accept('a', exp(1), 1)).toBe('forgotten');
    expect(counter.accept('a', exp(1), 2)).toBe('forgotten');
    expect(counter.accept('later', exp(9), 1)).toBe('ok');
    expect(counter.size).toBe(3);
  });

  it('sweeps expired nonces', () => {
    const c = clock();
    const counter = new NonceCounter(10, c.now);
    counter.accept('old', c.now() + 10, 1);
    counter.accept('new', c.now() + 10_000, 1);
    c.advance(11);
    expect(counter.sweep()).toBe(1);
    expect(counter.size).toBe(1);
  });
});
