// RequestFacts: the plain-data view of a request that stages read (hooks.ts). Built once per request
// from the parsed message; header() reads the live message so stages see what the caller sent.
import type { SipRequest } from '../sip/message.js';
import { detached } from '../sip/headers.js';
import { unescapeUri } from '../sip/uri.js';
import type { Proto, RequestFacts } from './hooks.js';

export function factsOf(req: SipRequest): RequestFacts {
  const uri = req.tryUri();
  const from = req.tryFrom();
  const to = req.tryTo();
  const src = req.source;
  const proto: Proto = src?.proto ?? 'udp';
  const ua = req.getHeader('user-agent');
  // Detached: accounting, billing, dispatcher and dialogs keep these for the length of the call, and a slice would
  // keep the request's whole header block alive with them.
  return {
    method: req.method,
    ruri: detached(req.uriRaw),
    ruriUser: uri?.user !== undefined ? detached(unescapeUri(uri.user)) : '',
    ruriHost: detached(uri?.host ?? ''),
    callId: detached(req.getHeader('call-id') ?? ''),
    fromUser: from?.uri?.user !== undefined ? detached(unescapeUri(from.uri.user)) : '',
    fromDomain: detached(from?.uri?.host ?? ''),
    fromTag: detached(from?.tag ?? ''),
    toUser: to?.uri?.user !== undefined ? detached(unescapeUri(to.uri.user)) : '',
    toDomain: detached(to?.uri?.host ?? ''),
    cseq: req.tryCSeq()?.seq ?? 0,
    userAgent: ua === undefined ? undefined : detached(ua),
    source: { ip: src?.address ?? '', port: src?.port ?? 0, proto },
    header: (name: string) => req.headerValues(name),
  };
}
