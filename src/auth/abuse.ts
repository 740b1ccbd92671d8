// Abuse protection, all synchronous and in memory, never touching the database:
// - pike: requests per source in fixed windows; over the limit → temporary ban;
// - fail2ban: authentication failures per source in a window; over the limit → longer ban;
// - scanner User-Agents (case-insensitive substring) are dropped.
// IPv6 sources are keyed by their /64 (one customer link), IPv4 by address.
import type { Logger } from '../log.js';
import { parseCidr, parseIp, PrefixTable, type ParsedIp } from './ip.js';
import type { AuthMetrics } from './metrics.js';

export interface AbuseConfig {
  pike: { enabled: boolean; windowSec: number; maxRequests: number; banSec: number };
  authFailures: { enabled: boolean; maxFailures: number; windowSec: number; banSec: number };
  scannerUserAgents: string[];
  banAnswer: 'drop' | '403';
  whitelist: string[];
}

export type AbuseVerdict =
  | { kind: 'pass' }
  | { kind: 'whitelisted' }
  | { kind: 'banned'; reason: 'flood' | 'auth'; until: number }
  | { kind: 'scanner' }
  | { kind: 'flood' };

interface Window {
  start: number;
  count: number;
}

interface Ban {
  until: number;
  reason: 'flood' | 'auth';
}

export type SourceKey = number | string;

const V6_HIGH_SHIFT = 64n;

export function sourceKey(ip: ParsedIp): SourceKey {
  return ip.v === 4 ? ip.n : `6:${(ip.n >> V6_HIGH_SHIFT).toString(16)}`;
}

export function describeKey(key: SourceKey): string {
  if (typeof key === 'number') return `${key >>> 24}.${(key >>> 16) & 255}.${(key >>> 8) & 255}.${key & 255}`;
  const hex = key.slice(2).padStart(16, '0');
  return `${hex.match(/.{4}/g)!.map((g) => g.replace(/^0+(?=.)/, '')).join(':')}::/64`;
}

export interface AbuseGuardOptions {
  config: AbuseConfig;
  log: Logger;
  metrics?: AuthMetrics | undefined;
  now?: () => number;
  /** Upper bound on tracked sources per table (windows, failures, bans). */
  maxTracked?: number;
}

export class AbuseGuard {
  private readonly cfg: AbuseConfig;
  private readonly log: Logger;
  private readonly metrics: AuthMetrics | undefined;
  private readonly now: () => number;
  private readonly maxTracked: number;
  private whitelist: PrefixTable<true>;
  private readonly scanners: string[];
  private readonly requests = new Map<SourceKey, Window>();
  private readonly failures = new Map<SourceKey, Window>();
  private readonly bans = new Map<SourceKey, Ban>();

  constructor(opts: AbuseGuardOptions) {
    this.cfg = opts.config;
    this.log = opts.log;
    this.metrics = opts.metrics;
    this.now = opts.now ?? Date.now;
    this.maxTracked = opts.maxTracked ?? 200_000;
    this.whitelist = this.buildWhitelist([]);
    this.scanners = opts.config.scannerUserAgents.map((s) => s.toLowerCase());
  }

  /**
   * Adds sources that must never be banned on top of abuse.whitelist, e.g. the Asterisk boxes of the
   * dispatcher (they send in-dialog requests at their own rate). Replaces the previous extra list.
   */
  setExtraWhitelist(entries: readonly string[]): void {
    this.whitelist = this.buildWhitelist(entries);
  }

  private buildWhitelist(extra: readonly string[]): PrefixTable<true> {
    const wl: Array<{ prefix: NonNullable<ReturnType<typeof parseCidr>>; value: true }> = [];
    for (const text of [...this.cfg.whitelist, ...extra]) {
      const prefix = parseCidr(text);
      if (prefix) wl.push({ prefix, value: true });
      else this.log.warn({ entry: text }, 'whitelist entry is not an IP address or CIDR; ignored');
    }
    return new PrefixTable(wl);
  }

  isWhitelisted(ip: ParsedIp): boolean {
    return this.whitelist.size > 0 && this.whitelist.lookup(ip) !== undefined;
  }

  isScanner(userAgent: string | undefined): boolean {
    if (!userAgent || this.scanners.length === 0) return false;
    const ua = userAgent.toLowerCase();
    for (const s of this.scanners) if (ua.includes(s)) return true;
    return false;
  }

  /** Current ban for a source, if any (expired bans are removed on sight). */
  banOf(key: SourceKey): Ban | undefined {
    const b = this.bans.get(key);
    if (!b) return undefined;
    if (b.until > this.now()) return b;
    this.bans.delete(key);
    return undefined;
  }

  /**
   * Per-request check. `trusted` sources (IP-authenticated trunks) are exempt from bans and rate
   * limits but not from the scanner check.
   */
  check(ip: ParsedIp, userAgent: string | undefined, trusted: boolean): AbuseVerdict {
    if (this.isWhitelisted(ip)) return { kind: 'whitelisted' };
    const key = sourceKey(ip);
    if (!trusted) {
      const ban = this.banOf(key);
      if (ban) return { kind: 'banned', reason: ban.reason, until: ban.until };
    }
    if (this.isScanner(userAgent)) return { kind: 'scanner' };
    if (trusted || !this.cfg.pike.enabled) return { kind: 'pass' };
    const now = this.now();
    const windowMs = this.cfg.pike.windowSec * 1000;
    let w = this.requests.get(key);
    if (!w || now - w.start >= windowMs) {
      if (!w) {
        this.makeRoom(this.requests);
        w = { start: now, count: 0 };
        this.requests.set(key, w);
      } else {
        w.start = now;
        w.count = 0;
      }
    }
    w.count++;
    if (w.count > this.cfg.pike.maxRequests) {
      this.requests.delete(key);
      this.ban(key, 'flood', this.cfg.pike.banSec, { requests: w.count, windowSec: this.cfg.pike.windowSec });
      return { kind: 'flood' };
    }
    return { kind: 'pass' };
  }

  /** Counts one failed authentication from a source; may ban it. Returns true when this failure banned it. */
  recordAuthFailure(ip: ParsedIp): boolean {
    if (!this.cfg.authFailures.enabled || this.isWhitelisted(ip)) return false;
    const key = sourceKey(ip);
    if (this.banOf(key)) return false;
    const now = this.now();
    const windowMs = this.cfg.authFailures.windowSec * 1000;
    let w = this.failures.get(key);
    if (!w || now - w.start >= windowMs) {
      if (!w) this.makeRoom(this.failures);
      w = { start: now, count: 0 };
      this.failures.set(key, w);
    }
    w.count++;
    if (w.count >= this.cfg.authFailures.maxFailures) {
      this.failures.delete(key);
      this.ban(key, 'auth', this.cfg.authFailures.banSec, { failures: w.count, windowSec: this.cfg.authFailures.windowSec });
      return true;
    }
    return false;
  }

  /** Lifts a ban (management interface). */
  unban(ipText: string): boolean {
    const ip = parseIp(ipText);
    if (!ip) return false;
    const key = sourceKey(ip);
    this.failures.delete(key);
    this.requests.delete(key);
    return this.bans.delete(key);
  }

  listBans(): Array<{ source: string; reason: string; until: number }> {
    const now = this.now();
    const out: Array<{ source: string; reason: string; until: number }> = [];
    for (const [k, b] of this.bans) if (b.until > now) out.push({ source: describeKey(k), reason: b.reason, until: b.until });
    return out;
  }

  stats(): { bans: number; trackedSources: number; trackedFailures: number } {
    return { bans: this.bans.size, trackedSources: this.requests.size, trackedFailures: this.failures.size };
  }

  /** Drops finished windows and expired bans; call periodically. */
  sweep(): void {
    const now = this.now();
    const pikeMs = this.cfg.pike.windowSec * 1000;
    const failMs = this.cfg.authFailures.windowSec * 1000;
    for (const [k, w] of this.requests) if (now - w.start >= pikeMs) this.requests.delete(k);
    for (const [k, w] of this.failures) if (now - w.start >= failMs) this.failures.delete(k);
    for (const [k, b] of this.bans) if (b.until <= now) this.bans.delete(k);
  }

  private ban(key: SourceKey, reason: 'flood' | 'auth', sec: number, fields: Record<string, unknown>): void {
    this.makeRoom(this.bans);
    const until = this.now() + sec * 1000;
    this.bans.set(key, { until, reason });
    this.metrics?.bans?.inc({ reason: reason === 'flood' ? 'pike' : 'auth-failures' });
    this.metrics?.bannedSources?.set(this.bans.size);
    this.log.warn({ source: describeKey(key), reason, banSec: sec, ...fields }, 'source banned');
  }

  /**
   * Keeps a table under maxTracked by dropping the oldest insertions: O(1), no sweep here, so a flood
   * from many addresses cannot make every new one pay for a scan of the whole table.
   */
  private makeRoom(m: Map<SourceKey, unknown>): void {
    while (m.size >= this.maxTracked) {
      const first = m.keys().next();
      if (first.done) break;
      m.delete(first.value);
    }
  }
}
