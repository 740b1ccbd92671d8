// Shared set-up for the proxy end-to-end tests: a gateway on loopback (UDP and TCP, ephemeral ports) with
// static hooks, and test user agents around it. Real sockets only.
import { configSchema, type ConfigInput } from '../../src/config/schema.js';
import { silentLogger } from '../../src/log.js';
import { createProxy, type Proxy } from '../../src/proxy/proxy.js';
import { staticHooks, targetOf, type StaticHooks } from '../../src/proxy/testing.js';
import type { ProxyHooks, Target } from '../../src/proxy/hooks.js';
import { SipUa, type HostPort, type UaOptions } from '../helpers/sip-ua.js';

export interface Gateway {
  proxy: Proxy;
  hooks: StaticHooks;
  udp: HostPort;
  tcp: HostPort;
  /** A Request-URI addressed to the gateway, e.g. sip:100@127.0.0.1:port */
  ruri(user: string, proto?: 'udp' | 'tcp'): string;
}

export async function startGateway(o: {
  targets?: Target[];
  sip?: NonNullable<ConfigInput['sip']>;
  hooks?: Partial<ProxyHooks>;
  failoverCodes?: number[];
  accountcode?: string;
  /** Signs Record-Route (default: a fixed test secret; null: unsigned). */
  routeSecret?: string | null;
} = {}): Promise<Gateway> {
  const sip = configSchema.parse({
    sip: {
      listen: [{ proto: 'udp', host: '127.0.0.1', port: 0 }, { proto: 'tcp', host: '127.0.0.1', port: 0 }],
      t1Ms: 100,
      ...o.sip,
    },
  }).sip;
  const base = staticHooks({ targets: o.targets ?? [], accountcode: o.accountcode ?? '4242424242' });
  const hooks = Object.assign(base, o.hooks ?? {}) as StaticHooks;
  const proxy = createProxy({ config: { ...sip, failoverCodes: o.failoverCodes, retryAfterSec: 30, routeSecret: o.routeSecret === null ? undefined : (o.routeSecret ?? 'e2e-route-secret-0123456789') }, log: silentLogger(), hooks });
  await proxy.start();
  const u = proxy.address('udp');
  const t = proxy.address('tcp');
  return {
    proxy,
    hooks,
    udp: { host: u.address, port: u.port, proto: 'udp' },
    tcp: { host: t.address, port: t.port, proto: 'tcp' },
    ruri: (user, proto = 'udp') => `sip:${user}@127.0.0.1:${proto === 'udp' ? u.port : t.port}${proto === 'tcp' ? ';transport=tcp' : ''}`,
  };
}

/** A callee (the Asterisk side) and the Target pointing at it. */
export async function startCallee(opts: UaOptions & { id?: string } = {}): Promise<{ ua: SipUa; target: Target }> {
  const ua = await SipUa.start({ name: 'asterisk', ...opts });
  const proto = opts.proto ?? 'udp';
  return { ua, target: targetOf(opts.id ?? ua.name, '127.0.0.1', ua.address(proto).port, proto) };
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
