import { afterEach, describe, expect, it, vi } from 'vitest';
import { Prober } from '../../../src/dispatch/prober.js';
import { silentLogger } from '../../../src/log.js';
import { createMetrics } from '../../../src/metrics.js';
import type { CallEvent, RequestFacts, Target } from '../../../src/proxy/hooks.js';
import { call, makeDispatcher, row } from './helpers.js';

const ids = (ts: Target[]) => ts.map((t) => t.id);
const states = (d: ReturnType<typeof makeDispatcher>) => Object.fromEntries(d.list().map((v) => [v.id, v.state]));

/** A probe function whose answers the test scripts per destination URI; records every call. */
function scriptedProbe(answers: Record<string, number | 'hang'>) {
  const calls: string[] = [];
  const pending: Array<(s: number) => void> = [];
  const probe = async (t: Target, timeoutMs: number): Promise<number> => {
    calls.push(t.id);
    const a = answers[t.id] ?? 200;
    if (a === 'hang') return new Promise<number>((resolve) => { pending.push(resolve); });
    await new Promise((r) => setTimeout(r, Math.min(10, timeoutMs)));
    return a;
  };
  return { probe, calls, pending };
}

describe('probe state machine (fake timers)', () => {
  afterEach(() => { vi.useRealTimers(); });

  it('marks a box inactive after probeFailThreshold failed probes and active again after probeOkThreshold answers', async () => {
    vi.useFakeTimers();
    const d = makeDispatcher([row(1), row(2)], { probeFailThreshold: 3, probeOkThreshold: 2 });
    const answers: Record<string, number | 'hang'> = { '2': 0 };
    const { probe } = scriptedProbe(answers);
    const prober = new Prober({ dispatcher: d, probe, intervalMs: 1000, timeoutMs: 500, log: silentLogger() });
    prober.start(); // probe #1 now
    await vi.advanceTimersByTimeAsync(50);
    expect(states(d)['2']).toBe('active');
    await vi.advanceTimersByTimeAsync(1000); // #2
    expect(states(d)['2']).toBe('active');
    await vi.advanceTimersByTimeAsync(1000); // #3
    expect(states(d)).toEqual({ '1': 'active', '2': 'inactive' });
    expect(ids(d.select(1, call('any')))).toEqual(['1']);

    answers['2'] = 404; // any answer means alive
    await vi.advanceTimersByTimeAsync(1000);
    expect(states(d)['2']).toBe('inactive');
    await vi.advanceTimersByTimeAsync(1000);
    expect(states(d)['2']).toBe('active');
    expect(d.get('2')).toMatchObject({ probesFailed: 3, probesOk: 2, lastProbeStatus: 404 });
    prober.stop();
  });

  it('never probes nor uses a disabled box until an admin sets it active', async () => {
    vi.useFakeTimers();
    const d = makeDispatcher([row(1), row(2, { state: 3 })]);
    const { probe, calls } = scriptedProbe({});
    const prober = new Prober({ dispatcher: d, probe, intervalMs: 1000, timeoutMs: 500, log: silentLogger() });
    prober.start();
    await vi.advanceTimersByTimeAsync(5050);
    expect(calls.filter((c) => c === '2')).toEqual([]);
    expect(calls.filter((c) => c === '1').length).toBe(6);
    expect(ids(d.select(1, call('x')))).toEqual(['1']);
    d.setState('2', 'active');
    expect(ids(d.select(1, call('x'))).sort()).toEqual(['1', '2']);
    await vi.advanceTimersByTimeAsync(1000);
    expect(calls.filter((c) => c === '2').length).toBe(1);
    prober.stop();
  });

  it('keeps one probe in flight per box: a box that never answers does not pile up probes', async () => {
    vi.useFakeTimers();
    const d = makeDispatcher([row(1), row(2)], { probeFailThreshold: 2 });
    const { probe, calls, pending } = scriptedProbe({ '2': 'hang' });
    const prober = new Prober({ dispatcher: d, probe, intervalMs: 100, timeoutMs: 1000, log: silentLogger() });
    prober.start();
    await vi.advanceTimersByTimeAsync(950);
    expect(calls.filter((c) => c === '2').length).toBe(1);
    expect(calls.filter((c) => c === '1').length).toBe(10);
    // the guard (timeout + 1 s) frees the slot and counts a failure; only then a new probe starts
    await vi.advanceTimersByTimeAsync(1100);
    expect(calls.filter((c) => c === '2').length).toBe(2);
    expect(d.get('2')!.consecutiveProbeFailures).toBe(1);
    expect(pending.length).toBe(2);
    prober.stop();
  });

  it('probes nothing until the proxy hands in its probe function, then starts on the next tick', async () => {
    vi.useFakeTimers();
    const d = makeDispatcher([row(1)], { probeFailThreshold: 1 });
    const prober = new Prober({ dispatcher: d, intervalMs: 1000, timeoutMs: 100, log: silentLogger() });
    prober.start();
    await vi.advanceTimersByTimeAsync(2500);
    expect(d.get('1')).toMatchObject({ state: 'active', lastProbeAt: null });
    const { probe, calls } = scriptedProbe({ '1': 0 });
    prober.setProbe(probe);
    await vi.advanceTimersByTimeAsync(600);
    expect(calls).toEqual(['1']);
    expect(d.get('1')!.state).toBe('inactive');
    prober.stop();
  });

  it('treats a probe function that throws as a failed probe', async () => {
    vi.useFakeTimers();
    const d = makeDispatcher([row(1)], { probeFailThreshold: 1 });
    const prober = new Prober({ dispatcher: d, probe: () => Promise.reject(new Error('boom')), intervalMs: 1000, timeoutMs: 100, log: silentLogger() });
    prober.start();
    await vi.advanceTimersByTimeAsync(10);
    expect(states(d)['1']).toBe('inactive');
    prober.stop();
  });
});

describe('failover marking and ordering', () => {
  it('offers bound hooks for the proxy', () => {
    const d = makeDispatcher([row(1), row(2)], { defaultAlgorithm: 'priority' });
    const { route, targetFailed } = d.hooks();
    const r = route({ callId: 'h', fromUser: 'u' } as RequestFacts, undefined);
    expect(r.kind === 'targets' && ids(r.targets)).toEqual(['1', '2']);
    targetFailed(d.select(1, call('h'))[0]!, { kind: 'timeout' });
    expect(d.get('1')!.state).toBe('probing');
  });

  it('demotes a box that failed a call to probing: used only after every active box, until probes bring it back', () => {
    const d = makeDispatcher([row(1), row(2), row(3)], { defaultAlgorithm: 'priority', probeOkThreshold: 1 });
    expect(ids(d.select(1, call('a')))).toEqual(['1', '2', '3']);
    d.targetFailed(d.select(1, call('a'))[0]!, { kind: 'status', status: 503 });
    expect(states(d)['1']).toBe('probing');
    expect(ids(d.select(1, call('a')))).toEqual(['2', '3', '1']);
    d.targetFailed({ ...d.select(1, call('a'))[0]! }, { kind: 'timeout' });
    d.targetFailed({ ...d.select(1, call('a'))[0]! }, { kind: 'transport', message: 'ECONNREFUSED' });
    // all three probing: still routable as a last resort, in the algorithm's order
    expect(ids(d.select(1, call('a')))).toEqual(['1', '2', '3']);
    d.probeResult(d.select(1, call('a'))[1]!, 200);
    expect(ids(d.select(1, call('a')))).toEqual(['2', '1', '3']);
    expect(d.get('3')).toMatchObject({ failures: 1, lastFailure: 'transport: ECONNREFUSED' });
  });

  it('ignores statuses that are not failover statuses (486 Busy is not a sick box)', () => {
    const d = makeDispatcher([row(1)]);
    d.targetFailed(d.select(1, call('a'))[0]!, { kind: 'status', status: 486 });
    expect(states(d)['1']).toBe('active');
  });

  it('answers 503 with Retry-After when no destination is usable', () => {
    const d = makeDispatcher([row(1, { state: 1 }), row(2, { state: 3 })], { retryAfterSec: 17 });
    const facts = { callId: 'none', fromUser: 'u' } as RequestFacts;
    expect(d.route(facts, undefined)).toEqual({ kind: 'reject', status: 503, reason: 'Service Unavailable', headers: [['Retry-After', '17']] });
    expect(makeDispatcher([]).route(facts, undefined)).toMatchObject({ kind: 'reject', status: 503 });
  });

  it('lets an admin take a box out of rotation at once', () => {
    const d = makeDispatcher([row(1), row(2)]);
    const before = new Set(Array.from({ length: 50 }, (_, i) => d.select(1, call(`k${i}`))[0]!.id));
    expect(before).toEqual(new Set(['1', '2']));
    expect(d.setState('1', 'disabled')).toMatchObject({ id: '1', state: 'disabled' });
    for (let i = 0; i < 50; i++) expect(ids(d.select(1, call(`k${i}`)))).toEqual(['2']);
    expect(d.setState('99', 'active')).toBeUndefined();
  });
});

describe('reload', () => {
  it('swaps sets atomically, keeping runtime state of destinations that still exist', () => {
    let now = 1_000;
    const d = makeDispatcher([row(1), row(2), row(3)], {}, { now: () => now });
    d.setState('1', 'inactive');
    d.callStarted('c1', '2');
    now = 2_000;
    const s = d.load([row(1), row(2, { weight: 5, description: 'renamed' }), row(4)]);
    expect(s).toMatchObject({ sets: 1, destinations: 3, kept: 2, added: 1, removed: 1, problems: [] });
    expect(d.get('1')!.state).toBe('inactive');
    expect(d.get('2')).toMatchObject({ activeCalls: 1, weight: 5, description: 'renamed' });
    expect(d.get('3')).toBeUndefined();
    d.callEnded('c1');
    expect(d.get('2')!.activeCalls).toBe(0);
  });

  it('lets the database win when the state column changed, and re-pointed rows start fresh', () => {
    const d = makeDispatcher([row(1), row(2)]);
    d.setState('1', 'inactive');
    d.setState('2', 'inactive');
    d.load([row(1, { state: 3 }), row(2, { destination: 'sip:10.9.9.9;transport=tcp' })]);
    expect(d.get('1')!.state).toBe('disabled');
    expect(d.get('2')).toMatchObject({ state: 'active', uri: 'sip:10.9.9.9;transport=tcp' });
    expect(d.select(1, call('x'))[0]).toEqual({ id: '2', uri: 'sip:10.9.9.9;transport=tcp', host: '10.9.9.9', port: 5060, proto: 'tcp' });
  });

  it('skips bad rows with a message naming the row, and loads the rest', () => {
    const d = makeDispatcher([]);
    const s = d.load([row(1), row(2, { destination: 'sips:10.0.0.2' }), row(3, { destination: 'sip:10.0.0.3:99999' }), row(4, { state: 7 }),
      row(5, { destination: 'sip:10.0.0.1:5060;transport=udp' }), row(6, { destination: 'sip:[2001:db8::1]:5070;transport=tcp' })]);
    expect(s.destinations).toBe(2);
    expect(s.problems).toEqual([
      expect.stringMatching(/^gw_dispatcher id 2 \(set 1\): .*sips/),
      expect.stringMatching(/^gw_dispatcher id 3 .*port "99999"/),
      expect.stringMatching(/^gw_dispatcher id 4 .*state 7/),
      expect.stringMatching(/^gw_dispatcher id 5 .*duplicate/),
    ]);
    expect(d.get('6')).toBeDefined();
    expect(d.select(1, call('v6')).find((t) => t.id === '6')).toEqual({ id: '6', uri: 'sip:[2001:db8::1]:5070;transport=tcp', host: '2001:db8::1', port: 5070, proto: 'tcp' });
  });

  it('drops the result of a probe that was in flight for a destination removed by a reload', () => {
    const d = makeDispatcher([row(1)], { probeFailThreshold: 1 });
    const old = d.select(1, call('x'))[0]!;
    d.load([row(1, { destination: 'sip:10.1.1.1' })]);
    d.probeResult(old, 0);
    expect(d.get('1')!.state).toBe('active');
  });
});

describe('active calls from CallEvents', () => {
  const facts = (callId: string) => ({ callId, fromUser: 'u' }) as RequestFacts;
  const target = (d: ReturnType<typeof makeDispatcher>, id: string) => d.select(1, call('z')).find((t) => t.id === id)!;

  it('follows a call through serial failover, answer and BYE', () => {
    const d = makeDispatcher([row(1), row(2), row(3)], { defaultAlgorithm: 'priority' });
    const r = d.route(facts('c1'), undefined);
    expect(r.kind === 'targets' && ids(r.targets)).toEqual(['1', '2', '3']);
    const active = () => d.list().map((v) => v.activeCalls);
    expect(active()).toEqual([1, 0, 0]);
    const ev = (e: Partial<CallEvent> & { type: CallEvent['type'] }) => d.onCallEvent({ facts: facts('c1'), auth: undefined, at: 0, status: 503, reason: 'x', attempt: 1, ...e } as CallEvent);
    ev({ type: 'start' });
    ev({ type: 'attempt-failed', target: target(d, '1') } as never);
    expect(active()).toEqual([0, 1, 0]);
    ev({ type: 'answered', target: target(d, '2'), status: 200 } as never);
    expect(active()).toEqual([0, 1, 0]);
    d.onCallEvent({ type: 'ended', callId: 'c1', fromTag: 'a', toTag: 'b', reason: 'bye-caller', at: 1 });
    expect(active()).toEqual([0, 0, 0]);
    expect(d.trackedCalls()).toBe(0);
  });

  it('stops counting a call that failed for good, and forgets calls whose events were lost', () => {
    let now = 0;
    const d = makeDispatcher([row(1)], {}, { now: () => now });
    d.route(facts('f1'), undefined);
    d.onCallEvent({ type: 'failed', facts: facts('f1'), auth: undefined, target: undefined, status: 487, reason: 'Request Terminated', at: 0, cancelled: true });
    expect(d.get('1')!.activeCalls).toBe(0);
    d.route(facts('lost'), undefined);
    now = 11 * 60_000;
    expect(d.sweepCalls()).toBe(1);
    expect(d.get('1')!.activeCalls).toBe(0);
  });
});

describe('metrics', () => {
  it('exposes destination state and active calls at scrape time', async () => {
    const metrics = createMetrics();
    const d = makeDispatcher([row(1), row(2, { state: 3 })], {}, { metrics });
    metrics.setDispatcherSource(() => d.gaugeViews());
    d.callStarted('c', '1');
    d.targetFailed(d.select(1, call('c'))[0]!, { kind: 'timeout' });
    const text = await metrics.text();
    expect(text).toContain('a2b_dispatcher_destination_state{set="1",id="1",uri="sip:10.0.0.1:5060;transport=udp",state="probing"} 1');
    expect(text).toContain('a2b_dispatcher_destination_state{set="1",id="2",uri="sip:10.0.0.2:5060;transport=udp",state="disabled"} 1');
    expect(text).toContain('a2b_dispatcher_destination_active_calls{set="1",id="1",uri="sip:10.0.0.1:5060;transport=udp"} 1');
    expect(text).toContain('a2b_dispatcher_target_failures_total{set="1",id="1",kind="timeout"} 1');
  });
});
