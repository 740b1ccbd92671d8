// Stateless nonces and nonce-count replay protection.
//
// nonce = base64url( version(1) | expiresAt ms (6, big-endian) | random(12) | HMAC-SHA256(secret, realm | first 19 bytes) )
// Any instance holding the same secret and realm accepts it until it expires; nothing is stored at issue.
// Only the canonical base64url spelling is accepted, so one nonce cannot be re-spelled to dodge the
// nonce-count memory below.
import { createHmac, randomFillSync, timingSafeEqual } from 'node:crypto';

const VERSION = 1;
const BODY = 1 + 6 + 12;
const MAC = 32;
const RAW = BODY + MAC;
export const NONCE_LENGTH = Math.ceil((RAW * 8) / 6);

export type NonceCheck =
  | { status: 'valid'; expiresAt: number }
  /** Genuinely ours but past its lifetime: answer with a fresh challenge and stale=true. */
  | { status: 'stale'; expiresAt: number }
  | { status: 'invalid' };

export interface NonceOptions {
  secret: string;
  realm: string;
  ttlSec: number;
  now?: () => number;
}

export class NonceService {
  private readonly secret: Buffer;
  private readonly realm: Buffer;
  private readonly ttlMs: number;
  private readonly now: () => number;
  // Random bytes are drawn 4 KiB at a time: one syscall per ~340 challenges.
  private pool = Buffer.alloc(4096);
  private poolPos = 4096;

  constructor(opts: NonceOptions) {
    this.secret = Buffer.from(opts.secret, 'utf8');
    this.realm = Buffer.from(opts.realm, 'utf8');
    this.ttlMs = opts.ttlSec * 1000;
    this.now = opts.now ?? Date.now;
  }

  private mac(body: Buffer): Buffer {
    return createHmac('sha256', this.secret).update(this.realm).update(Buffer.from([0])).update(body).digest();
  }

  issue(): string {
    const raw = Buffer.allocUnsafe(RAW);
    raw[0] = VERSION;
    raw.writeUIntBE(this.now() + this.ttlMs, 1, 6);
    if (this.poolPos + 12 > this.pool.length) {
      randomFillSync(this.pool);
      this.poolPos = 0;
    }
    this.pool.copy(raw, 7, this.poolPos, this.poolPos + 12);
    this.poolPos += 12;
    this.mac(raw.subarray(0, BODY)).copy(raw, BODY);
    return raw.toString('base64url');
  }

  check(nonce: string): NonceCheck {
    if (typeof nonce !== 'string' || nonce.length !== NONCE_LENGTH) return { status: 'invalid' };
    const raw = Buffer.from(nonce, 'base64url');
    if (raw.length !== RAW || raw.toString('base64url') !== nonce || raw[0] !== VERSION) return { status: 'invalid' };
    const expected = this.mac(raw.subarray(0, BODY));
    if (!timingSafeEqual(expected, raw.subarray(BODY))) return { status: 'invalid' };
    const expiresAt = raw.readUIntBE(1, 6);
    return expiresAt > this.now() ? { status: 'valid', expiresAt } : { status: 'stale', expiresAt };
  }
}

export type NcResult = 'ok' | 'replay' | 'forgotten';

/**
 * Highest nonce-count seen per nonce. Bounded: when full, the entry that was used first is dropped and
 * its expiry raises a watermark; a nonce we have no entry for whose expiry is at or below the watermark
 * may have been used before, so it is refused as 'forgotten' (the caller answers stale=true and the
 * phone simply retries with a fresh nonce). Memory never decides in the attacker's favour.
 */
export class NonceCounter {
  private readonly seen = new Map<string, { nc: number; expiresAt: number }>();
  private watermark = 0;

  constructor(private readonly maxEntries = 100_000, private readonly now: () => number = Date.now) {}

  get size(): number {
    return this.seen.size;
  }

  /** Records nc for nonce when it is higher than any seen before. */
  accept(nonce: string, expiresAt: number, nc: number): NcResult {
    const e = this.seen.get(nonce);
    if (e) {
      if (nc <= e.nc) return 'replay';
      e.nc = nc;
      return 'ok';
    }
    if (expiresAt <= this.watermark) return 'forgotten';
    // Full: drop the first-used entry (O(1); expired ones go in the periodic sweep).
    while (this.seen.size >= this.maxEntries) {
      const first = this.seen.entries().next().value as [string, { nc: number; expiresAt: number }];
      this.seen.delete(first[0]);
      if (first[1].expiresAt > this.watermark) this.watermark = first[1].expiresAt;
    }
    if (expiresAt <= this.watermark) return 'forgotten';
    this.seen.set(nonce, { nc, expiresAt });
    return 'ok';
  }

  /** Drops entries of expired nonces (they are refused by their timestamp anyway). */
  sweep(): number {
    const now = this.now();
    let removed = 0;
    for (const [k, v] of this.seen) {
      if (v.expiresAt <= now) {
        this.seen.delete(k);
        removed++;
      }
    }
    return removed;
  }
}
