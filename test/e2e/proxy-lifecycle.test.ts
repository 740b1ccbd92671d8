// Gateway lifecycle and metrics over real sockets: counters after a call, stop() while a call rings
// (503 upstream, CANCEL downstream, sockets released).
import { createSocket } from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { createMetrics } from '../../src/metrics.js';
import { configSchema } from '../../src/config/schema.js';
import { silentLogger } from '../../src/log.js';
import { createProxy } from '../../src/proxy/proxy.js';
import { staticHooks } from '../../src/proxy/testing.js';
import { SipUa } from '../helpers/sip-ua.js';
import { startCallee, startGateway } from './proxy-harness.js';

describe('proxy lifecycle', () => {
  const closers: Array<() => Promise<void>> = [];
  afterEach(async () => {
    while (closers.length) await closers.pop()!();
  });

  it('counts requests, responses and calls in the shared metrics registry', async () => {
    const c = await startCallee({ behaviour: { kind: 'answer', ringMs: 5 } });
    const metrics = createMetrics();
    const sip = configSchema.parse({ sip: { listen: [{ proto: 'udp', host: '127.0.0.1', port: 0 }] } }).sip;
    const proxy = createProxy({ config: sip, log: silentLogger(), hooks: staticHooks({ targets: [c.target] }), metrics });
    await proxy.start();
    const caller = await SipUa.start({ name: 'alice' });
    closers.push(() => c.ua.close(), () => proxy.stop(), () => caller.close());
    const gw = { host: '127.0.0.1', port: proxy.address('udp').port, proto: 'udp' as const };
    const call = caller.invite({ to: `sip:100@127.0.0.1:${gw.port}`, via: gw });
    expect((await call.final()).status).toBe(200);
    call.ack();
    expect((await call.dialog!.request('BYE').final()).status).toBe(200);
    const text = await metrics.text();
    expect(text).toMatch(/a2b_sip_requests_total\{method="INVITE"\} 1/);
    expect(text).toMatch(/a2b_sip_requests_total\{method="BYE"\} 1/);
    expect(text).not.toMatch(/a2b_sip_responses_total\{code="100"/); // the callee rang first: no 100 of ours
    expect(text).toMatch(/a2b_sip_responses_total\{code="200",origin="relayed"\} 2/);
    expect(text).toMatch(/a2b_calls_total\{event="started"\} 1/);
    expect(text).toMatch(/a2b_calls_total\{event="answered"\} 1/);
    expect(text).toMatch(/a2b_calls_active 0/);
  });

  it('stop() answers a ringing call 503, CANCELs the branch and releases its ports', async () => {
    const c = await startCallee({ behaviour: { kind: 'ring' } });
    const gw = await startGateway({ targets: [c.target] });
    const caller = await SipUa.start({ name: 'alice' });
    closers.push(() => c.ua.close(), () => caller.close());
    const call = caller.invite({ to: gw.ruri('100'), via: gw.udp });
    await call.status(180);
    await gw.proxy.stop();
    expect((await call.final()).status).toBe(503);
    await c.ua.waitRequest('CANCEL');
    // the UDP port is free again
    const sock = createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      sock.bind(gw.udp.port, '127.0.0.1', () => resolve());
    });
    await new Promise<void>((r) => sock.close(() => r()));
  });
});
