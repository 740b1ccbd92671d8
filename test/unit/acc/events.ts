// CallEvent builders for accounting tests: one call as the proxy reports it.
import type { Authenticated, CallEvent, DialogInfo, RequestFacts, Target } from '../../../src/proxy/hooks.js';

export const T0 = Date.UTC(2026, 10, 22, 8, 0, 0, 0);

export function facts(over: Partial<RequestFacts> = {}): RequestFacts {
  const f: Omit<RequestFacts, 'header'> = {
    method: 'INVITE', ruri: 'sip:4420123456@gw.example.net', ruriUser: '4420123456', ruriHost: 'gw.example.net',
    callId: 'a84b4c76e66710@pc33.example.com', fromUser: 'alice', fromDomain: 'example.com', fromTag: '1928301774',
    toUser: '4420123456', toDomain: 'gw.example.net', cseq: 314159, userAgent: 'softphone/1.0',
    source: { ip: '192.0.2.10', port: 5060, proto: 'udp' }, ...over,
  };
  return { ...f, header: () => [] };
}

export const alice: Authenticated = { method: 'digest', accountcode: '4242424242', cardId: 1, username: 'alice' };

export const box1: Target = { id: '1', uri: 'sip:10.0.0.5:5060;transport=udp', host: '10.0.0.5', port: 5060, proto: 'udp' };
export const box2: Target = { id: '2', uri: 'sip:10.0.0.6:5060;transport=tcp', host: '10.0.0.6', port: 5060, proto: 'tcp' };

export function dialog(f: RequestFacts, target: Target, createdAt: number, answeredAt: number, calleeTag = 'as5e1b2c'): DialogInfo {
  return {
    callId: f.callId, callerTag: f.fromTag, calleeTag,
    fromHeader: `"Alice" <sip:${f.fromUser}@${f.fromDomain}>;tag=${f.fromTag}`, toHeader: `<sip:${f.toUser}@${f.toDomain}>;tag=${calleeTag}`,
    callerContact: '<sip:alice@192.0.2.10:5060>', calleeContact: `<sip:${f.ruriUser}@${target.host}:${target.port}>`,
    callerRouteSet: [], calleeRouteSet: [], callerHop: f.source, calleeHop: { ip: target.host, port: target.port, proto: target.proto },
    callerCseq: f.cseq, calleeCseq: 0, recordRoute: ['<sip:gw.example.net;lr>'], accountcode: alice.accountcode, targetId: target.id,
    createdAt, answeredAt,
  };
}

/** start → (attempt-failed on box1) → answered on `target` → ended. */
export function answeredCall(f: RequestFacts, o: { answerAfterMs: number; talkMs: number; reason?: 'bye-caller' | 'bye-callee' | 'max-duration'; failover?: boolean; maxDurationSec?: number; start?: number }): CallEvent[] {
  const t0 = o.start ?? T0;
  const target = o.failover ? box2 : box1;
  const evs: CallEvent[] = [{ type: 'start', facts: f, auth: alice, at: t0, maxDurationSec: o.maxDurationSec }];
  if (o.failover) evs.push({ type: 'attempt-failed', facts: f, auth: alice, target: box1, status: 503, reason: 'Service Unavailable', at: t0 + 40, attempt: 1 });
  const answeredAt = t0 + o.answerAfterMs;
  evs.push({ type: 'answered', facts: f, auth: alice, target, status: 200, reason: 'OK', at: answeredAt, dialog: dialog(f, target, t0, answeredAt), maxDurationSec: o.maxDurationSec });
  evs.push({ type: 'ended', callId: f.callId, fromTag: f.fromTag, toTag: 'as5e1b2c', reason: o.reason ?? 'bye-caller', at: answeredAt + o.talkMs });
  return evs;
}
