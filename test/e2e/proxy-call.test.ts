// A call through the gateway over real UDP sockets: INVITE, 180, 200, ACK, BYE from either side, re-INVITE.
import { afterEach, describe, expect, it } from 'vitest';
import { callRef } from '../../src/proxy/callref.js';
import { SipUa } from '../helpers/sip-ua.js';
import { startCallee, startGateway, sleep, type Gateway } from './proxy-harness.js';

describe('proxy: a full call over UDP', () => {
  const closers: Array<() => Promise<void>> = [];
  afterEach(async () => {
    while (closers.length) await closers.pop()!();
  });

  async function setup(): Promise<{ gw: Gateway; caller: SipUa; callee: SipUa }> {
    const c = await startCallee({ behaviour: { kind: 'answer', ringMs: 30 } });
    const gw = await startGateway({ targets: [c.target] });
    const caller = await SipUa.start({ name: 'alice' });
    closers.push(() => c.ua.close(), () => gw.proxy.stop(), () => caller.close());
    return { gw, caller, callee: c.ua };
  }

  it('relays INVITE, 180, 200, ACK and a BYE from the caller, record-routing itself', async () => {
    const { gw, caller, callee } = await setup();
    const call = caller.invite({ to: gw.ruri('100'), via: gw.udp });
    const ok = await call.final();
    expect(ok.status).toBe(200);
    expect(call.responses.map((r) => r.status)).toContain(180);
    // The callee rang at once: no 100 Trying of ours was needed (it goes out only after T1/2 of silence).
    expect(call.responses.some((r) => r.status === 100)).toBe(false);

    const inv = callee.requests('INVITE')[0]!;
    expect(inv.uri).toMatch(/^sip:100@127\.0\.0\.1:\d+$/);
    expect(inv.headerValues('via')).toHaveLength(2);
    expect(inv.headerValues('via')[0]).toMatch(new RegExp(`^SIP/2\\.0/UDP 127\\.0\\.0\\.1:${gw.udp.port};branch=z9hG4bK`));
    expect(inv.header('max-forwards')).toBe('69');
    const rr = inv.headerValues('record-route');
    expect(rr).toHaveLength(1);
    expect(rr[0]).toMatch(new RegExp(`^<sip:127\\.0\\.0\\.1:${gw.udp.port};lr;ftag=${inv.fromTag};sig=[\\w-]{22}>$`));
    expect(inv.headerLines('p-accountcode')).toEqual(['4242424242']);
    expect(inv.header('x-a2b-callref')).toBe(callRef(call.callId));
    // the caller sees the Record-Route in the 2xx and builds its route set from it
    expect(ok.headerValues('record-route')).toEqual(rr);
    expect(ok.headerValues('via')).toHaveLength(1);

    call.ack();
    const ack = await callee.waitRequest('ACK');
    expect(ack.headerValues('route')).toEqual([]); // our Route was consumed
    expect(ack.uri).toBe(callee.contactUri());

    const bye = await call.dialog!.request('BYE').final();
    expect(bye.status).toBe(200);
    expect((await callee.waitRequest('BYE')).headerValues('via')).toHaveLength(2);

    const types = gw.hooks.events.map((e) => e.type);
    expect(types).toEqual(['start', 'answered', 'in-dialog', 'in-dialog', 'ended']);
    const ended = gw.hooks.events.at(-1)!;
    if (ended.type !== 'ended') throw new Error('expected ended');
    expect([ended.reason, ended.status, ended.statusReason]).toEqual(['bye-caller', 200, 'OK']);
    expect(ended.dialog?.callId).toBe(call.callId);
    expect(ended.dialog?.callerCseq).toBe(2); // the BYE's CSeq, bookkept from the in-dialog requests
    const answered = gw.hooks.events[1]!;
    if (answered.type !== 'answered') throw new Error('expected answered');
    expect(answered.dialog.callId).toBe(call.callId);
    expect(answered.dialog.calleeTag).toBe(ok.toTag);
    expect(answered.dialog.accountcode).toBe('4242424242');
    expect(JSON.parse(JSON.stringify(answered.dialog))).toEqual(answered.dialog);
  });

  it('sends its own 100 Trying when the callee is slow to answer (T1/2 of silence), once', async () => {
    const { gw, caller, callee } = await setup();
    callee.behaviour = { kind: 'answer', delayMs: 400, ringMs: 10 };
    const call = caller.invite({ to: gw.ruri('100'), via: gw.udp });
    expect((await call.final()).status).toBe(200);
    const statuses = call.responses.map((r) => r.status);
    expect(statuses.filter((s) => s === 100)).toHaveLength(1);
    expect(statuses.indexOf(100)).toBeLessThan(statuses.indexOf(180));
    call.ack();
  });

  it('after the call, transactions linger for their RFC timers but the proxy holds no forwarding or call', async () => {
    const c = await startCallee({ behaviour: { kind: 'answer', ringMs: 30 } });
    const gw = await startGateway({ targets: [c.target], sip: { t1Ms: 25, t4Ms: 1000 } }); // 64*T1 = 1.6 s, Timer K = T4
    const caller = await SipUa.start({ name: 'alice' });
    closers.push(() => c.ua.close(), () => gw.proxy.stop(), () => caller.close());
    const call = caller.invite({ to: gw.ruri('100'), via: gw.udp });
    expect((await call.final()).status).toBe(200);
    // answered: the INVITE's forwarding is settled at once (before, it lived for Timer L, 64*T1)
    expect(gw.proxy.state()).toMatchObject({ forwardings: 0, callsUp: 1, serverTransactions: 1, clientTransactions: 1 });
    call.ack();
    expect((await call.dialog!.request('BYE').final()).status).toBe(200);
    // INVITE (Timer L/M) and BYE (Timer J/K) transactions still absorb retransmissions; nothing else is kept
    expect(gw.proxy.state()).toMatchObject({ forwardings: 0, callsUp: 0, serverTransactions: 2 });
    await sleep(64 * 25 + 400);
    expect(gw.proxy.state()).toEqual({ forwardings: 0, callsUp: 0, serverTransactions: 0, clientTransactions: 0 });
  });

  it('sip.lingerMs shortens that lingering (Kamailio\'s wt_timer) without changing the call', async () => {
    const c = await startCallee({ behaviour: { kind: 'answer', ringMs: 30 } });
    const gw = await startGateway({ targets: [c.target], sip: { t1Ms: 500, t4Ms: 1000, lingerMs: 1000 } }); // 64*T1 would be 32 s
    const caller = await SipUa.start({ name: 'alice' });
    closers.push(() => c.ua.close(), () => gw.proxy.stop(), () => caller.close());
    const call = caller.invite({ to: gw.ruri('100'), via: gw.udp });
    expect((await call.final()).status).toBe(200);
    call.ack();
    expect((await call.dialog!.request('BYE').final()).status).toBe(200);
    expect(gw.proxy.state()).toMatchObject({ forwardings: 0, callsUp: 0, serverTransactions: 2 });
    await sleep(1000 + 400);
    expect(gw.proxy.state()).toEqual({ forwardings: 0, callsUp: 0, serverTransactions: 0, clientTransactions: 0 });
  });

  it('relays a BYE from the callee to the caller', async () => {
    const { gw, caller, callee } = await setup();
    const call = caller.invite({ to: gw.ruri('100'), via: gw.udp });
    expect((await call.final()).status).toBe(200);
    call.ack();
    await callee.waitRequest('ACK');
    const d = await callee.waitDialog(call.callId);
    const res = await d.request('BYE').final();
    expect(res.status).toBe(200);
    const bye = await caller.waitRequest('BYE');
    expect(bye.uri).toBe(caller.contactUri());
    expect(bye.headerValues('route')).toEqual([]);
    const ended = gw.hooks.events.find((e) => e.type === 'ended');
    expect(ended && ended.type === 'ended' && ended.reason).toBe('bye-callee');
  });

  it('relays a re-INVITE and its ACK inside the dialog', async () => {
    const { gw, caller, callee } = await setup();
    const call = caller.invite({ to: gw.ruri('100'), via: gw.udp });
    expect((await call.final()).status).toBe(200);
    call.ack();
    const re = call.dialog!.request('INVITE');
    const ok = await re.final();
    expect(ok.status).toBe(200);
    call.dialog!.ack(call.dialog!.localCseq);
    await sleep(50);
    const invites = callee.requests('INVITE');
    expect(invites).toHaveLength(2);
    expect(invites[1]!.toTag).not.toBe('');
    expect(callee.requests('ACK')).toHaveLength(2);
    // UPDATE and INFO go the same way
    expect((await call.dialog!.request('INFO').final()).status).toBe(200);
    expect(callee.requests('INFO')).toHaveLength(1);
  });
});
