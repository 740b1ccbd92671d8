// The auth stage: screen() (bans, floods, scanners; sync, no I/O) and authenticate() (source IP, else
// digest proxy authentication), implementing the proxy's hooks from plain RequestFacts.
//
// Answers, chosen so a caller learns nothing it should not:
//   no credentials for our realm          → 407, one Proxy-Authenticate per configured algorithm
//   nonce expired / nc replayed / counter forgot the nonce → 407 with stale=true (the phone retries)
//   nonce forged or from another secret   → 407 (fresh challenge)
//   Proxy-Authorization unparseable, or Digest for our realm with missing/invalid fields, uri not the
//   Request-URI, algorithm not offered, two sets of credentials for our realm → 400 Bad Request
//   wrong password, unknown user, inactive card, From user not the authenticated user → 403 Forbidden,
//   identical (no headers) and computed the same way (unknown users are checked against a dummy secret)
//   user not cached and the database cannot answer now → 503 + Retry-After (never admitted)
//   any unexpected fault → 500 (never admitted)
// 400 and 403 count as failures for the fail2ban-like ban; 407s do not.
import { randomBytes } from 'node:crypto';
import type { Config } from '../config/schema.js';
import type { Db } from '../db/pool.js';
import { describeError } from '../errors.js';
import type { Logger } from '../log.js';
import type { AuthDecision, HeaderList, RequestFacts, ScreenDecision } from '../proxy/hooks.js';
import { AbuseGuard } from './abuse.js';
import { AddressTable } from './address.js';
import { CredentialCache } from './credentials.js';
import { challengeValue, computeResponse, parseCredentials, responsesEqual, validateDigest, type DigestAlgorithm } from './digest.js';
import { parseIp, type ParsedIp } from './ip.js';
import type { AuthMetrics } from './metrics.js';
import { NonceCounter, NonceService } from './nonce.js';
import { dbSources, type AuthSources } from './store.js';

export interface AuthStageOptions {
  config: Pick<Config, 'auth' | 'abuse'>;
  /** Pool for the views; ignored when `sources` is given. */
  db?: Db;
  /** Alternative data sources (another backend, benchmarks). */
  sources?: AuthSources;
  log: Logger;
  metrics?: AuthMetrics;
  now?: () => number;
}

export interface ReloadResult {
  entries: number;
  rejected: number;
  conflicts: number;
  ms: number;
}

export interface AuthStats {
  addressEntries: number;
  addressLoadedAt: number;
  lastReloadError: string | undefined;
  credentials: { cached: number; cachedUnknown: number; lastError: string | undefined };
  nonceCounters: number;
  abuse: { bans: number; trackedSources: number; trackedFailures: number };
}

export interface AuthStage {
  screen(facts: RequestFacts): ScreenDecision;
  authenticate(facts: RequestFacts): Promise<AuthDecision>;
  /** Reloads the address table now (atomic swap) and expires cached credentials. Throws if the DB fails; the old table stays. */
  reload(): Promise<ReloadResult>;
  /** First load (failure is logged, not thrown: digest still works) and periodic refresh. */
  start(): Promise<void>;
  stop(): void;
  stats(): AuthStats;
  listBans(): Array<{ source: string; reason: string; until: number }>;
  unban(ip: string): boolean;
  /** Sources never screened for floods or bans besides abuse.whitelist (e.g. dispatcher destinations' IPs). */
  setExtraWhitelist(entries: readonly string[]): void;
}

const FORBIDDEN: AuthDecision = { kind: 'reject', status: 403, reason: 'Forbidden' };
const BAD_REQUEST: AuthDecision = { kind: 'reject', status: 400, reason: 'Bad Request' };
const UNAVAILABLE: AuthDecision = { kind: 'reject', status: 503, reason: 'Service Unavailable', headers: [['Retry-After', '5']] };
const INTERNAL: AuthDecision = { kind: 'reject', status: 500, reason: 'Server Internal Error' };
const BAN_403: ScreenDecision = { kind: 'reject', status: 403, reason: 'Forbidden' };
const PASS: ScreenDecision = { kind: 'pass' };

/** uri= must name the Request-URI (RFC 7616 §3.4.6); scheme and host compare case-insensitively. */
function uriMatches(credUri: string, ruri: string): boolean {
  if (credUri === ruri) return true;
  if (credUri.length !== ruri.length) return false;
  const at = ruri.indexOf('@');
  const colon = ruri.indexOf(':');
  // user part (between scheme and '@') must match exactly; the rest case-insensitively.
  if (at >= 0 && credUri.slice(colon, at) !== ruri.slice(colon, at)) return false;
  return credUri.toLowerCase() === ruri.toLowerCase();
}

export function createAuthStage(opts: AuthStageOptions): AuthStage {
  const { log, metrics } = opts;
  const now = opts.now ?? Date.now;
  const cfg = opts.config.auth;
  const realm = cfg.realm;
  const algorithms = cfg.algorithms as DigestAlgorithm[];
  const sources = opts.sources ?? (opts.db ? dbSources(opts.db, cfg.dbTimeoutMs) : undefined);
  if (!sources) throw new TypeError('createAuthStage needs db or sources');

  let secret = cfg.nonceSecret;
  if (!secret) {
    secret = randomBytes(32).toString('base64url');
    log.warn('auth.nonceSecret is not set: using a random per-process secret; nonces will not survive a restart or be accepted by other instances');
  }
  const nonces = new NonceService({ secret, realm, ttlSec: cfg.nonceTtlSec, now });
  const counters = new NonceCounter(100_000, now);
  const credentials = new CredentialCache({
    source: (u) => sources.subscribers(u), log, ttlSec: cfg.credentialCacheSec, timeoutMs: cfg.dbTimeoutMs, now,
  });
  const abuse = new AbuseGuard({ config: opts.config.abuse, log, metrics, now });
  // Unknown users are checked against this, so they cost what known users cost.
  const dummyPassword = randomBytes(18).toString('base64url');

  let addresses = AddressTable.empty();
  let lastReloadError: string | undefined;
  let reloading: Promise<ReloadResult> | undefined;
  let refreshTimer: NodeJS.Timeout | undefined;
  let sweepTimer: NodeJS.Timeout | undefined;

  const result = (method: 'ip' | 'digest' | 'none', outcome: string): void => {
    metrics?.authResults?.inc({ method, outcome });
  };

  function challenge(stale: boolean, outcome: string = stale ? 'stale' : 'challenge'): AuthDecision {
    const nonce = nonces.issue();
    const headers: Array<readonly [string, string]> = [];
    for (const algorithm of algorithms) headers.push(['Proxy-Authenticate', challengeValue({ realm, nonce, algorithm, stale })]);
    result('digest', outcome);
    return { kind: 'challenge', status: 407, headers: headers as HeaderList };
  }

  function fail(ip: ParsedIp | undefined, facts: RequestFacts, reason: string, answer: AuthDecision, user?: string): AuthDecision {
    result('digest', answer === BAD_REQUEST ? 'malformed' : 'fail');
    const banned = ip ? abuse.recordAuthFailure(ip) : false;
    log.info({ src: facts.source.ip, user, callId: facts.callId, reason, banned }, 'authentication failed');
    return answer;
  }

  async function digest(facts: RequestFacts, ip: ParsedIp | undefined): Promise<AuthDecision> {
    const values = facts.header('proxy-authorization');
    if (values.length === 0) return challenge(false);
    const parsed = parseCredentials(values);
    if (!parsed.ok) return fail(ip, facts, `unparseable Proxy-Authorization (${parsed.reason})`, BAD_REQUEST);
    const ours = parsed.credentials.filter((c) => c.scheme.toLowerCase() === 'digest' && c.params.get('realm') === realm);
    // Credentials for other realms belong to other hops; none for us is a first attempt.
    if (ours.length === 0) return challenge(false);
    if (ours.length > 1) return fail(ip, facts, 'several credentials for our realm', BAD_REQUEST);
    const v = validateDigest(ours[0]!);
    if (!v.ok) return fail(ip, facts, v.reason, BAD_REQUEST);
    const c = v.value;
    if (!algorithms.includes(c.algorithm)) return fail(ip, facts, `algorithm ${c.algorithm} not offered`, BAD_REQUEST, c.username);
    if (!uriMatches(c.uri, facts.ruri)) return fail(ip, facts, 'uri does not match the Request-URI', BAD_REQUEST, c.username);

    const n = nonces.check(c.nonce);
    if (n.status === 'invalid') {
      log.debug({ src: facts.source.ip, user: c.username, callId: facts.callId }, 'nonce not ours (forged, or another secret): new challenge');
      return challenge(false, 'bad-nonce');
    }
    if (n.status === 'stale') return challenge(true);

    const found = await credentials.lookup(c.username);
    if (found.status === 'unavailable') {
      result('digest', 'unavailable');
      log.warn({ src: facts.source.ip, user: c.username, callId: facts.callId }, 'cannot verify credentials now (database unavailable, user not cached): 503');
      return UNAVAILABLE;
    }
    const candidates = found.status === 'found' ? found.credentials : undefined;
    const base = { algorithm: c.algorithm, username: c.username, realm, method: facts.method, uri: c.uri, nonce: c.nonce, nc: c.nc, cnonce: c.cnonce, qop: 'auth' as const };
    let matched: typeof candidates = undefined;
    if (candidates) {
      for (const cand of candidates) {
        if (responsesEqual(computeResponse({ ...base, password: cand.password }), c.response)) (matched ??= []).push(cand);
      }
    } else {
      responsesEqual(computeResponse({ ...base, password: dummyPassword }), c.response);
    }
    if (!matched) return fail(ip, facts, 'wrong credentials', FORBIDDEN, c.username);
    if (new Set(matched.map((m) => m.accountcode)).size > 1) {
      log.error({ user: c.username, accounts: matched.map((m) => m.accountcode) }, 'one username and password belong to several accounts: refused');
      return fail(ip, facts, 'ambiguous account', FORBIDDEN, c.username);
    }
    const who = matched[0]!;

    // Only a verified response may advance the counter, so nobody can burn a phone's nonce.
    const nc = counters.accept(c.nonce, n.expiresAt, c.ncValue);
    if (nc === 'replay') {
      log.warn({ src: facts.source.ip, user: c.username, callId: facts.callId, nc: c.nc }, 'nonce count replayed');
      return challenge(true, 'replay');
    }
    if (nc === 'forgotten') return challenge(true);
    if (cfg.requireFromMatch && facts.fromUser !== who.username) {
      return fail(ip, facts, `From user ${JSON.stringify(facts.fromUser)} is not the authenticated user`, FORBIDDEN, c.username);
    }
    result('digest', 'ok');
    if (found.stale) log.warn({ user: who.username }, 'authenticated from cached credentials (database unavailable)');
    return { kind: 'ok', method: 'digest', accountcode: who.accountcode, cardId: who.cardId, username: who.username };
  }

  async function authenticate(facts: RequestFacts): Promise<AuthDecision> {
    try {
      const ip = parseIp(facts.source.ip);
      if (ip) {
        const m = addresses.match(ip, facts.source.port, facts.source.proto);
        if (m) {
          result('ip', 'ok');
          return { kind: 'ok', method: 'ip', accountcode: m.accountcode, ...(m.cardId !== undefined ? { cardId: m.cardId } : {}) };
        }
      }
      return await digest(facts, ip);
    } catch (e) {
      result('none', 'error');
      log.error({ err: describeError(e), callId: facts.callId }, 'authentication error');
      return INTERNAL;
    }
  }

  function screen(facts: RequestFacts): ScreenDecision {
    try {
      const ip = parseIp(facts.source.ip);
      if (!ip) return PASS;
      const trusted = addresses.match(ip, facts.source.port, facts.source.proto) !== undefined;
      const v = abuse.check(ip, facts.userAgent, trusted);
      switch (v.kind) {
        case 'pass':
        case 'whitelisted':
          return PASS;
        case 'scanner':
          metrics?.abuseDrops?.inc({ reason: 'scanner' });
          log.debug({ src: facts.source.ip, ua: facts.userAgent }, 'scanner dropped');
          return { kind: 'drop', reason: 'scanner' };
        case 'banned':
        case 'flood': {
          const reason = v.kind === 'flood' ? 'flood' : 'banned';
          metrics?.abuseDrops?.inc({ reason });
          return opts.config.abuse.banAnswer === '403' ? BAN_403 : { kind: 'drop', reason };
        }
      }
    } catch (e) {
      log.error({ err: describeError(e) }, 'screen error');
      return PASS;
    }
  }

  async function doReload(): Promise<ReloadResult> {
    const t0 = now();
    let rows;
    try {
      rows = await sources!.addressRows();
    } catch (e) {
      lastReloadError = describeError(e);
      throw e;
    }
    const built = AddressTable.build(rows, { groups: cfg.ipGroups, now: now() });
    addresses = built.table; // atomic: lookups see the old or the new table, never a mix
    lastReloadError = undefined;
    credentials.invalidate();
    for (const r of built.rejected) log.warn({ id: r.id, reason: r.reason }, 'address row ignored');
    for (const c of built.conflicts) log.warn({ cidr: c.cidr, ids: c.ids }, 'address rows with the same prefix, port and proto bill different accounts; the lowest (grp, id) wins');
    const res = { entries: built.table.size, rejected: built.rejected.length, conflicts: built.conflicts.length, ms: now() - t0 };
    log.debug(res, 'address table loaded');
    return res;
  }

  function reload(): Promise<ReloadResult> {
    reloading ??= doReload().finally(() => { reloading = undefined; });
    return reloading;
  }

  async function refresh(): Promise<void> {
    try {
      await reload();
    } catch (e) {
      log.error({ err: describeError(e), entries: addresses.size }, 'address table refresh failed; keeping the last loaded table');
    }
  }

  return {
    screen,
    authenticate,
    reload,
    async start() {
      if (refreshTimer) return;
      refreshTimer = setInterval(() => void refresh(), cfg.ipRefreshSec * 1000);
      refreshTimer.unref();
      sweepTimer = setInterval(() => {
        abuse.sweep();
        counters.sweep();
        metrics?.bannedSources?.set(abuse.stats().bans);
      }, 10_000);
      sweepTimer.unref();
      await refresh();
      log.info({ entries: addresses.size, realm, algorithms }, 'auth stage started');
    },
    stop() {
      if (refreshTimer) clearInterval(refreshTimer);
      if (sweepTimer) clearInterval(sweepTimer);
      refreshTimer = sweepTimer = undefined;
    },
    stats() {
      return {
        addressEntries: addresses.size,
        addressLoadedAt: addresses.loadedAt,
        lastReloadError,
        credentials: credentials.stats(),
        nonceCounters: counters.size,
        abuse: abuse.stats(),
      };
    },
    listBans: () => abuse.listBans(),
    unban: (ip: string) => abuse.unban(ip),
    setExtraWhitelist: (entries: readonly string[]) => abuse.setExtraWhitelist(entries),
  };
}
