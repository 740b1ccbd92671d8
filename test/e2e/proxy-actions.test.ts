// ProxyActions over real sockets: endDialog (BYE both sides from a JSON snapshot, also from a fresh gateway
// as after a restart) and probe (OPTIONS → status, 0 on silence or transport error).
import { afterEach, describe, expect, it } from 'vitest';
import type { DialogInfo } from '../../src/proxy/hooks.js';
import { targetOf } from '../../src/proxy/testing.js';
import { SipUa } from '../helpers/sip-ua.js';
import { startCallee, startGateway } from './proxy-harness.js';

describe('proxy actions', () => {
  const closers: Array<() => Promise<void>> = [];
  afterEach(async () => {
    while (closers.length) await closers.pop()!();
  });

  for (const proto of ['udp', 'tcp'] as const) {
    it(`endDialog sends BYE to both sides from the answered snapshot (callee over ${proto}), even from a restarted gateway`, async () => {
      const c = await startCallee({ proto, behaviour: { kind: 'answer', ringMs: 5 } });
      const gw = await startGateway({ targets: [c.target] });
      const caller = await SipUa.start({ name: 'alice' });
      closers.push(() => c.ua.close(), () => gw.proxy.stop(), () => caller.close());
      const call = caller.invite({ to: gw.ruri('100'), via: gw.udp });
      expect((await call.final()).status).toBe(200);
      call.ack();
      await c.ua.waitRequest('ACK');
      const answered = gw.hooks.events.find((e) => e.type === 'answered');
      if (answered?.type !== 'answered') throw new Error('no answered event');
      // persisted and read back, handed to a gateway that never saw the call
      const snapshot = JSON.parse(JSON.stringify(answered.dialog)) as DialogInfo;
      await gw.proxy.stop();
      const gw2 = await startGateway({ targets: [] });
      closers.push(() => gw2.proxy.stop());
      await gw2.proxy.actions.endDialog(snapshot, 'max-duration');

      const byeCallee = await c.ua.waitRequest('BYE');
      const byeCaller = await caller.waitRequest('BYE');
      expect(byeCallee.source.proto).toBe(proto);
      expect(byeCallee.callId).toBe(call.callId);
      expect(byeCallee.fromTag).toBe(snapshot.callerTag);
      expect(byeCallee.toTag).toBe(snapshot.calleeTag);
      expect(byeCallee.cseq).toEqual({ seq: snapshot.callerCseq + 1, method: 'BYE' });
      expect(byeCaller.fromTag).toBe(snapshot.calleeTag);
      expect(byeCaller.toTag).toBe(snapshot.callerTag);
      expect(byeCaller.uri).toBe(caller.contactUri());
      expect(byeCallee.header('reason')).toContain('max-duration');
      // both dialogs are gone at the UAs (each answered its BYE with 200)
      expect(c.ua.dialogs[0]!.ended.by).toBe('remote');
      expect(caller.dialogs[0]!.ended.by).toBe('remote');
      // the dialog stage that asked for the BYEs reports `ended` itself (NOTES-dialog.md): nothing from the proxy
      expect(gw2.hooks.events).toEqual([]);
    });
  }

  it('endDialog follows the route set of a proxy before us towards the caller', async () => {
    const c = await startCallee({ behaviour: { kind: 'answer' } });
    const gw = await startGateway({ targets: [c.target] });
    const caller = await SipUa.start({ name: 'alice' });
    closers.push(() => c.ua.close(), () => gw.proxy.stop(), () => caller.close());
    // an "upstream proxy" record-routed the INVITE (it is the caller's own UDP address here)
    const upstream = `<sip:127.0.0.1:${caller.address('udp').port};lr;upstream=1>`;
    const call = caller.invite({ to: gw.ruri('100'), via: gw.udp, headers: [['Record-Route', upstream]] });
    expect((await call.final()).status).toBe(200);
    const answered = gw.hooks.events.find((e) => e.type === 'answered');
    if (answered?.type !== 'answered') throw new Error('no answered event');
    expect(answered.dialog.callerRouteSet).toEqual([upstream]);
    expect(answered.dialog.calleeRouteSet).toEqual([]);
    expect(answered.dialog.callerHop).toEqual({ ip: '127.0.0.1', port: caller.address('udp').port, proto: 'udp' });
    await gw.proxy.actions.endDialog(answered.dialog, 'admin');
    const bye = await caller.waitRequest('BYE');
    expect(bye.headerValues('route')).toEqual([upstream]);
    expect(bye.uri).toBe(caller.contactUri());
    expect((await c.ua.waitRequest('BYE')).headerValues('route')).toEqual([]);
  });

  it('probe resolves with the status, and 0 on silence or a refused TCP connection', async () => {
    const up = await startCallee({ behaviour: { kind: 'answer' } });
    const dead = await startCallee({ behaviour: { kind: 'silent' } });
    const gw = await startGateway();
    closers.push(() => up.ua.close(), () => dead.ua.close(), () => gw.proxy.stop());
    expect(await gw.proxy.actions.probe(up.target, 1000)).toBe(200);
    const opt = await up.ua.waitRequest('OPTIONS');
    expect(opt.uri).toBe(up.target.uri);
    expect(opt.headerValues('via')).toHaveLength(1);
    const t0 = Date.now();
    expect(await gw.proxy.actions.probe(dead.target, 300)).toBe(0);
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(dead.ua.requests('OPTIONS').length).toBeGreaterThanOrEqual(1);
    expect(await gw.proxy.actions.probe(targetOf('closed', '127.0.0.1', 9, 'tcp'), 1000)).toBe(0);
    expect(await gw.proxy.actions.probe({ ...up.target, proto: 'tcp', port: up.ua.address('tcp').port, uri: up.ua.uri(undefined, 'tcp') }, 1000)).toBe(200);
  });
});
