// Hooks for tests and demos: everyone is authenticated with a fixed account code and every call goes to
// fixed targets. Events are recorded so tests can assert on them. Not used in production wiring.
import type { CallEvent, ProxyHooks, Target, TargetFailure } from './hooks.js';

export interface StaticHooks extends ProxyHooks {
  readonly events: CallEvent[];
  readonly failures: Array<{ target: Target; failure: TargetFailure }>;
  /** Replace the targets used for the next calls. */
  targets: Target[];
}

export function staticHooks(opts: { accountcode?: string; targets: Target[] }): StaticHooks {
  const h: StaticHooks = {
    events: [],
    failures: [],
    targets: opts.targets,
    authenticate: () => ({ kind: 'ok', method: 'ip', accountcode: opts.accountcode ?? '1000000001' }),
    route: () => ({ kind: 'targets', targets: h.targets }),
    targetFailed: (target, failure) => { h.failures.push({ target, failure }); },
    onCallEvent: (ev) => { h.events.push(ev); },
  };
  return h;
}

/** A Target for a SIP URI like sip:127.0.0.1:5080;transport=tcp. */
export function targetOf(id: string, host: string, port: number, proto: 'udp' | 'tcp' = 'udp'): Target {
  const h = host.includes(':') ? `[${host}]` : host;
  return { id, uri: `sip:${h}:${port}${proto === 'tcp' ? ';transport=tcp' : ''}`, host, port, proto };
}
