// RequestFacts: the plain-data view of a request that stages read (hooks.ts). Built once per request
// from the parsed message; header() reads the live message so stages see what the caller sent.
import type { SipRequest } from '../sip/message.js';
import { unescapeUri } from '../sip/uri.js';
import type { Proto, RequestFacts } from './hooks.js';

export function factsOf(req: SipRequest): RequestFacts {
  const uri = req.tryUri();
  const from = req.tryFrom();
  const to = req.tryTo();
  const src = req.source;
  const proto: Proto = src?.proto ?? 'udp';
  return {
    method: req.method,
    ruri: req.uriRaw,
    ruriUser: uri?.user !== undefined ? unescapeUri(uri.user) : '',
    ruriHost: uri?.host ?? '',
    callId: req.getHeader('call-id') ?? '',
    fromUser: from?.uri?.user !== undefined ? unescapeUri(from.uri.user) : '',
    fromDomain: from?.uri?.host ?? '',
    fromTag: from?.tag ?? '',
    toUser: to?.uri?.user !== undefined ? unescapeUri(to.uri.user) : '',
    toDomain: to?.uri?.host ?? '',
    cseq: req.tryCSeq()?.seq ?? 0,
    userAgent: req.getHeader('user-agent'),
    source: { ip: src?.address ?? '', port: src?.port ?? 0, proto },
    header: (name: string) => req.headerValues(name),
  };
}
