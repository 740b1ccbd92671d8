// Transaction behaviour through the gateway over real sockets: CANCEL (and its race with 200),
// retransmission absorption, Timer C, serial failover, UDP→TCP with double Record-Route.
import { afterEach, describe, expect, it } from 'vitest';
import { SipUa } from '../helpers/sip-ua.js';
import { startCallee, startGateway, sleep } from './proxy-harness.js';

describe('proxy: transactions', () => {
  const closers: Array<() => Promise<void>> = [];
  afterEach(async () => {
    while (closers.length) await closers.pop()!();
  });
  const track = <T extends { close(): Promise<void> } | { stop(): Promise<void> }>(x: T): T => {
    closers.push(() => ('close' in x ? x.close() : x.stop()));
    return x;
  };

  it('answers CANCEL with 200, cancels the ringing branch and relays its 487', async () => {
    const c = await startCallee({ behaviour: { kind: 'ring' } });
    track(c.ua);
    const gw = await startGateway({ targets: [c.target] });
    track(gw.proxy);
    const caller = track(await SipUa.start({ name: 'alice' }));
    const call = caller.invite({ to: gw.ruri('100'), via: gw.udp });
    await call.status(180);
    const cancel = call.cancel();
    expect((await cancel.final()).status).toBe(200);
    expect((await call.final()).status).toBe(487);
    const down = await c.ua.waitRequest('CANCEL');
    const inv = c.ua.requests('INVITE')[0]!;
    expect(down.topBranch).toBe(inv.topBranch); // the CANCEL uses the branch of the INVITE it cancels
    expect(down.uri).toBe(inv.uri);
    // the callee's 487 was ACKed hop by hop with the INVITE's branch; the caller's ACK stayed with us
    const ack = await c.ua.waitRequest('ACK');
    expect(ack.topBranch).toBe(inv.topBranch);
    expect(ack.headerValues('via')).toHaveLength(1);
    await sleep(50);
    expect(c.ua.requests('ACK')).toHaveLength(1);
    const failed = gw.hooks.events.find((e) => e.type === 'failed');
    expect(failed && failed.type === 'failed' && [failed.status, failed.cancelled]).toEqual([487, true]);
    expect(gw.hooks.events.some((e) => e.type === 'transaction')).toBe(true);
  });

  it('CANCEL racing the 200: the caller gets 200 for the CANCEL and a usable 2xx or a 487, never both', async () => {
    const c = await startCallee({ behaviour: { kind: 'answer', ringMs: 40 } });
    track(c.ua);
    const gw = await startGateway({ targets: [c.target] });
    track(gw.proxy);
    const caller = track(await SipUa.start({ name: 'alice' }));
    const call = caller.invite({ to: gw.ruri('100'), via: gw.udp });
    await call.status(180);
    await sleep(38);
    const cancel = call.cancel();
    expect([200, 481]).toContain((await cancel.final()).status);
    const fin = await call.final();
    expect([200, 487]).toContain(fin.status);
    if (fin.status === 200) {
      call.ack();
      expect((await call.dialog!.request('BYE').final()).status).toBe(200);
    }
    await sleep(50);
    const finals = call.responses.filter((r) => r.status >= 200).map((r) => r.status);
    expect(new Set(finals).size).toBe(1);
  });

  it('CANCEL crossing the callee\'s 200: the 2xx still reaches the caller, who ACKs and hangs up', async () => {
    const c = await startCallee({ behaviour: { kind: 'answer', ringMs: 60, crossCancel: true } });
    track(c.ua);
    const gw = await startGateway({ targets: [c.target] });
    track(gw.proxy);
    const caller = track(await SipUa.start({ name: 'alice' }));
    const call = caller.invite({ to: gw.ruri('100'), via: gw.udp });
    await call.status(180);
    expect((await call.cancel().final()).status).toBe(200);
    await c.ua.waitRequest('CANCEL'); // the gateway propagated it
    const fin = await call.final();
    expect(fin.status).toBe(200); // 2xx always go upstream (RFC 3261 §16.7)
    call.ack();
    await c.ua.waitRequest('ACK');
    expect((await call.dialog!.request('BYE').final()).status).toBe(200);
    expect(call.responses.some((r) => r.status === 487)).toBe(false);
    expect(gw.hooks.events.map((e) => e.type)).toEqual(['start', 'transaction', 'answered', 'in-dialog', 'in-dialog', 'ended']);
  });

  it('CANCEL after the caller already has its 200: answered, the call goes on', async () => {
    const c = await startCallee({ behaviour: { kind: 'answer', ringMs: 5 } });
    track(c.ua);
    const gw = await startGateway({ targets: [c.target] });
    track(gw.proxy);
    const caller = track(await SipUa.start({ name: 'alice' }));
    const call = caller.invite({ to: gw.ruri('100'), via: gw.udp });
    expect((await call.final()).status).toBe(200);
    expect([200, 481]).toContain((await call.cancel().final()).status);
    call.ack();
    expect((await call.dialog!.request('BYE').final()).status).toBe(200);
    expect(c.ua.requests('CANCEL')).toEqual([]);
  });

  it('relays the callee\'s 2xx retransmissions until the caller ACKs', async () => {
    const c = await startCallee({ behaviour: { kind: 'answer' }, t1Ms: 40 });
    track(c.ua);
    const gw = await startGateway({ targets: [c.target] });
    track(gw.proxy);
    const caller = track(await SipUa.start({ name: 'alice' }));
    const call = caller.invite({ to: gw.ruri('100'), via: gw.udp });
    expect((await call.final()).status).toBe(200);
    await sleep(200); // no ACK yet: the callee retransmits its 200 (40, 80 ms ...)
    const oks = call.responses.filter((r) => r.status === 200);
    expect(oks.length).toBeGreaterThanOrEqual(2);
    expect(new Set(oks.map((r) => r.toTag)).size).toBe(1);
    call.ack();
    await c.ua.waitRequest('ACK');
    const after = call.responses.length;
    await sleep(150);
    expect(call.responses.length).toBe(after);
  });

  it('absorbs a retransmitted INVITE: the callee sees one', async () => {
    const c = await startCallee({ behaviour: { kind: 'answer', ringMs: 150 } });
    track(c.ua);
    const gw = await startGateway({ targets: [c.target] });
    track(gw.proxy);
    const caller = track(await SipUa.start({ name: 'alice' }));
    const call = caller.invite({ to: gw.ruri('100'), via: gw.udp });
    await call.status(180);
    call.retransmit();
    call.retransmit();
    expect((await call.final()).status).toBe(200);
    call.ack();
    await c.ua.waitRequest('ACK');
    expect(c.ua.requests('INVITE')).toHaveLength(1);
    // the retransmissions were answered with the last provisional
    expect(call.responses.filter((r) => r.status === 180).length).toBeGreaterThanOrEqual(2);
  });

  it('answers 408 when the callee rings past the INVITE timeout, and cancels the branch', async () => {
    const c = await startCallee({ behaviour: { kind: 'ring' } });
    track(c.ua);
    const gw = await startGateway({ targets: [c.target], sip: { inviteTimeoutMs: 300 } });
    track(gw.proxy);
    const caller = track(await SipUa.start({ name: 'alice' }));
    const t0 = Date.now();
    const call = caller.invite({ to: gw.ruri('100'), via: gw.udp });
    const fin = await call.final();
    expect(fin.status).toBe(408);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(280);
    await c.ua.waitRequest('CANCEL');
    await sleep(50);
    // the callee's 487 is not relayed on top of our 408
    expect(call.responses.filter((r) => r.status >= 200).map((r) => r.status)).toEqual([408]);
    const failed = gw.hooks.events.find((e) => e.type === 'failed');
    expect(failed && failed.type === 'failed' && failed.status).toBe(408);
  });

  it('switches UDP → TCP with a double Record-Route, and in-dialog requests cross back both ways', async () => {
    const c = await startCallee({ proto: 'tcp', behaviour: { kind: 'answer', ringMs: 10 } });
    track(c.ua);
    const gw = await startGateway({ targets: [c.target] });
    track(gw.proxy);
    const caller = track(await SipUa.start({ name: 'alice' }));
    const call = caller.invite({ to: gw.ruri('100'), via: gw.udp });
    expect((await call.final()).status).toBe(200);
    const inv = c.ua.requests('INVITE')[0]!;
    expect(inv.source.proto).toBe('tcp');
    expect(inv.headerValues('via')[0]).toMatch(/^SIP\/2\.0\/TCP /);
    const rr = inv.headerValues('record-route');
    expect(rr).toHaveLength(2);
    expect(rr[0]).toMatch(new RegExp(`^<sip:127\\.0\\.0\\.1:${gw.tcp.port};transport=tcp;lr;ftag=[^;>]+;r2=on;sig=[\\w-]{22}>$`));
    expect(rr[1]).toMatch(new RegExp(`^<sip:127\\.0\\.0\\.1:${gw.udp.port};lr;ftag=[^;>]+;r2=on;sig=[\\w-]{22}>$`));
    call.ack();
    const ack = await c.ua.waitRequest('ACK');
    expect(ack.source.proto).toBe('tcp');
    expect(ack.headerValues('route')).toEqual([]);
    // BYE from the callee goes TCP → gateway → UDP caller
    const d = await c.ua.waitDialog(call.callId);
    expect(d.nextHop()).toEqual({ host: '127.0.0.1', port: gw.tcp.port, proto: 'tcp' });
    expect((await d.request('BYE').final()).status).toBe(200);
    const bye = await caller.waitRequest('BYE');
    expect(bye.source.proto).toBe('udp');
    expect(bye.headerValues('route')).toEqual([]);
  });

  it('fails over to the second target on 503, with a new branch', async () => {
    const a = await startCallee({ id: 'box-a', behaviour: { kind: 'reject', status: 503, reason: 'Service Unavailable' } });
    const b = await startCallee({ id: 'box-b', behaviour: { kind: 'answer', ringMs: 10 } });
    track(a.ua);
    track(b.ua);
    const gw = await startGateway({ targets: [a.target, b.target] });
    track(gw.proxy);
    const caller = track(await SipUa.start({ name: 'alice' }));
    const call = caller.invite({ to: gw.ruri('100'), via: gw.udp });
    expect((await call.final()).status).toBe(200);
    expect(call.responses.some((r) => r.status === 503)).toBe(false);
    const ia = a.ua.requests('INVITE')[0]!;
    const ib = b.ua.requests('INVITE')[0]!;
    expect(ib.topBranch).not.toBe(ia.topBranch);
    expect(await a.ua.waitRequest('ACK')).toBeDefined(); // 503 ACKed hop by hop
    expect(gw.hooks.failures).toEqual([{ target: a.target, failure: { kind: 'status', status: 503 } }]);
    expect(gw.hooks.events.map((e) => e.type)).toEqual(['start', 'attempt-failed', 'answered']);
    call.ack();
  });

  it('fails over when the first target does not answer at all, and relays a final 486 without retrying', async () => {
    const a = await startCallee({ id: 'dead', behaviour: { kind: 'silent' } });
    const b = await startCallee({ id: 'busy', behaviour: { kind: 'reject', status: 486, reason: 'Busy Here' } });
    const c = await startCallee({ id: 'never', behaviour: { kind: 'answer' } });
    for (const x of [a, b, c]) track(x.ua);
    const gw = await startGateway({ targets: [a.target, b.target, c.target], sip: { noResponseTimeoutMs: 250 } });
    track(gw.proxy);
    const caller = track(await SipUa.start({ name: 'alice' }));
    const call = caller.invite({ to: gw.ruri('100'), via: gw.udp });
    const fin = await call.final();
    expect(fin.status).toBe(486);
    expect(a.ua.requests('INVITE').length).toBeGreaterThanOrEqual(1); // retransmitted over UDP, then given up
    expect(c.ua.requests('INVITE')).toHaveLength(0);
    expect(gw.hooks.failures.map((f) => [f.target.id, f.failure.kind])).toEqual([['dead', 'timeout']]);
  });

  it('a box that answers 200 after we failed over is ACKed and hung up; the caller only sees the other box', async () => {
    const a = await startCallee({ id: 'slow', behaviour: { kind: 'answer', delayMs: 450 } });
    const b = await startCallee({ id: 'fast', behaviour: { kind: 'answer', ringMs: 5 } });
    track(a.ua);
    track(b.ua);
    const gw = await startGateway({ targets: [a.target, b.target], sip: { noResponseTimeoutMs: 200 } });
    track(gw.proxy);
    const caller = track(await SipUa.start({ name: 'alice' }));
    const call = caller.invite({ to: gw.ruri('100'), via: gw.udp });
    const ok = await call.final();
    expect(ok.status).toBe(200);
    call.ack();
    const inviteA = a.ua.requests('INVITE')[0]!;
    const ack = await a.ua.waitRequest('ACK', 3000);
    const bye = await a.ua.waitRequest('BYE', 3000);
    expect(ack.callId).toBe(inviteA.callId);
    expect(bye.header('reason')).toContain('answered after failover');
    expect(a.ua.dialogs[0]!.ended.by).toBe('remote');
    await sleep(100);
    const oks = call.responses.filter((r) => r.status === 200);
    expect(new Set(oks.map((r) => r.toTag))).toEqual(new Set([ok.toTag]));
    expect(b.ua.requests('BYE')).toEqual([]);
  });

  it('answers 503 with Retry-After when every target failed', async () => {
    const a = await startCallee({ id: 'a', behaviour: { kind: 'reject', status: 500, reason: 'Oops' } });
    track(a.ua);
    // the second target is a closed TCP port: transport error
    const gw = await startGateway({ targets: [a.target, { id: 'closed', uri: 'sip:127.0.0.1:9;transport=tcp', host: '127.0.0.1', port: 9, proto: 'tcp' }] });
    track(gw.proxy);
    const caller = track(await SipUa.start({ name: 'alice' }));
    const fin = await caller.invite({ to: gw.ruri('100'), via: gw.udp }).final();
    expect(fin.status).toBe(503);
    expect(fin.header('retry-after')).toBe('30');
    expect(gw.hooks.failures.map((f) => f.failure.kind)).toEqual(['status', 'transport']);
  });
});
