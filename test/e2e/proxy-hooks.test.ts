// The script's use of the stage hooks (hooks.ts) over real sockets: screen, authenticate (challenge, reject,
// drop), authorize (reject, release), route (reject, no targets), faults in hooks, CANCEL while a hook waits,
// plus strict-router compatibility and TCP callers.
import { afterEach, describe, expect, it } from 'vitest';
import type { ProxyHooks } from '../../src/proxy/hooks.js';
import { SipUa } from '../helpers/sip-ua.js';
import { startCallee, startGateway, sleep, type Gateway } from './proxy-harness.js';

describe('proxy script: hooks', () => {
  const closers: Array<() => Promise<void>> = [];
  afterEach(async () => {
    while (closers.length) await closers.pop()!();
  });

  async function setup(hooks: Partial<ProxyHooks>, behaviour: Parameters<typeof startCallee>[0] = { behaviour: { kind: 'answer' } }): Promise<{ gw: Gateway; caller: SipUa; callee: SipUa }> {
    const c = await startCallee(behaviour);
    const gw = await startGateway({ targets: [c.target], hooks });
    const caller = await SipUa.start({ name: 'alice' });
    closers.push(() => c.ua.close(), () => gw.proxy.stop(), () => caller.close());
    return { gw, caller, callee: c.ua };
  }

  it('authenticate → challenge: 407 with the stage headers; the retry with credentials goes through, credentials stripped', async () => {
    const { gw, caller, callee } = await setup({
      authenticate: (f) => f.header('proxy-authorization').length === 0
        ? { kind: 'challenge', status: 407, headers: [['Proxy-Authenticate', 'Digest realm="a2b", nonce="n1", algorithm=SHA-256, qop="auth"']] }
        : { kind: 'ok', method: 'digest', accountcode: '4242424242', username: 'alice' },
    });
    const first = await caller.invite({ to: gw.ruri('100'), via: gw.udp }).final();
    expect(first.status).toBe(407);
    expect(first.header('proxy-authenticate')).toBe('Digest realm="a2b", nonce="n1", algorithm=SHA-256, qop="auth"');
    const again = caller.invite({ to: gw.ruri('100'), via: gw.udp, headers: [['Proxy-Authorization', 'Digest username="alice", response="x"']] });
    expect((await again.final()).status).toBe(200);
    const inv = callee.requests('INVITE')[0]!;
    expect(inv.headerLines('proxy-authorization')).toEqual([]);
    expect(callee.requests('INVITE')).toHaveLength(1);
    const start = gw.hooks.events.find((e) => e.type === 'start');
    expect(start?.type === 'start' && start.auth).toEqual({ method: 'digest', accountcode: '4242424242', username: 'alice', cardId: undefined });
  });

  it('authenticate → reject answers its status; drop answers nothing at all (not even 100)', async () => {
    let mode: 'reject' | 'drop' = 'reject';
    const { gw, caller } = await setup({
      authenticate: () => (mode === 'reject' ? { kind: 'reject', status: 403, reason: 'Card inactive' } : { kind: 'drop', reason: 'banned' }),
    });
    const r = await caller.invite({ to: gw.ruri('100'), via: gw.udp }).final();
    expect([r.status, r.reason]).toEqual([403, 'Card inactive']);
    mode = 'drop';
    const call = caller.invite({ to: gw.ruri('100'), via: gw.udp });
    await sleep(200);
    // a 100 went out before authentication (the request passed screening); then nothing
    expect(call.responses.filter((x) => x.status >= 200)).toEqual([]);
  });

  it('screen → drop: a scanner hears nothing, not even 100 or a 200 to OPTIONS; screen → reject answers', async () => {
    const { gw, caller } = await setup({
      screen: (f) => (f.userAgent === 'friendly-scanner' ? { kind: 'drop', reason: 'scanner' } : f.ruriUser === 'blocked' ? { kind: 'reject', status: 403, reason: 'Banned' } : { kind: 'pass' }),
    });
    const inv = caller.invite({ to: gw.ruri('100'), via: gw.udp, headers: [['User-Agent', 'friendly-scanner']] });
    const opt = caller.request('OPTIONS', { to: `sip:127.0.0.1:${gw.udp.port}`, via: gw.udp, headers: [['User-Agent', 'friendly-scanner']] });
    await sleep(200);
    expect(inv.responses).toEqual([]);
    expect(opt.responses).toEqual([]);
    const r = await caller.invite({ to: gw.ruri('blocked'), via: gw.udp }).final();
    expect([r.status, r.reason]).toEqual([403, 'Banned']);
  });

  it('authorize → reject answers its status and route is never asked; release runs when an answered call ends', async () => {
    let releases = 0;
    let routed = 0;
    let credit = false;
    const { gw, caller, callee } = await setup({
      authorize: () => (credit ? { kind: 'ok', maxDurationSec: 60, release: () => { releases++; } } : { kind: 'reject', status: 402, reason: 'No credit' }),
    });
    const baseRoute = gw.hooks.route;
    gw.hooks.route = (f, a) => { routed++; return baseRoute(f, a); };
    const r = await caller.invite({ to: gw.ruri('100'), via: gw.udp }).final();
    expect([r.status, r.reason]).toEqual([402, 'No credit']);
    expect(routed).toBe(0);
    credit = true;
    const call = caller.invite({ to: gw.ruri('100'), via: gw.udp });
    expect((await call.final()).status).toBe(200);
    call.ack();
    await callee.waitRequest('ACK');
    expect(releases).toBe(0);
    expect((await call.dialog!.request('BYE').final()).status).toBe(200);
    expect(releases).toBe(1);
    const answered = gw.hooks.events.find((e) => e.type === 'answered');
    const start = gw.hooks.events.filter((e) => e.type === 'start').at(-1);
    expect(answered?.type === 'answered' && answered.maxDurationSec).toBe(60);
    expect(start?.type === 'start' && start.maxDurationSec).toBe(60);
  });

  it('two calls that share a Call-ID are two calls: one BYE releases only its own call', async () => {
    const released: string[] = [];
    const { gw, caller, callee } = await setup({
      authorize: (f) => ({ kind: 'ok', release: () => { released.push(f.fromTag); } }),
    });
    const callId = `shared-${Date.now()}@test`;
    const first = caller.invite({ to: gw.ruri('100'), via: gw.udp, callId });
    expect((await first.final()).status).toBe(200);
    first.ack();
    const second = caller.invite({ to: gw.ruri('101'), via: gw.udp, callId });
    expect((await second.final()).status).toBe(200);
    second.ack();
    await callee.waitRequest('ACK');
    const firstTag = (await first.final()).fromTag;
    const secondTag = (await second.final()).fromTag;
    expect(firstTag).not.toBe(secondTag);
    expect((await first.dialog!.request('BYE').final()).status).toBe(200);
    expect(released).toEqual([firstTag]);
    const ended = gw.hooks.events.filter((e) => e.type === 'ended');
    expect(ended.map((e) => e.type === 'ended' && e.dialog?.callerTag)).toEqual([firstTag]);
    expect((await second.dialog!.request('BYE').final()).status).toBe(200);
    expect(released).toEqual([firstTag, secondTag]);
  });

  it('route → reject answers its status; no targets → 503 with Retry-After; release runs on failure', async () => {
    let releases = 0;
    let mode: 'reject' | 'empty' = 'reject';
    const { gw, caller } = await setup({
      authorize: () => ({ kind: 'ok', release: () => { releases++; } }),
      route: () => (mode === 'reject' ? { kind: 'reject', status: 404, reason: 'No route' } : { kind: 'targets', targets: [] }),
    });
    const r = await caller.invite({ to: gw.ruri('100'), via: gw.udp }).final();
    expect([r.status, r.reason]).toEqual([404, 'No route']);
    mode = 'empty';
    const r2 = await caller.invite({ to: gw.ruri('100'), via: gw.udp }).final();
    expect(r2.status).toBe(503);
    expect(r2.header('retry-after')).toBe('30');
    expect(releases).toBe(2);
  });

  it('a hook that throws gets 500, and the gateway keeps working', async () => {
    let boom = true;
    const { gw, caller } = await setup({
      authenticate: () => {
        if (boom) throw new Error('database exploded');
        return { kind: 'ok', method: 'ip', accountcode: '1' };
      },
      onCallEvent: () => { throw new Error('acc is broken'); },
    });
    const r = await caller.invite({ to: gw.ruri('100'), via: gw.udp }).final();
    expect(r.status).toBe(500);
    boom = false;
    expect((await caller.invite({ to: gw.ruri('100'), via: gw.udp }).final()).status).toBe(200);
  });

  it('CANCEL while authentication is still running: 487, nothing forwarded, release not leaked', async () => {
    let releases = 0;
    const { gw, caller, callee } = await setup({
      authenticate: async () => {
        await sleep(150);
        return { kind: 'ok', method: 'ip', accountcode: '1' };
      },
      authorize: () => ({ kind: 'ok', release: () => { releases++; } }),
    });
    const call = caller.invite({ to: gw.ruri('100'), via: gw.udp });
    await call.status(100);
    expect((await call.cancel().final()).status).toBe(200);
    expect((await call.final()).status).toBe(487);
    await sleep(250);
    expect(callee.requests('INVITE')).toEqual([]);
    expect(releases).toBe(1);
  });

  it('strict-router compatibility: a Request-URI holding our Record-Route is replaced by the last Route', async () => {
    const { gw, caller, callee } = await setup({}, { behaviour: { kind: 'answer' } });
    const call = caller.invite({ to: gw.ruri('100'), via: gw.udp });
    expect((await call.final()).status).toBe(200);
    const d = call.dialog!;
    // behave like a strict router: R-URI = our Record-Route URI, the remote target moved to the last Route
    const ours = d.routeSet[0]!.replace(/^<|>$/g, '');
    d.routeSet = [`<${d.remoteTarget}>`];
    const target = d.remoteTarget;
    d.remoteTarget = ours;
    d.strictRouting = true;
    const res = await d.request('INFO').final();
    expect(res.status).toBe(200);
    const info = await callee.waitRequest('INFO');
    expect(info.uri).toBe(target);
    expect(info.headerValues('route')).toEqual([]);
    expect(gw.hooks.events.some((e) => e.type === 'in-dialog' && e.method === 'INFO' && e.fromCaller)).toBe(true);
  });

  it('TCP caller to UDP callee: double Record-Route the other way round, BYE from the caller over TCP', async () => {
    const { gw, callee } = await setup({}, { behaviour: { kind: 'answer', ringMs: 5 } });
    const tcpCaller = await SipUa.start({ name: 'bob', proto: 'tcp' });
    closers.push(() => tcpCaller.close());
    const call = tcpCaller.invite({ to: gw.ruri('100', 'tcp'), via: gw.tcp });
    const ok = await call.final();
    expect(ok.status).toBe(200);
    expect(ok.source.proto).toBe('tcp');
    const rr = callee.requests('INVITE')[0]!.headerValues('record-route');
    expect(rr).toHaveLength(2);
    expect(rr[0]).toContain(`:${gw.udp.port};lr`);
    expect(rr[1]).toContain(`:${gw.tcp.port};transport=tcp;lr`);
    call.ack();
    await callee.waitRequest('ACK');
    expect((await call.dialog!.request('BYE').final()).status).toBe(200);
    expect((await callee.waitRequest('BYE')).source.proto).toBe('udp');
  });
});
