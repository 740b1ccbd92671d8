// Record-Route and loose routing (RFC 3261 §16.4, §16.6 step 4, §16.12; RFC 5658 double Record-Route).
// Our Record-Route entries carry `lr`, the interface's transport, `ftag` (the caller's From tag, so the
// direction of an in-dialog request is known without any state, even after a restart) and `r2=on` when
// we put two of them (the request changed transport or interface). With a secret configured they also carry
// `sig`, an HMAC of the Call-ID and ftag: an in-dialog request can only be loose-routed through us with a Route we
// issued for that very call, so nobody can use the gateway as an open relay by preloading our address.
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { SipRequest, TransportProto } from '../sip/message.js';
import { formatHost, type SipUri } from '../sip/uri.js';
import type { NameAddr } from '../sip/headers.js';

/** One of our addresses as others see it. */
export interface Iface {
  proto: TransportProto;
  /** Advertised host (Via / Record-Route). */
  host: string;
  port: number;
}

/** Who we are: every advertised host and bound address, and the ports we listen on. */
export interface Identity {
  hosts: Set<string>;
  ports: Set<number>;
}

export function makeIdentity(ifaces: Iface[], extraHosts: string[]): Identity {
  const hosts = new Set<string>();
  const ports = new Set<number>();
  for (const i of ifaces) {
    hosts.add(i.host.toLowerCase());
    ports.add(i.port);
  }
  for (const h of extraHosts) hosts.add(h.toLowerCase());
  return { hosts, ports };
}

/** True when a SIP URI names this proxy (host is one of ours and the port, 5060 when absent, is one we listen on). */
export function isOurs(uri: SipUri | null, id: Identity): boolean {
  if (!uri || (uri.scheme !== 'sip' && uri.scheme !== 'sips')) return false;
  if (!id.hosts.has(uri.host.toLowerCase())) return false;
  return id.ports.has(uri.port ?? 5060);
}

/** Signs (Call-ID, ftag) for our Record-Route; undefined signer = routes are not signed. */
export type RouteSigner = (callId: string, ftag: string) => string;

/** Signatures remembered per signer: the INVITE's is looked up again for its ACK, BYE and re-INVITEs. */
const SIG_MEMO_MAX = 20_000;

export function routeSigner(secret: string): RouteSigner {
  // An HMAC per in-dialog request was ~5 % of the proxy's CPU. Remember what we computed (the signature is a pure
  // function of secret, Call-ID and ftag), oldest out first; a miss (evicted, after a restart) recomputes.
  const memo = new Map<string, string>();
  return (callId, ftag) => {
    const key = `${callId}\n${ftag}`;
    let sig = memo.get(key);
    if (sig === undefined) {
      sig = createHmac('sha256', secret).update(callId).update('\n').update(ftag).digest('base64url').slice(0, 22);
      if (memo.size >= SIG_MEMO_MAX) memo.delete(memo.keys().next().value!);
      memo.set(key, sig);
    }
    return sig;
  };
}

function sameSig(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

// A From tag is a token; only the characters that are also legal in a URI parameter go into ftag.
const SAFE_TAG = /^[A-Za-z0-9\-_.!~*'()+%]{1,128}$/;

/** A Record-Route value for one interface. */
export function recordRouteValue(iface: Iface, ftag: string, double: boolean, sig?: string): string {
  const transport = iface.proto === 'tcp' ? ';transport=tcp' : '';
  const tag = SAFE_TAG.test(ftag) ? `;ftag=${ftag}` : '';
  return `<sip:${formatHost(iface.host)}:${iface.port}${transport};lr${tag}${double ? ';r2=on' : ''}${sig ? `;sig=${sig}` : ''}>`;
}

/**
 * Record-Route values to put on a request going out on `outIface` that came in on `inIface`, top first:
 * one entry, or two (outgoing side on top) when the transport or the interface changes.
 */
export function recordRouteFor(inIface: Iface, outIface: Iface, ftag: string, sig?: string): string[] {
  if (inIface.proto === outIface.proto && inIface.host === outIface.host && inIface.port === outIface.port) {
    return [recordRouteValue(outIface, ftag, false, sig)];
  }
  return [recordRouteValue(outIface, ftag, true, sig), recordRouteValue(inIface, ftag, true, sig)];
}

export type LooseRouteResult =
  /** The request carried our Route (or our address in a strict-routed R-URI) and was rewritten for forwarding. */
  | { kind: 'routed'; nextHopUri: SipUri; ftag: string | undefined; outProto: TransportProto | undefined }
  /** Not for us to route (no Route of ours). */
  | { kind: 'not-ours' }
  /** Our address, but not a Route we issued for this call (bad or missing signature). */
  | { kind: 'forged' }
  | { kind: 'bad'; reason: string };

/**
 * Processes the Route set of an in-dialog request, editing `req`:
 * - strict-router compatibility (§16.4): a Request-URI naming us is replaced by the last Route value;
 * - our Route entries on top are removed (one, or two with r2=on);
 * - the next hop is the first remaining Route, or the Request-URI.
 * `outProto` is the transport the removed entries point to for the onward leg (the second r2 entry).
 */
export function looseRoute(req: SipRequest, id: Identity, signer?: RouteSigner): LooseRouteResult {
  let routes = req.routes;
  if (routes === null) return { kind: 'bad', reason: 'Bad Route' };
  let ours = false;
  let ftag: string | undefined;
  let outProto: TransportProto | undefined;

  const ruri = req.tryUri();
  const callId = req.getHeader('call-id') ?? '';
  const authentic = (uri: SipUri | null): boolean => {
    if (!signer) return true;
    const sig = paramOf(uri, 'sig');
    return sig !== undefined && sameSig(sig, signer(callId, paramOf(uri, 'ftag') ?? ''));
  };
  if (ruri && routes.length > 0 && isOurs(ruri, id) && (ruri.params.has('lr') || ruri.params.has('ftag'))) {
    // A strict router before us put our Record-Route URI in the R-URI: the real target is the last Route.
    if (!authentic(ruri)) return { kind: 'forged' };
    const last = routes[routes.length - 1]!;
    ours = true;
    ftag = paramOf(ruri, 'ftag');
    req.setUri(last.uriRaw);
    removeLastRoute(req);
    routes = req.routes ?? [];
  }

  let removed = 0;
  while (routes.length > 0 && removed < 2) {
    const top = routes[0]!;
    if (!isOurs(top.uri, id)) break;
    if (!authentic(top.uri)) return { kind: 'forged' };
    ours = true;
    ftag ??= paramOf(top.uri, 'ftag');
    const r2 = top.uri?.params.get('r2');
    req.removeFirstRoute();
    removed++;
    routes = req.routes ?? [];
    if (removed === 1 && r2 === undefined) break;
    if (removed === 2) {
      const t = top.uri?.params.get('transport');
      outProto = t && t.toLowerCase() === 'tcp' ? 'tcp' : 'udp';
    }
  }
  if (removed === 1) {
    // single entry: the onward leg uses whatever transport the next hop asks for
    outProto = undefined;
  }
  if (!ours) return { kind: 'not-ours' };
  const next: NameAddr | undefined = routes[0];
  const nextHopUri = next?.uri ?? req.tryUri();
  if (!nextHopUri) return { kind: 'bad', reason: 'Bad next hop' };
  return { kind: 'routed', nextHopUri, ftag, outProto };
}

function paramOf(uri: SipUri | null, name: string): string | undefined {
  const v = uri?.params.get(name);
  return v === null || v === undefined ? undefined : v;
}

function removeLastRoute(req: SipRequest): void {
  const all = req.headerValues('route');
  req.removeHeader('route');
  for (const v of all.slice(0, -1)) req.addHeader('Route', v);
}

/** Where a URI physically points: host, port (5060) and transport (`transport` param, else fallback). */
export function hopOfUri(uri: SipUri, fallback: TransportProto): { address: string; port: number; proto: TransportProto } {
  const maddr = uri.params.get('maddr');
  const t = uri.params.get('transport');
  const proto: TransportProto = t ? (t.toLowerCase() === 'tcp' ? 'tcp' : 'udp') : fallback;
  return { address: maddr ?? uri.host, port: uri.port ?? 5060, proto };
}
