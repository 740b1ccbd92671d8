// Overload control over real sockets: the queue probe's datagrams go through the SIP listener without being
// taken for SIP, and while the admission control refuses new calls they get 503 + Retry-After at once while a
// call already up is still relayed (its BYE ends the billed time). Overload is forced through the control's own
// input (observe) so the test does not depend on how fast this machine is; the probe itself is measured in
// test/unit/sip/queue-probe.test.ts and the figures under real overload in bench/RESULTS.md item 17.
import { afterEach, describe, expect, it } from 'vitest';
import { SipUa } from '../helpers/sip-ua.js';
import { startCallee, startGateway, sleep, type Gateway } from './proxy-harness.js';

describe('proxy: overload control', () => {
  const closers: Array<() => Promise<void>> = [];
  afterEach(async () => {
    while (closers.length) await closers.pop()!();
  });

  async function setup(overload: Record<string, unknown>): Promise<{ gw: Gateway; caller: SipUa; callee: SipUa }> {
    const c = await startCallee({ behaviour: { kind: 'answer' } });
    const gw = await startGateway({ targets: [c.target], sip: { overload } });
    const caller = await SipUa.start({ name: 'alice' });
    closers.push(() => c.ua.close(), () => gw.proxy.stop(), () => caller.close());
    return { gw, caller, callee: c.ua };
  }

  it('measures the UDP receive queue with probes the SIP path never sees', async () => {
    const { gw, caller } = await setup({ probeIntervalMs: 20 });
    const adm = gw.proxy.overload!;
    const seen: number[] = [];
    const observe = adm.observe.bind(adm);
    adm.observe = (ms: number): void => { seen.push(ms); observe(ms); };
    await sleep(200);
    expect(seen.length).toBeGreaterThanOrEqual(3);
    expect(Math.min(...seen)).toBeLessThan(50);
    expect(adm.state().admitShare).toBe(1);
    // and calls go through as usual
    const ok = await caller.invite({ to: gw.ruri('100'), via: gw.udp }).final();
    expect(ok.status).toBe(200);
  });

  it('answers new INVITEs 503 + Retry-After while overloaded, keeps relaying the calls already up, and recovers', async () => {
    // one probe a second: the forced state below is not undone by real measurements during the test
    const { gw, caller, callee } = await setup({ targetDelayMs: 100, probeIntervalMs: 1000, retryAfterSec: 7 });
    const adm = gw.proxy.overload!;
    const up = caller.invite({ to: gw.ruri('100'), via: gw.udp });
    expect((await up.final()).status).toBe(200);
    up.ack();
    await callee.waitRequest('ACK');

    for (let i = 0; i < 20; i++) adm.observe(5000);
    expect(adm.state().admitShare).toBe(0);
    const refused = caller.invite({ to: gw.ruri('101'), via: gw.udp });
    const r = await refused.final();
    expect([r.status, r.reason, r.header('retry-after')]).toEqual([503, 'Service Unavailable', '7']);
    expect(refused.responses.some((x) => x.status === 100)).toBe(false); // refused before any work
    expect(callee.requests('INVITE').map((m) => m.callId)).not.toContain(refused.callId);
    expect(adm.state().rejected).toBe(1);
    // Stateless: no server transaction kept for a refused INVITE, and the 503 is not retransmitted (T1 is 100 ms here).
    expect(r.toTag).toMatch(/^sl[0-9a-f]{6}-/);
    await sleep(400);
    expect(refused.responses.filter((x) => x.status === 503)).toHaveLength(1);

    // the call already up still hangs up through us
    const bye = await up.dialog!.request('BYE').final();
    expect(bye.status).toBe(200);
    expect((await callee.waitRequest('BYE')).callId).toBe(up.callId);

    // the queue drained: the share comes back and new calls are taken on again
    for (let i = 0; i < 20; i++) adm.observe(1);
    expect(adm.state().admitShare).toBe(1);
    const again = await caller.invite({ to: gw.ruri('102'), via: gw.udp }).final();
    expect(again.status).toBe(200);
  });
});
