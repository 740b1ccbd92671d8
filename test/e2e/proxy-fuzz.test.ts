// Hostile input over real UDP: mutated and mangled INVITEs / in-dialog requests (fast-check). The gateway must
// never fault (no error logged by the receive path or the script) and must keep answering.
import { Writable } from 'node:stream';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configSchema } from '../../src/config/schema.js';
import { createLogger } from '../../src/log.js';
import { createProxy, type Proxy } from '../../src/proxy/proxy.js';
import { staticHooks } from '../../src/proxy/testing.js';
import { SipUa, type HostPort } from '../helpers/sip-ua.js';
import { startCallee, sleep } from './proxy-harness.js';

const errors: string[] = [];
let proxy: Proxy;
let gw: HostPort;
let ua: SipUa;
let callee: SipUa;
let log: ReturnType<typeof createLogger>;

beforeAll(async () => {
  const c = await startCallee({ behaviour: { kind: 'answer' } });
  callee = c.ua;
  const sink = new Writable({ write(chunk: Buffer, _enc, cb) { errors.push(chunk.toString()); cb(); } });
  log = createLogger({ level: 'error', format: 'json' }, sink);
  const sip = configSchema.parse({ sip: { listen: [{ proto: 'udp', host: '127.0.0.1', port: 0 }], t1Ms: 100 } }).sip;
  proxy = createProxy({ config: { ...sip, routeSecret: 'fuzz-secret-0123456789' }, log, hooks: staticHooks({ targets: [c.target] }) });
  await proxy.start();
  gw = { host: '127.0.0.1', port: proxy.address('udp').port, proto: 'udp' };
  ua = await SipUa.start({ name: 'fuzzer' });
});
afterAll(async () => {
  await ua.close();
  await proxy.stop();
  await callee.close();
});

function invite(n: number, extra: string[], opts: { method?: string; ruri?: string; toTag?: string } = {}): string {
  const method = opts.method ?? 'INVITE';
  const body = 'v=0\r\n';
  return [
    `${method} ${opts.ruri ?? `sip:100@127.0.0.1:${gw.port}`} SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:${ua.address('udp').port};branch=z9hG4bKfz${n};rport`,
    'Max-Forwards: 70',
    'From: <sip:fuzz@127.0.0.1>;tag=f1',
    `To: <sip:100@127.0.0.1>${opts.toTag ? `;tag=${opts.toTag}` : ''}`,
    `Call-ID: fuzz-${n}@x`,
    `CSeq: 1 ${method}`,
    ...extra,
    `Content-Length: ${body.length}`,
    '',
    body,
  ].join('\r\n');
}

describe('proxy under hostile input', () => {
  it('mutated requests never fault the gateway, which keeps answering', async () => {
    let n = 0;
    const headerName = fc.constantFrom('Route', 'Record-Route', 'Via', 'To', 'From', 'CSeq', 'Max-Forwards', 'Contact',
      'P-Accountcode', 'Proxy-Require', 'Content-Length', 'Call-ID', 'v', 'l', 'i', 't', 'X-A2B-Callref');
    const value = fc.oneof(
      fc.string({ maxLength: 60 }),
      fc.constantFrom('<sip:127.0.0.1;lr>', `<sip:127.0.0.1:${0};lr;ftag=f1;sig=AAAA>`, '<sip:;lr>', '<', '>', ',,,', '"', 'sip:a@b;x=', '1 INVITE',
        '-1', '999999999999', 'SIP/2.0/UDP [::1', 'SIP/2.0/TCP 1.2.3.4;branch=z9hG4bK;rport=99999', '*'),
    );
    await fc.assert(fc.asyncProperty(
      fc.array(fc.tuple(headerName, value), { maxLength: 4 }),
      fc.constantFrom('INVITE', 'BYE', 'ACK', 'CANCEL', 'OPTIONS', 'UPDATE', 'X'),
      fc.option(fc.string({ minLength: 1, maxLength: 8 }), { nil: undefined }),
      fc.constantFrom(`sip:100@127.0.0.1:${gw.port}`, `sip:127.0.0.1:${gw.port};lr;ftag=f1`, 'sip:@', 'tel:1', 'sip:100@[::1', `sip:%00@127.0.0.1:${gw.port}`),
      fc.nat({ max: 40 }),
      async (extra, method, toTag, ruri, cut) => {
        n++;
        let text = invite(n, extra.map(([k, v]) => `${k}: ${v}`), { method, ruri, toTag });
        if (cut > 30) text = text.slice(0, text.length - cut); // truncated datagrams too
        ua.sendRaw(text, gw);
        if (n % 25 === 0) await sleep(5);
      },
    ), { numRuns: 400 });
    await sleep(300);
    const r = ua.request('OPTIONS', { to: `sip:127.0.0.1:${gw.port}`, via: gw });
    expect((await r.final()).status).toBe(200);
    expect(errors).toEqual([]);
    // the sink does capture what the gateway logs at error level
    log.error('sink check');
    expect(errors).toHaveLength(1);
  });
});
