// createProxy(): the SIP front proxy as one object. Wires the sockets (net.ts), the transaction-stateful
// core (core.ts) and the routing script (script.ts) around the stages' hooks (hooks.ts).
//
//   const proxy = createProxy({ config: { ...cfg.sip, failoverCodes: cfg.dispatch.failoverCodes,
//                                         retryAfterSec: cfg.dispatch.retryAfterSec }, log, hooks, metrics });
//   await proxy.start();          // binds every sip.listen entry (port 0 → proxy.addresses tells the real one)
//   dispatcher.setProber(proxy.actions.probe); dialogs.setEnder(proxy.actions.endDialog);
//   await proxy.stop();
import { networkInterfaces } from 'node:os';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { GwError } from '../errors.js';
import { SipTransport } from '../sip/index.js';
import { ProxyCore, type CoreConfig, type ProxyState } from './core.js';
import { AdmissionControl } from './overload.js';
import type { ProxyActions, ProxyHooks } from './hooks.js';
import { makeIdentity, routeSigner, type Iface } from './route.js';
import { createScript } from './script.js';

export type ProxyConfig = Config['sip'] & {
  /** Statuses that make the proxy try the next target (dispatch.failoverCodes). */
  failoverCodes?: number[];
  /** Retry-After on the 503 sent when no target is left (dispatch.retryAfterSec). */
  retryAfterSec?: number;
  /**
   * Secret that signs our Record-Route (HMAC of Call-ID and From tag), so in-dialog requests are only relayed with
   * a Route we issued for that call: no open relay. Every instance behind one address, and every restart, must use
   * the same value (e.g. auth.nonceSecret). Unset: routes are unsigned (any Route naming us is honoured).
   */
  routeSecret?: string;
};

export interface ProxyOptions {
  config: ProxyConfig;
  log: Logger;
  hooks: ProxyHooks;
  metrics?: Metrics;
}

export interface BoundAddress {
  proto: 'udp' | 'tcp';
  /** Bound address (as configured, e.g. 127.0.0.1 or 0.0.0.0). */
  address: string;
  /** Real port (the ephemeral one when configured with 0). */
  port: number;
  /** The host the proxy puts in Via and Record-Route for this listener. */
  advertisedHost: string;
}

export interface Proxy {
  start(): Promise<void>;
  /** Stops accepting, answers calls still being set up (503), clears every timer and closes the sockets. */
  stop(): Promise<void>;
  readonly actions: ProxyActions;
  /** Bound listeners; valid after start(). */
  readonly addresses: BoundAddress[];
  /** The bound listener of a transport (first one), e.g. to point a test UA at it. */
  address(proto: 'udp' | 'tcp'): BoundAddress;
  /** Transactions, forwardings and calls held now; undefined when not started. */
  state(): ProxyState | undefined;
  /** The overload control of new calls (share admitted, queue delay, 503s); undefined when off or not started. */
  readonly overload: AdmissionControl | undefined;
}

const DEFAULT_FAILOVER = [408, 500, 502, 503, 504];

/** Queue probe on the first UDP listener feeding the admission control of new calls (overload.ts). */
async function startOverloadControl(t: SipTransport, core: ProxyCore, o: ProxyConfig['overload'], log: Logger, metrics: Metrics | undefined): Promise<void> {
  const target = o.targetDelayMs;
  const adm = new AdmissionControl({ targetDelayMs: target }, (overloaded, s) => {
    if (overloaded) log.warn({ queueDelayMs: Math.round(s.delayMs), targetDelayMs: target }, 'overload: new calls are being refused (503) while the receive queue drains');
    else log.warn({ queueDelayMs: Math.round(s.delayMs), rejectedSoFar: s.rejected }, 'overload over: every new call is taken on again');
  });
  let probe;
  try {
    probe = await t.startQueueProbe(o.probeIntervalMs, (ms) => {
      adm.observe(ms);
      metrics?.sipQueueDelay.set(ms / 1000);
      metrics?.sipAdmitShare.set(adm.admitShare);
    });
  } catch (e) {
    log.warn({ err: e instanceof Error ? e.message : String(e) }, 'overload control off: the queue probe could not start');
    return;
  }
  if (probe === undefined) {
    log.info('overload control off: it measures the UDP receive queue and there is no UDP listener');
    return;
  }
  core.admission = adm;
}

/** The host to advertise for a bound address: the configured one, else the address, else a real interface. */
function advertise(configured: string | undefined, bound: string): string {
  if (configured) return configured;
  if (bound !== '0.0.0.0' && bound !== '::') return bound;
  for (const list of Object.values(networkInterfaces())) {
    for (const n of list ?? []) if (n.family === 'IPv4' && !n.internal) return n.address;
  }
  return '127.0.0.1';
}

/** Every local address, for Route/Request-URI self-recognition when bound to a wildcard. */
function localAddresses(): string[] {
  const out: string[] = [];
  for (const list of Object.values(networkInterfaces())) for (const n of list ?? []) out.push(n.address);
  return out;
}

export function createProxy(opts: ProxyOptions): Proxy {
  const { config, log, hooks, metrics } = opts;
  let transport: SipTransport | undefined;
  let core: ProxyCore | undefined;
  let bound: BoundAddress[] = [];
  const notStarted = (): never => { throw new GwError('GW_ERR_SIP_TRANSPORT', 'proxy not started'); };

  const actions: ProxyActions = {
    endDialog: (d, reason) => (core ? core.endDialog(d, reason) : Promise.resolve()),
    probe: (t, timeoutMs) => (core ? core.probe(t, timeoutMs) : Promise.resolve(0)),
  };

  return {
    actions,
    get addresses() { return bound; },
    address(proto) {
      const a = bound.find((b) => b.proto === proto);
      return a ?? notStarted();
    },
    state: () => core?.state(),
    get overload() { return core?.admission; },
    async start() {
      if (transport) return;
      const t = new SipTransport({
        listen: config.listen, advertisedHost: config.advertisedHost, maxMessageSize: config.maxMessageSize,
        tcpIdleTimeoutMs: config.tcpIdleTimeoutMs, tcpMessageTimeoutMs: config.tcpMessageTimeoutMs,
        maxTcpConnectionsPerSource: config.maxTcpConnectionsPerSource, logger: log, metrics,
      });
      const listeners = await t.start();
      transport = t;
      bound = listeners.map((l) => ({
        proto: l.proto, address: l.host, port: l.port, advertisedHost: t.localAddress(l.proto)?.host ?? advertise(config.advertisedHost, l.host),
      }));
      const ifaces: Iface[] = bound.map((b) => ({ proto: b.proto, host: b.advertisedHost, port: b.port }));
      const wildcard = bound.some((b) => b.address === '0.0.0.0' || b.address === '::');
      const extra = [...config.domains, ...bound.map((b) => b.address), ...(wildcard ? localAddresses() : [])];
      const cfg: CoreConfig = {
        t1Ms: config.t1Ms, t2Ms: config.t2Ms, t4Ms: config.t4Ms, lingerMs: config.lingerMs,
        inviteTimeoutMs: config.inviteTimeoutMs, noResponseTimeoutMs: config.noResponseTimeoutMs,
        maxForwards: config.maxForwards, serverHeader: config.serverHeader,
        failoverCodes: new Set(config.failoverCodes ?? DEFAULT_FAILOVER), retryAfterSec: config.retryAfterSec ?? 30,
        overloadRetryAfterSec: config.overload.retryAfterSec,
        signer: config.routeSecret ? routeSigner(config.routeSecret) : undefined,
      };
      const c = new ProxyCore(t, ifaces, makeIdentity(ifaces, extra), cfg, hooks, log, metrics);
      c.setScript(createScript(c));
      if (config.overload.enabled) await startOverloadControl(t, c, config.overload, log, metrics);
      core = c;
      log.info({ listeners: bound }, 'SIP proxy listening');
    },
    async stop() {
      const c = core;
      const t = transport;
      core = undefined;
      transport = undefined;
      if (c) {
        c.shutdown();
        // let the 503s and CANCELs leave before the sockets close
        await new Promise((r) => setTimeout(r, 20));
        c.close();
      }
      await t?.close();
    },
  };
}
