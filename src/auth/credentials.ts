// Digest credentials from the `subscriber` view behind a short-lived cache.
// - Fresh entries (younger than ttl) answer without the database.
// - Expired entries are refreshed; if the database fails, the expired entry is used (stale-if-error) so
//   known callers keep working through an outage. Unknown names are cached too (negatively), in their
//   own smaller table so a flood of invented names cannot push real accounts out.
// - After a database error, lookups of uncached names fail fast for a moment instead of queueing on a
//   dead pool: the caller answers "cannot verify now" and nobody is admitted unverified.
// - Concurrent lookups of one name share one query.
import type { Logger } from '../log.js';
import { describeError } from '../errors.js';

/** One row of the `subscriber` view as the driver returns it. */
export interface SubscriberRow {
  username: string;
  domain: string | null;
  password: string;
  accountcode: string;
  card_id: number | string | null;
  card_status: number | string;
}

export interface Credential {
  username: string;
  password: string;
  accountcode: string;
  cardId: number | undefined;
}

export type CredentialLookup =
  | { status: 'found'; credentials: Credential[]; stale: boolean }
  | { status: 'unknown'; stale: boolean }
  /** Not cached and the database cannot answer now. */
  | { status: 'unavailable' };

export type SubscriberSource = (username: string) => Promise<SubscriberRow[]>;

/** Longest username the view can hold (CHAR(80)); longer ones cannot exist and skip the database. */
export const MAX_USERNAME = 80;

interface Entry {
  credentials: Credential[];
  expiresAt: number;
}

export interface CredentialCacheOptions {
  source: SubscriberSource;
  log: Logger;
  ttlSec: number;
  timeoutMs: number;
  /** How long uncached lookups fail fast after a database error. */
  failFastMs?: number;
  maxPositive?: number;
  maxNegative?: number;
  now?: () => number;
}

export function toCredentials(username: string, rows: readonly SubscriberRow[]): Credential[] {
  const out: Credential[] = [];
  for (const r of rows) {
    // Exact, case- and space-sensitive: the view's collation may say 'Alice ' = 'alice'.
    if (r.username !== username || typeof r.password !== 'string' || r.password === '') continue;
    if (Number(r.card_status) !== 1) continue;
    const accountcode = typeof r.accountcode === 'string' ? r.accountcode : '';
    if (accountcode === '') continue;
    const cardId = r.card_id === null || r.card_id === undefined ? undefined : Number(r.card_id);
    out.push({ username: r.username, password: r.password, accountcode, cardId: Number.isSafeInteger(cardId) ? cardId : undefined });
  }
  return out;
}

export class CredentialCache {
  private readonly positive = new Map<string, Entry>();
  private readonly negative = new Map<string, Entry>();
  private readonly inflight = new Map<string, Promise<Credential[]>>();
  private readonly opts: Required<Omit<CredentialCacheOptions, 'log' | 'source'>>;
  private failFastUntil = 0;
  private lastError: string | undefined;
  private lastErrorLoggedAt = -Infinity;

  constructor(private readonly o: CredentialCacheOptions) {
    this.opts = {
      ttlSec: o.ttlSec,
      timeoutMs: o.timeoutMs,
      failFastMs: o.failFastMs ?? 1000,
      maxPositive: o.maxPositive ?? 100_000,
      maxNegative: o.maxNegative ?? 20_000,
      now: o.now ?? Date.now,
    };
  }

  async lookup(username: string): Promise<CredentialLookup> {
    if (username.length === 0 || username.length > MAX_USERNAME) return { status: 'unknown', stale: false };
    const now = this.opts.now();
    const cached = this.positive.get(username) ?? this.negative.get(username);
    if (cached && cached.expiresAt > now) return this.answer(cached, false);
    if (now < this.failFastUntil) return cached ? this.answer(cached, true) : { status: 'unavailable' };
    let creds: Credential[];
    try {
      creds = await this.fetch(username);
    } catch (e) {
      this.noteError(e);
      return cached ? this.answer(cached, true) : { status: 'unavailable' };
    }
    this.store(username, creds);
    return creds.length > 0 ? { status: 'found', credentials: creds, stale: false } : { status: 'unknown', stale: false };
  }

  /** Expires every entry (they stay usable as a fallback while the database is down). */
  invalidate(): void {
    for (const e of this.positive.values()) e.expiresAt = 0;
    for (const e of this.negative.values()) e.expiresAt = 0;
  }

  stats(): { cached: number; cachedUnknown: number; lastError: string | undefined } {
    return { cached: this.positive.size, cachedUnknown: this.negative.size, lastError: this.lastError };
  }

  private answer(e: Entry, stale: boolean): CredentialLookup {
    return e.credentials.length > 0 ? { status: 'found', credentials: e.credentials, stale } : { status: 'unknown', stale };
  }

  private fetch(username: string): Promise<Credential[]> {
    let p = this.inflight.get(username);
    if (p) return p;
    p = new Promise<Credential[]>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`subscriber lookup timed out after ${this.opts.timeoutMs} ms`)), this.opts.timeoutMs);
      this.o.source(username).then(
        (rows) => { clearTimeout(timer); resolve(toCredentials(username, rows)); },
        (e: unknown) => { clearTimeout(timer); reject(e); },
      );
    }).finally(() => this.inflight.delete(username));
    this.inflight.set(username, p);
    return p;
  }

  private store(username: string, creds: Credential[]): void {
    const entry = { credentials: creds, expiresAt: this.opts.now() + this.opts.ttlSec * 1000 };
    const [into, other, max] = creds.length > 0
      ? [this.positive, this.negative, this.opts.maxPositive]
      : [this.negative, this.positive, this.opts.maxNegative];
    other.delete(username);
    into.delete(username); // re-insert at the end: Map order is the eviction order
    while (into.size >= max) {
      const first = into.keys().next();
      if (first.done) break;
      into.delete(first.value);
    }
    into.set(username, entry);
    if (this.lastError !== undefined) {
      this.o.log.info('subscriber lookups work again');
      this.lastError = undefined;
    }
  }

  private noteError(e: unknown): void {
    const now = this.opts.now();
    this.failFastUntil = now + this.opts.failFastMs;
    this.lastError = describeError(e);
    // One line per 10 s at most: an outage under load must not flood the log.
    if (now - this.lastErrorLoggedAt >= 10_000) {
      this.lastErrorLoggedAt = now;
      this.o.log.error({ err: this.lastError }, 'subscriber lookup failed; using cached credentials only');
    }
  }
}
