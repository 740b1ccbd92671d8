// RequestFacts for auth tests: plain data, as the proxy hands them to the stage.
import type { Proto, RequestFacts } from '../../../src/proxy/hooks.js';

export interface FactsInit {
  ip?: string;
  port?: number;
  proto?: Proto;
  method?: string;
  ruri?: string;
  fromUser?: string;
  userAgent?: string;
  callId?: string;
  /** Raw header lines, name → values (as the SIP layer would return them). */
  headers?: Record<string, string[]>;
}

export function facts(init: FactsInit = {}): RequestFacts {
  const ruri = init.ruri ?? 'sip:15551234567@gw.example.net';
  const user = /^sips?:([^@;]+)@/.exec(ruri)?.[1] ?? '';
  const headers = new Map<string, string[]>();
  for (const [k, v] of Object.entries(init.headers ?? {})) headers.set(k.toLowerCase(), v);
  return {
    method: init.method ?? 'INVITE',
    ruri,
    ruriUser: user,
    ruriHost: 'gw.example.net',
    callId: init.callId ?? 'a84b4c76e66710@pc33.example.com',
    fromUser: init.fromUser ?? '4242424242',
    fromDomain: 'gw.example.net',
    fromTag: '1928301774',
    toUser: user,
    toDomain: 'gw.example.net',
    cseq: 1,
    userAgent: init.userAgent,
    source: { ip: init.ip ?? '198.51.100.7', port: init.port ?? 5060, proto: init.proto ?? 'udp' },
    header(name: string): string[] {
      return headers.get(name.toLowerCase()) ?? [];
    },
  };
}
