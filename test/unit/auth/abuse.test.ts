import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { AbuseGuard, type AbuseConfig } from '../../../src/auth/abuse.js';
import { parseIp } from '../../../src/auth/ip.js';
import { silentLogger } from '../../../src/log.js';

function config(over: Partial<AbuseConfig> = {}): AbuseConfig {
  return {
    pike: { enabled: true, windowSec: 2, maxRequests: 5, banSec: 60 },
    authFailures: { enabled: true, maxFailures: 3, windowSec: 600, banSec: 3600 },
    scannerUserAgents: ['friendly-scanner', 'sipvicious', 'SIPScan'],
    banAnswer: 'drop',
    whitelist: ['10.0.0.0/8', '2001:db8:ffff::1'],
    ...over,
  };
}

function counter() {
  const calls: Array<Record<string, string>> = [];
  return { calls, inc: (labels: Record<string, string>) => { calls.push(labels); } };
}

const ip = (s: string) => parseIp(s)!;

describe('AbuseGuard', () => {
  beforeEach(() => { vi.useFakeTimers(); vi.setSystemTime(new Date('2026-01-01T00:00:00Z')); });
  afterEach(() => { vi.useRealTimers(); });

  it('bans a flooding source for banSec, then lets it back', () => {
    const bans = counter();
    const g = new AbuseGuard({ config: config(), log: silentLogger(), metrics: { bans: bans as never } });
    const src = ip('198.51.100.1');
    for (let i = 0; i < 5; i++) expect(g.check(src, 'Phone/1.0', false).kind).toBe('pass');
    expect(g.check(src, 'Phone/1.0', false).kind).toBe('flood');
    expect(bans.calls).toEqual([{ reason: 'pike' }]);
    expect(g.check(src, 'Phone/1.0', false)).toMatchObject({ kind: 'banned', reason: 'flood' });
    // other sources are not affected
    expect(g.check(ip('198.51.100.2'), 'Phone/1.0', false).kind).toBe('pass');
    vi.advanceTimersByTime(59_999);
    expect(g.check(src, 'Phone/1.0', false).kind).toBe('banned');
    vi.advanceTimersByTime(1);
    expect(g.check(src, 'Phone/1.0', false).kind).toBe('pass');
    expect(g.listBans()).toEqual([]);
  });

  it('counts requests per fixed window: a steady rate under the limit is never banned', () => {
    const g = new AbuseGuard({ config: config(), log: silentLogger() });
    const src = ip('198.51.100.3');
    for (let w = 0; w < 20; w++) {
      for (let i = 0; i < 5; i++) expect(g.check(src, undefined, false).kind).toBe('pass');
      vi.advanceTimersByTime(2000);
    }
  });

  it('bans after repeated authentication failures in the window, not before', () => {
    const g = new AbuseGuard({ config: config(), log: silentLogger() });
    const src = ip('203.0.113.9');
    expect(g.recordAuthFailure(src)).toBe(false);
    expect(g.recordAuthFailure(src)).toBe(false);
    expect(g.check(src, undefined, false).kind).toBe('pass');
    expect(g.recordAuthFailure(src)).toBe(true);
    expect(g.check(src, undefined, false)).toMatchObject({ kind: 'banned', reason: 'auth' });
    expect(g.listBans()).toEqual([{ source: '203.0.113.9', reason: 'auth', until: Date.now() + 3_600_000 }]);
    vi.advanceTimersByTime(3_600_000);
    expect(g.check(src, undefined, false).kind).toBe('pass');
  });

  it('forgets failures once their window has passed', () => {
    const g = new AbuseGuard({ config: config(), log: silentLogger() });
    const src = ip('203.0.113.10');
    g.recordAuthFailure(src);
    g.recordAuthFailure(src);
    vi.advanceTimersByTime(600_000);
    expect(g.recordAuthFailure(src)).toBe(false);
    expect(g.check(src, undefined, false).kind).toBe('pass');
  });

  it('drops scanner User-Agents case-insensitively by substring', () => {
    const g = new AbuseGuard({ config: config(), log: silentLogger() });
    expect(g.check(ip('192.0.2.1'), 'Friendly-Scanner', false).kind).toBe('scanner');
    expect(g.check(ip('192.0.2.1'), 'x sipvicious/0.3', false).kind).toBe('scanner');
    expect(g.check(ip('192.0.2.1'), 'sipscan 1.0', false).kind).toBe('scanner');
    expect(g.check(ip('192.0.2.1'), 'Linphone/5.0', false).kind).toBe('pass');
    expect(g.check(ip('192.0.2.1'), undefined, false).kind).toBe('pass');
    // trusted sources are still screened for scanners
    expect(g.check(ip('192.0.2.1'), 'friendly-scanner', true).kind).toBe('scanner');
  });

  it('never bans whitelisted or trusted sources', () => {
    const g = new AbuseGuard({ config: config(), log: silentLogger() });
    for (let i = 0; i < 50; i++) {
      expect(g.check(ip('10.9.8.7'), undefined, false).kind).toBe('whitelisted');
      expect(g.check(ip('2001:db8:ffff::1'), undefined, false).kind).toBe('whitelisted');
      expect(g.check(ip('192.0.2.50'), undefined, true).kind).toBe('pass');
      expect(g.recordAuthFailure(ip('10.9.8.7'))).toBe(false);
    }
    expect(g.stats().bans).toBe(0);
  });

  it('takes extra whitelist entries at run time (the dispatcher boxes), replacing the previous extras', () => {
    const g = new AbuseGuard({ config: config(), log: silentLogger() });
    g.setExtraWhitelist(['192.0.2.200', '2001:db8:5::/48']);
    for (let i = 0; i < 20; i++) {
      expect(g.check(ip('192.0.2.200'), undefined, false).kind).toBe('whitelisted');
      expect(g.check(ip('2001:db8:5:1::9'), undefined, false).kind).toBe('whitelisted');
    }
    expect(g.check(ip('10.1.1.1'), undefined, false).kind).toBe('whitelisted'); // configured entries stay
    g.setExtraWhitelist([]);
    for (let i = 0; i < 5; i++) g.check(ip('192.0.2.200'), undefined, false);
    expect(g.check(ip('192.0.2.200'), undefined, false).kind).toBe('flood');
  });

  it('keys IPv6 sources by /64 and mapped IPv4 as IPv4', () => {
    const g = new AbuseGuard({ config: config(), log: silentLogger() });
    for (let i = 1; i <= 5; i++) g.check(ip(`2001:db8:1:2::${i}`), undefined, false);
    expect(g.check(ip('2001:db8:1:2:ffff::1'), undefined, false).kind).toBe('flood');
    expect(g.check(ip('2001:db8:1:3::1'), undefined, false).kind).toBe('pass');
    expect(g.listBans()).toEqual([{ source: '2001:db8:1:2::/64', reason: 'flood', until: Date.now() + 60_000 }]);
    for (let i = 0; i < 5; i++) g.check(ip('192.0.2.77'), undefined, false);
    expect(g.check(ip('::ffff:192.0.2.77'), undefined, false).kind).toBe('flood');
  });

  it('can be switched off piece by piece', () => {
    const g = new AbuseGuard({
      config: config({ pike: { enabled: false, windowSec: 2, maxRequests: 1, banSec: 60 }, authFailures: { enabled: false, maxFailures: 1, windowSec: 60, banSec: 60 }, scannerUserAgents: [] }),
      log: silentLogger(),
    });
    for (let i = 0; i < 10; i++) {
      expect(g.check(ip('192.0.2.9'), 'friendly-scanner', false).kind).toBe('pass');
      expect(g.recordAuthFailure(ip('192.0.2.9'))).toBe(false);
    }
  });

  it('stays bounded under a spread-out flood and sweeps finished windows', () => {
    const g = new AbuseGuard({ config: config(), log: silentLogger(), maxTracked: 1000 });
    for (let i = 0; i < 5000; i++) g.check({ v: 4, n: 0xc6330000 + i }, undefined, false);
    expect(g.stats().trackedSources).toBeLessThanOrEqual(1000);
    vi.advanceTimersByTime(2000);
    g.sweep();
    expect(g.stats().trackedSources).toBe(0);
  });

  it('lifts a ban on request', () => {
    const g = new AbuseGuard({ config: config(), log: silentLogger() });
    for (let i = 0; i < 3; i++) g.recordAuthFailure(ip('203.0.113.50'));
    expect(g.unban('203.0.113.50')).toBe(true);
    expect(g.check(ip('203.0.113.50'), undefined, false).kind).toBe('pass');
    expect(g.unban('not an ip')).toBe(false);
  });

  it('ignores unusable whitelist entries with a warning', () => {
    const warn = vi.fn();
    const log = Object.assign(silentLogger(), { warn });
    new AbuseGuard({ config: config({ whitelist: ['10.0.0.0/99', 'nonsense'] }), log });
    expect(warn).toHaveBeenCalledTimes(2);
  });
});
