// The dispatcher behind the real proxy over real UDP sockets: its route/targetFailed/onCallEvent hooks drive
// serial failover, and the proxy's own OPTIONS sender drives the probe state machine.
import { createSocket } from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { Dispatcher } from '../../src/dispatch/dispatcher.js';
import type { DispatcherRow } from '../../src/dispatch/destination.js';
import { Prober } from '../../src/dispatch/prober.js';
import { configSchema, type Config } from '../../src/config/schema.js';
import { silentLogger } from '../../src/log.js';
import { SipUa } from '../helpers/sip-ua.js';
import { startCallee, startGateway, sleep } from '../e2e/proxy-harness.js';

const rowFor = (id: number, port: number, over: Partial<DispatcherRow> = {}): DispatcherRow =>
  ({ id, setid: 1, destination: `sip:127.0.0.1:${port};transport=udp`, state: 0, weight: 1, priority: 0, attrs: '', description: '', ...over });

/** A UDP port with nothing behind it (bound then closed). */
async function deadUdpPort(): Promise<number> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await sleep(20);
  }
}

describe('dispatcher with the real proxy', () => {
  const closers: Array<() => Promise<void> | void> = [];
  afterEach(async () => { while (closers.length) await closers.pop()!(); });

  function dispatcher(over: Partial<Config['dispatch']> = {}): Dispatcher {
    return new Dispatcher({ config: { ...configSchema.parse({}).dispatch, ...over }, log: silentLogger() });
  }

  it('fails over from a box answering 503 to the next one, demotes the first, and counts the call until BYE', async () => {
    const busy = await startCallee({ name: 'ast-busy', behaviour: { kind: 'reject', status: 503, reason: 'Service Unavailable' } });
    const good = await startCallee({ name: 'ast-good', behaviour: { kind: 'answer', ringMs: 10 } });
    const d = dispatcher({ defaultAlgorithm: 'priority' });
    d.load([rowFor(1, busy.ua.address('udp').port, { priority: 10 }), rowFor(2, good.ua.address('udp').port, { priority: 5 })]);
    const gw = await startGateway({ hooks: d.hooks() });
    const caller = await SipUa.start({ name: 'alice' });
    closers.push(() => busy.ua.close(), () => good.ua.close(), () => gw.proxy.stop(), () => caller.close());

    const call = caller.invite({ to: gw.ruri('100'), via: gw.udp });
    expect((await call.final()).status).toBe(200);
    expect(busy.ua.requests('INVITE')).toHaveLength(1);
    expect(good.ua.requests('INVITE')).toHaveLength(1);
    expect(d.get('1')).toMatchObject({ state: 'probing', failures: 1, lastFailure: 'status 503', activeCalls: 0 });
    expect(d.get('2')).toMatchObject({ state: 'active', activeCalls: 1 });
    // the next call goes to the healthy box first
    expect(d.select(1, { callId: 'next', fromUser: 'u' }).map((t) => t.id)).toEqual(['2', '1']);

    call.ack();
    expect((await call.dialog!.request('BYE').final()).status).toBe(200);
    await until(() => d.get('2')!.activeCalls === 0);
    expect(d.trackedCalls()).toBe(0);
  });

  it('answers 503 with Retry-After itself when every destination is out', async () => {
    const d = dispatcher({ retryAfterSec: 45 });
    d.load([rowFor(1, 5060, { state: 3 })]);
    const gw = await startGateway({ hooks: d.hooks() });
    const caller = await SipUa.start({ name: 'alice' });
    closers.push(() => gw.proxy.stop(), () => caller.close());
    const res = await caller.invite({ to: gw.ruri('100'), via: gw.udp }).final();
    expect(res.status).toBe(503);
    expect(res.header('retry-after')).toBe('45');
  });

  it('probes with real OPTIONS: a dead box goes inactive, a demoted live box comes back', async () => {
    const live = await startCallee({ name: 'ast-live' });
    const deadPort = await deadUdpPort();
    const d = dispatcher({ probeFailThreshold: 2, probeOkThreshold: 1 });
    d.load([rowFor(1, live.ua.address('udp').port), rowFor(2, deadPort)]);
    d.targetFailed(d.select(1, { callId: 'x', fromUser: 'u' }).find((t) => t.id === '1')!, { kind: 'timeout' });
    expect(d.get('1')!.state).toBe('probing');
    const gw = await startGateway({ hooks: d.hooks() });
    const prober = new Prober({ dispatcher: d, probe: gw.proxy.actions.probe, intervalMs: 150, timeoutMs: 250, log: silentLogger() });
    closers.push(() => live.ua.close(), () => gw.proxy.stop(), () => prober.stop());
    prober.start();
    await until(() => d.get('1')!.state === 'active' && d.get('2')!.state === 'inactive');
    expect(live.ua.requests('OPTIONS').length).toBeGreaterThanOrEqual(1);
    expect(d.get('1')!.lastProbeStatus).toBe(200);
    expect(d.get('2')).toMatchObject({ lastProbeStatus: 0 });
    expect(d.select(1, { callId: 'y', fromUser: 'u' }).map((t) => t.id)).toEqual(['1']);
  });
});
