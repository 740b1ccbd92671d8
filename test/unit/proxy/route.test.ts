// Record-Route values and loose routing (RFC 3261 §16.4, §16.12, RFC 5658), on raw wire bytes.
import { describe, expect, it } from 'vitest';
import { parseOrThrow, parseUri, type SipRequest } from '../../../src/sip/index.js';
import { isOurs, looseRoute, makeIdentity, recordRouteFor, routeSigner, type Iface } from '../../../src/proxy/route.js';

const udp: Iface = { proto: 'udp', host: '192.0.2.10', port: 5060 };
const tcp: Iface = { proto: 'tcp', host: '192.0.2.10', port: 5061 };
const id = makeIdentity([udp, tcp], ['gw.example.net']);

function req(lines: string[]): SipRequest {
  return parseOrThrow([...lines, 'Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bKabc', 'From: <sip:a@x>;tag=ft1',
    'To: <sip:b@y>;tag=tt1', 'Call-ID: c1', `CSeq: 2 ${lines[0]!.split(' ')[0]}`, 'Max-Forwards: 70', 'Content-Length: 0', '', ''].join('\r\n')) as SipRequest;
}

describe('Record-Route', () => {
  it('one entry with lr and ftag when the interface does not change', () => {
    expect(recordRouteFor(udp, udp, 'ft1')).toEqual(['<sip:192.0.2.10:5060;lr;ftag=ft1>']);
  });
  it('two entries (outgoing side on top, r2=on) when the transport changes', () => {
    expect(recordRouteFor(udp, tcp, 'ft1')).toEqual([
      '<sip:192.0.2.10:5061;transport=tcp;lr;ftag=ft1;r2=on>',
      '<sip:192.0.2.10:5060;lr;ftag=ft1;r2=on>',
    ]);
  });
});

describe('isOurs', () => {
  it('matches our hosts and ports, 5060 when the port is absent', () => {
    expect(isOurs(parseUri('sip:192.0.2.10;lr'), id)).toBe(true);
    expect(isOurs(parseUri('sip:GW.example.net:5061'), id)).toBe(true);
    expect(isOurs(parseUri('sip:192.0.2.10:5070'), id)).toBe(false);
    expect(isOurs(parseUri('sip:192.0.2.11'), id)).toBe(false);
    expect(isOurs(parseUri('tel:+12025550100'), id)).toBe(false);
  });
});

describe('looseRoute', () => {
  it('removes our Route and routes to the Request-URI', () => {
    const r = req(['BYE sip:ast@203.0.113.5:5060 SIP/2.0', 'Route: <sip:192.0.2.10:5060;lr;ftag=ft1>']);
    const out = looseRoute(r, id);
    expect(out.kind).toBe('routed');
    if (out.kind !== 'routed') return;
    expect(out.nextHopUri.host).toBe('203.0.113.5');
    expect(out.ftag).toBe('ft1');
    expect(out.outProto).toBeUndefined();
    expect(r.header('route')).toEqual([]);
  });

  it('removes both entries of a double Record-Route and takes the transport of the second', () => {
    const r = req(['BYE sip:ast@203.0.113.5 SIP/2.0',
      'Route: <sip:192.0.2.10:5060;lr;ftag=ft1;r2=on>, <sip:192.0.2.10:5061;transport=tcp;lr;ftag=ft1;r2=on>']);
    const out = looseRoute(r, id);
    expect(out.kind === 'routed' && out.outProto).toBe('tcp');
    expect(r.header('route')).toEqual([]);
  });

  it('keeps the next proxy\'s Route and routes to it', () => {
    const r = req(['BYE sip:ast@203.0.113.5 SIP/2.0', 'Route: <sip:192.0.2.10;lr;ftag=ft1>', 'Route: <sip:198.51.100.1:5080;lr>']);
    const out = looseRoute(r, id);
    expect(out.kind === 'routed' && `${out.nextHopUri.host}:${out.nextHopUri.port}`).toBe('198.51.100.1:5080');
    expect(r.headerValues('route')).toEqual(['<sip:198.51.100.1:5080;lr>']);
  });

  it('strict router before us: our Record-Route URI in the R-URI is replaced by the last Route', () => {
    const r = req(['BYE sip:192.0.2.10:5060;lr;ftag=ft1 SIP/2.0', 'Route: <sip:ast@203.0.113.5:5062>']);
    const out = looseRoute(r, id);
    expect(out.kind).toBe('routed');
    expect(r.uriRaw).toBe('sip:ast@203.0.113.5:5062');
    expect(r.header('route')).toEqual([]);
    expect(out.kind === 'routed' && out.ftag).toBe('ft1');
  });

  it('a request without our Route is not ours', () => {
    expect(looseRoute(req(['BYE sip:ast@203.0.113.5 SIP/2.0', 'Route: <sip:198.51.100.1;lr>']), id).kind).toBe('not-ours');
    expect(looseRoute(req(['BYE sip:100@192.0.2.10 SIP/2.0']), id).kind).toBe('not-ours');
  });
});

describe('signed Record-Route', () => {
  const signer = routeSigner('a-secret-of-sixteen+');
  it('a Route we issued for this Call-ID passes; the same Route on another Call-ID, or unsigned, is forged', () => {
    const [rr] = recordRouteFor(udp, udp, 'ft1', signer('c1', 'ft1'));
    expect(rr).toMatch(/;lr;ftag=ft1;sig=[A-Za-z0-9_-]{22}>$/);
    expect(looseRoute(req(['BYE sip:ast@203.0.113.5 SIP/2.0', `Route: ${rr}`]), id, signer).kind).toBe('routed');
    const other = req(['BYE sip:ast@203.0.113.5 SIP/2.0', `Route: ${rr}`]);
    other.setHeader('Call-ID', 'c2');
    expect(looseRoute(other, id, signer).kind).toBe('forged');
    expect(looseRoute(req(['BYE sip:ast@203.0.113.5 SIP/2.0', 'Route: <sip:192.0.2.10;lr;ftag=ft1>']), id, signer).kind).toBe('forged');
  });
  it('a From tag that is not URI-safe is left out of ftag', () => {
    expect(recordRouteFor(udp, udp, 'a`b<c')).toEqual(['<sip:192.0.2.10:5060;lr>']);
  });
});
