// The WHOLE gateway (src/gateway.ts startGateway) for end-to-end tests: a real MariaDB database with the seed
// data (or one you hand in), gw_dispatcher rows pointing at test callees (SipUa stand-ins for Asterisk boxes
// on their own loopback addresses), a config built like production's but with test-sized timers, and
// callers bound to chosen loopback addresses (127.0.0.2 = bob's IP peer, 127.0.10.x = trusted range,
// anything else = untrusted → digest). Everything is closed by stop().
//
//   const h = await startTestGateway({ callees: [{}, {}, {}], config: { billing: { creditCheck: false } } });
//   const caller = await h.caller({ host: '127.0.0.2' });
//   const call = caller.invite({ to: h.ruri('15551230000'), via: h.udp });
//   (await call.final()).status; call.ack(); ...; await h.stop();
//
// Callees sit on 127.0.20.x by default: the gateway whitelists its boxes' addresses for abuse screening,
// so a caller must never share an address with a box or it would never be banned.
// Also here: digestInvite() (INVITE → 407 → INVITE with credentials), digestAnswer()/challengesOf() (an
// independent RFC 7616 client, to build honest or hostile Proxy-Authorization values), finish() (ACK + BYE).
// Defaults worth knowing: mgmt on 127.0.0.1 port 0 (h.mgmtUrl), pike limit effectively off (set abuse.pike to
// test it), billing.creditCheck on (seed rates), sip.noResponseTimeoutMs 1500, OPTIONS probes every 5 s.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ConfigInput } from '../../src/config/schema.js';
import { validateConfig } from '../../src/config/load.js';
import { startGateway, type Gateway } from '../../src/gateway.js';
import { silentLogger } from '../../src/log.js';
import { createTestDb, type TestDb } from './db.js';
import { SipUa, type Behaviour, type HostPort, type UaCall, type UaMessage, type UaOptions, type UaProto } from './sip-ua.js';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A deep partial of the config input: only the keys a test cares about. */
type DeepPartial<T> = T extends readonly unknown[] ? T : T extends object ? { [K in keyof T]?: DeepPartial<T[K]> } : T;
export type ConfigOverrides = DeepPartial<ConfigInput>;

export interface CalleeSpec {
  behaviour?: Behaviour;
  /** Loopback address of the box (default 127.0.20.<n>, n = position + 1). */
  host?: string;
  proto?: UaProto;
  /** gw_dispatcher columns (defaults: set of the gateway, state 0, weight 1, priority 0). */
  setid?: number;
  state?: number;
  weight?: number;
  priority?: number;
  name?: string;
}

export interface Callee {
  ua: SipUa;
  /** gw_dispatcher.id as the dispatcher names it (Target.id). */
  id: string;
  uri: string;
  host: string;
  port: number;
  spec: CalleeSpec;
  /** Initial INVITEs this box received (retransmissions excluded), in order. */
  invites(): UaMessage[];
}

export interface TestGateway {
  gw: Gateway;
  db: TestDb;
  callees: Callee[];
  udp: HostPort;
  tcp: HostPort;
  /** Temporary directory with the journals and dialog state. */
  dir: string;
  /** http://127.0.0.1:<port> of the management interface (undefined when mgmt.enabled is false). */
  mgmtUrl: string | undefined;
  /** A Request-URI addressed to the gateway: sip:<user>@127.0.0.1:<port>[;transport=tcp]. */
  ruri(user: string, proto?: UaProto): string;
  /** A caller UA on a loopback address (default: a fresh untrusted 127.0.60.x per call); closed by stop(). */
  caller(opts?: UaOptions): Promise<SipUa>;
  /** Extra callee boxes started later (rows inserted; call gw.reload() or the mgmt reload to pick them up). */
  addCallee(spec?: CalleeSpec): Promise<Callee>;
  stop(): Promise<void>;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Recursive merge of plain objects (arrays and scalars of `over` replace). */
export function deepMerge<T>(base: T, over: unknown): T {
  if (!isPlainObject(base) || !isPlainObject(over)) return (over === undefined ? base : over) as T;
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = k in out ? deepMerge(out[k], v) : v;
  return out as T;
}

/** The n-th untrusted loopback address for callers (127.0.60.1, 127.0.60.2, ...): its own abuse counters. */
export function callerIp(n: number): string {
  return `127.0.${60 + (Math.floor(n / 250) % 100)}.${(n % 250) + 1}`;
}

export interface StartOptions {
  /** Database to use (kept at stop). Default: a fresh seeded database, dropped at stop. */
  db?: TestDb;
  /** Use this URL for the gateway instead of db.gwUrl (e.g. a private MariaDB). */
  dbUrl?: string;
  callees?: CalleeSpec[];
  /** Destination set of this gateway (dispatch.setId); callee rows default to it. */
  setId?: number;
  config?: ConfigOverrides;
  /**
   * Listen on a random fixed port in [min, max] (UDP and TCP alike) instead of port 0, retried on a clash.
   * For third-party tools that mangle 5-digit ports (sipsak 0.9.8.1 drops the last digit).
   */
  sipPortRange?: [number, number];
}

export async function startTestGateway(opts: StartOptions = {}): Promise<TestGateway> {
  const ownDb = !opts.db;
  const db = opts.db ?? (await createTestDb({ seed: true }));
  const dir = await mkdtemp(join(tmpdir(), 'a2b-e2e-'));
  const setId = opts.setId ?? 1;
  const callees: Callee[] = [];
  const callers: SipUa[] = [];
  let callerSeq = 0;
  let gw: Gateway | undefined;

  const addCallee = async (spec: CalleeSpec = {}): Promise<Callee> => {
    const n = callees.length + 1;
    const host = spec.host ?? `127.0.20.${n}`;
    const proto = spec.proto ?? 'udp';
    const ua = await SipUa.start({ name: spec.name ?? `box${n}`, host, proto, behaviour: spec.behaviour ?? { kind: 'answer' } });
    const uri = `sip:${host}:${ua.address(proto).port}${proto === 'tcp' ? ';transport=tcp' : ''}`;
    const [res] = await db.db.query(
      'INSERT INTO gw_dispatcher (setid, destination, state, weight, priority, description) VALUES (?, ?, ?, ?, ?, ?)',
      [spec.setid ?? setId, uri, spec.state ?? 0, spec.weight ?? 1, spec.priority ?? 0, `e2e ${ua.name}`],
    );
    const id = String((res as { insertId: number }).insertId);
    const callee: Callee = {
      ua, id, uri, host, port: ua.address(proto).port, spec,
      invites: () => {
        const seen = new Set<string>();
        return ua.received.filter((m) => {
          if (m.method !== 'INVITE' || m.toTag || seen.has(m.topBranch)) return false;
          seen.add(m.topBranch);
          return true;
        });
      },
    };
    callees.push(callee);
    return callee;
  };

  try {
    for (const spec of opts.callees ?? []) await addCallee(spec);
    const base = {
      log: { level: 'silent' },
      db: { url: opts.dbUrl ?? db.gwUrl, poolSize: 4, connectTimeoutMs: 2000 },
      sip: {
        listen: [{ proto: 'udp', host: '127.0.0.1', port: 0 }, { proto: 'tcp', host: '127.0.0.1', port: 0 }],
        t1Ms: 100,
        noResponseTimeoutMs: 1500,
        routeSecret: 'e2e-route-secret-0123456789',
      },
      auth: { nonceSecret: 'e2e-nonce-secret-0123456789abcdef' },
      abuse: { pike: { maxRequests: 100000 } },
      dispatch: { setId, probeIntervalSec: 5, probeTimeoutMs: 500 },
      acc: { journalDir: join(dir, 'journal'), fsync: 'none', flushIntervalMs: 50 },
      dialog: { stateDir: join(dir, 'dialogs'), instance: `e2e-${randomBytes(4).toString('hex')}` },
      reconcile: { enabled: false },
      mgmt: { enabled: true, host: '127.0.0.1', port: 0 },
    };
    const merged = deepMerge(base, opts.config ?? {});
    const range = opts.sipPortRange;
    for (let attempt = 0; ; attempt++) {
      if (range) {
        const port = range[0] + Math.floor(Math.random() * (range[1] - range[0] + 1));
        merged.sip.listen = [{ proto: 'udp', host: '127.0.0.1', port }, { proto: 'tcp', host: '127.0.0.1', port }];
      }
      const config = validateConfig(merged, 'e2e test config');
      try {
        gw = await startGateway({ config, log: silentLogger() });
        break;
      } catch (e) {
        if (!range || attempt >= 20) throw e;
      }
    }
  } catch (e) {
    for (const c of callees) await c.ua.close();
    await rm(dir, { recursive: true, force: true });
    if (ownDb) await db.drop();
    throw e;
  }
  const g = gw;
  const u = g.proxy.address('udp');
  const t = g.proxy.address('tcp');
  let stopped = false;
  return {
    gw: g, db, callees, dir,
    mgmtUrl: g.mgmt?.url(),
    udp: { host: u.address, port: u.port, proto: 'udp' },
    tcp: { host: t.address, port: t.port, proto: 'tcp' },
    ruri: (user, proto = 'udp') => `sip:${user}@127.0.0.1:${proto === 'udp' ? u.port : t.port}${proto === 'tcp' ? ';transport=tcp' : ''}`,
    async caller(o: UaOptions = {}) {
      const ua = await SipUa.start({ name: 'caller', ...o, host: o.host ?? callerIp(callerSeq++) });
      callers.push(ua);
      return ua;
    },
    addCallee,
    async stop() {
      if (stopped) return;
      stopped = true;
      await g.stop();
      for (const ua of callers) await ua.close();
      for (const c of callees) await c.ua.close();
      await rm(dir, { recursive: true, force: true });
      if (ownDb) await db.drop();
    },
  };
}

// ---- digest (an independent client implementation: the test must not share the gateway's code) ----------

export interface Challenge {
  realm: string;
  nonce: string;
  algorithm: string;
  qop: string | undefined;
  stale: boolean;
  raw: string;
}

export function parseChallenge(value: string): Challenge {
  const get = (name: string): string | undefined => {
    const m = new RegExp(`(?:^|[\\s,])${name}\\s*=\\s*(?:"([^"]*)"|([^,\\s]+))`, 'i').exec(value.replace(/^Digest\s+/i, ' '));
    return m ? (m[1] ?? m[2]) : undefined;
  };
  return {
    realm: get('realm') ?? '',
    nonce: get('nonce') ?? '',
    algorithm: get('algorithm') ?? 'MD5',
    qop: get('qop'),
    stale: (get('stale') ?? '').toLowerCase() === 'true',
    raw: value,
  };
}

/** The challenges of a 401/407, one per Proxy-Authenticate line. */
export function challengesOf(res: UaMessage): Challenge[] {
  return res.headerLines('proxy-authenticate').map(parseChallenge);
}

const H = (alg: string, s: string): string => createHash(alg.toUpperCase() === 'SHA-256' ? 'sha256' : 'md5').update(s, 'utf8').digest('hex');

/** A Proxy-Authorization value answering `ch` (qop=auth). Every field can be overridden to build hostile ones. */
export function digestAnswer(ch: Challenge, o: {
  method: string; uri: string; user: string; password: string;
  nc?: number; cnonce?: string; realm?: string; algorithm?: string;
}): string {
  const alg = o.algorithm ?? ch.algorithm;
  const realm = o.realm ?? ch.realm;
  const nc = (o.nc ?? 1).toString(16).padStart(8, '0');
  const cnonce = o.cnonce ?? randomBytes(8).toString('hex');
  const ha1 = H(alg, `${o.user}:${realm}:${o.password}`);
  const ha2 = H(alg, `${o.method}:${o.uri}`);
  const response = H(alg, `${ha1}:${ch.nonce}:${nc}:${cnonce}:auth:${ha2}`);
  const q = (s: string): string => `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
  return `Digest username=${q(o.user)}, realm=${q(realm)}, nonce=${q(ch.nonce)}, uri=${q(o.uri)}, response="${response}", algorithm=${alg}, qop=auth, nc=${nc}, cnonce=${q(cnonce)}`;
}

/** Waits for the final answer of a call; a 2xx is ACKed and hung up (BYE), so nothing stays open. */
export async function finish(call: UaCall, timeoutMs = 5000): Promise<UaMessage> {
  const res = await call.final(timeoutMs);
  if (res.status >= 200 && res.status < 300) {
    call.ack();
    await call.dialog!.request('BYE').final(timeoutMs);
  }
  return res;
}

/**
 * An INVITE answered by digest: sends it, expects 407, answers the challenge of `algorithm` (default the first
 * offered) with user/password, and returns both transactions. From is `sip:<user>@<caller host>` (the gateway
 * requires the From user to be the authenticated user).
 */
export async function digestInvite(caller: SipUa, o: {
  to: string; via: HostPort; user: string; password: string; algorithm?: string; callId?: string; headers?: Array<[string, string]>;
}): Promise<{ first: UaCall; challenge: Challenge; second: UaCall }> {
  const callId = o.callId ?? `${randomBytes(8).toString('hex')}@e2e`;
  const from = `sip:${o.user}@${caller.host}`;
  const first = caller.invite({ to: o.to, via: o.via, from, callId, headers: o.headers });
  const r1 = await first.final();
  if (r1.status !== 407) throw new Error(`expected 407 to the first INVITE, got ${r1.status} ${r1.reason}`);
  const chs = challengesOf(r1);
  const ch = chs.find((c) => !o.algorithm || c.algorithm.toUpperCase() === o.algorithm.toUpperCase());
  if (!ch) throw new Error(`no ${o.algorithm} challenge in [${chs.map((c) => c.algorithm).join(', ')}]`);
  const auth = digestAnswer(ch, { method: 'INVITE', uri: o.to, user: o.user, password: o.password });
  const second = caller.invite({ to: o.to, via: o.via, from, callId, headers: [...(o.headers ?? []), ['Proxy-Authorization', auth]] });
  return { first, challenge: ch, second };
}
