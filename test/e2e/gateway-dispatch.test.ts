// Issue 5 acceptance (load balancing) through the WHOLE gateway: startGateway on a seeded MariaDB,
// gw_dispatcher rows pointing at three callee stand-ins on loopback (127.0.20.1-3), bob calling from his
// IP peer address (127.0.0.2, so no digest round trip and no flood limit), real UDP sockets.
// Three gateways share one database, each on its own destination set:
//   set 1 hash-callid (fast OPTIONS probing), set 2 weighted, set 3 priority.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDb, type TestDb } from '../helpers/db.js';
import { finish, sleep, startTestGateway, type Callee, type TestGateway } from '../helpers/gateway.js';
import type { SipUa, UaCall } from '../helpers/sip-ua.js';
import { parsePrometheusText } from '../unit/mgmt/prom-text.js';

const BUSY = { kind: 'reject', status: 486, reason: 'Busy Here' } as const;
const ANSWER = { kind: 'answer' } as const;
const RETRY_AFTER = 7;

let db: TestDb;
let hash: TestGateway;
let weighted: TestGateway;
let prio: TestGateway;
let bob: SipUa;
let seq = 0;

beforeAll(async () => {
  db = await createTestDb({ seed: true });
  // Probes every 250 ms, 2 lost probes → inactive, 1 answered → active again.
  hash = await startTestGateway({
    db, setId: 1, callees: [{ behaviour: BUSY }, { behaviour: BUSY }, { behaviour: BUSY }],
    config: { dispatch: { probeIntervalSec: 0.25, probeTimeoutMs: 200, probeFailThreshold: 2, probeOkThreshold: 1, retryAfterSec: RETRY_AFTER } },
  });
  weighted = await startTestGateway({
    db, setId: 2, callees: [{ behaviour: BUSY, weight: 3 }, { behaviour: BUSY, weight: 1 }, { behaviour: BUSY, weight: 0 }],
    config: { dispatch: { algorithms: { 2: 'weighted' }, probeIntervalSec: 600 }, mgmt: { enabled: false } },
  });
  prio = await startTestGateway({
    db, setId: 3, callees: [{ behaviour: ANSWER, priority: 10 }, { behaviour: ANSWER, priority: 20 }, { behaviour: ANSWER, priority: 5 }],
    // No probe during the test: an answered OPTIONS would (rightly) bring a demoted box back at once.
    config: { dispatch: { algorithms: { 3: 'priority' }, probeIntervalSec: 600 }, mgmt: { enabled: false } },
  });
  bob = await hash.caller({ host: '127.0.0.2' });
});

afterAll(async () => {
  await Promise.all([hash?.stop(), weighted?.stop(), prio?.stop()]);
  await db?.drop();
});

/** A call from bob through gateway g; resolves with the final status and the box that got the INVITE first. */
async function call(g: TestGateway, callId = `lb-${++seq}-${Date.now()}@e2e`): Promise<{ status: number; first: Callee | undefined; call: UaCall }> {
  const c = bob.invite({ to: g.ruri('15550001000'), via: g.udp, callId });
  const res = await finish(c);
  const first = firstBox(g, callId);
  return { status: res.status, first, call: c };
}

function firstBox(g: TestGateway, callId: string): Callee | undefined {
  let best: { box: Callee; seq: number } | undefined;
  for (const box of g.callees) {
    const inv = box.invites().find((m) => m.callId === callId);
    // by arrival order, not by time: a 503 and the failover INVITE often land within the same millisecond
    if (inv && (!best || inv.seq < best.seq)) best = { box, seq: inv.seq };
  }
  return best?.box;
}

/** Many calls, a few at a time; returns how many each box got first. */
async function spread(g: TestGateway, n: number): Promise<number[]> {
  const counts = g.callees.map(() => 0);
  for (let i = 0; i < n; i += 10) {
    const batch = await Promise.all(Array.from({ length: Math.min(10, n - i) }, () => call(g)));
    for (const r of batch) counts[g.callees.indexOf(r.first!)]++;
  }
  return counts;
}

async function waitState(g: TestGateway, box: Callee, state: string, timeoutMs = 4000): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    const v = g.gw.dispatch.dispatcher.list().find((d) => d.id === box.id)!;
    if (v.state === state) return Date.now() - t0;
    if (Date.now() - t0 > timeoutMs) throw new Error(`box ${box.id} still ${v.state} after ${timeoutMs} ms (wanted ${state})`);
    await sleep(25);
  }
}

async function mgmt(path: string, body?: unknown): Promise<{ status: number; json: any; text: string; type: string | null }> {
  const res = await fetch(hash.mgmtUrl! + path, body === undefined ? {} : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const text = await res.text();
  let json: unknown;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: res.status, json, text, type: res.headers.get('content-type') };
}

describe('issue 5: load balancing through the whole gateway', () => {
  it('hash-callid keeps one Call-ID on one box, and spreads many Call-IDs over all three', async () => {
    const callId = `sticky-${Date.now()}@e2e`;
    const boxes = new Set<Callee | undefined>();
    for (let i = 0; i < 5; i++) {
      const r = await call(hash, callId);
      expect(r.status).toBe(486);
      // every INVITE of this Call-ID, on any box, landed on the same one
      boxes.add(r.first);
    }
    expect(boxes.size).toBe(1);
    const sticky = [...boxes][0]!;
    expect(sticky.invites().filter((m) => m.callId === callId)).toHaveLength(5);
    for (const other of hash.callees.filter((b) => b !== sticky)) expect(other.invites().filter((m) => m.callId === callId)).toHaveLength(0);

    const counts = await spread(hash, 60);
    // uniform would be 20 each (sd 3.7); 8 is more than 3 standard deviations below
    for (const n of counts) expect(n).toBeGreaterThanOrEqual(8);
    // 486 is not a failover code: one INVITE per call
    expect(counts.reduce((a, b) => a + b, 0)).toBe(60);
  });

  it('taking one box out moves only its own Call-IDs (rendezvous hashing): the others stay where they were', async () => {
    const ids = Array.from({ length: 30 }, (_, i) => `rdv-${i}-${Date.now()}@e2e`);
    const before = new Map<string, Callee>();
    for (const r of await Promise.all(ids.map((id) => call(hash, id)))) before.set(r.call.callId, r.first!);
    const gone = hash.callees[0]!;
    expect((await mgmt(`/dispatcher/${gone.id}/state`, { state: 'disabled' })).status).toBe(200);
    try {
      let moved = 0;
      const again = await Promise.all(ids.map((id) => call(hash, id)));
      for (const [i, id] of ids.entries()) {
        const c = again[i]!;
        expect(c.status).toBe(486);
        // the box that got this new INVITE (the latest one of the Call-ID)
        const now = hash.callees.find((b) => b.invites().some((m) => m.callId === id && m.cseq.seq === c.call.cseq))!;
        if (before.get(id) === gone) {
          expect(now).not.toBe(gone);
          moved++;
        } else {
          expect(now).toBe(before.get(id));
        }
      }
      expect(moved).toBeGreaterThan(0);
    } finally {
      await mgmt(`/dispatcher/${gone.id}/state`, { state: 'active' });
    }
  });

  it('weights are honoured: 3:1:0 gives about three quarters, one quarter, and never the weight-0 box', async () => {
    const counts = await spread(weighted, 80);
    expect(counts[2]).toBe(0);
    expect(counts[0]).toBeGreaterThanOrEqual(45); // mean 60, sd 3.9
    expect(counts[0]).toBeLessThanOrEqual(75);
    expect(counts[1]).toBeGreaterThanOrEqual(7);
  });

  it('priorities are honoured, and a box answering 503 causes failover to the next one', async () => {
    const [p10, p20, p5] = prio.callees as [Callee, Callee, Callee];
    for (let i = 0; i < 3; i++) expect((await call(prio)).first).toBe(p20);
    p20.ua.behaviour = { kind: 'reject', status: 503, reason: 'Service Unavailable' };
    const r = await call(prio);
    expect(r.status).toBe(200);
    expect(r.first).toBe(p20);
    const answeredBy = prio.callees.filter((b) => b.ua.dialogs.some((d) => d.callId === r.call.callId));
    expect(answeredBy).toEqual([p10]);
    expect(p5.invites().length).toBe(0);
    // the 503 demoted the box: the next call goes straight to the next priority
    const next = await call(prio);
    expect(next.status).toBe(200);
    expect(next.first).toBe(p10);
    expect(prio.gw.dispatch.dispatcher.list().find((d) => d.id === p20.id)!.state).toBe('probing');
  });

  it('a box that does not answer at all is failed over after the no-response timeout; a demoted (probing) box comes last', async () => {
    const [p10, p20, p5] = prio.callees as [Callee, Callee, Callee];
    // p20 (highest priority) demoted to probing, as a 503 does (previous test); p10 is the first active box
    prio.gw.dispatch.dispatcher.setState(p20.id, 'probing', 'test');
    p10.ua.behaviour = { kind: 'silent' };
    const t0 = Date.now();
    const r = await call(prio);
    const took = Date.now() - t0;
    expect(r.status).toBe(200);
    expect(r.first).toBe(p10);
    expect(prio.callees.filter((b) => b.ua.dialogs.some((d) => d.callId === r.call.callId))).toEqual([p5]);
    expect(p20.invites().filter((m) => m.callId === r.call.callId)).toEqual([]);
    expect(took).toBeGreaterThanOrEqual(1400); // sip.noResponseTimeoutMs 1500 in the test config
    p10.ua.behaviour = ANSWER;
    p20.ua.behaviour = ANSWER;
  });

  it('every box fails the call (503, 503, no answer): the caller gets 503 with Retry-After after all three were tried', async () => {
    const [p10, p20, p5] = prio.callees as [Callee, Callee, Callee];
    p20.ua.behaviour = { kind: 'reject', status: 503, reason: 'Service Unavailable' };
    p10.ua.behaviour = { kind: 'silent' };
    p5.ua.behaviour = { kind: 'reject', status: 503, reason: 'Service Unavailable' };
    try {
      const c = bob.invite({ to: prio.ruri('15550001000'), via: prio.udp });
      const res = await c.final(8000);
      expect(res.status).toBe(503);
      expect(res.header('retry-after')).toMatch(/^\d+$/);
      for (const b of [p10, p20, p5]) expect(b.invites().filter((m) => m.callId === c.callId)).toHaveLength(1);
    } finally {
      for (const b of prio.callees) {
        b.ua.behaviour = ANSWER;
        prio.gw.dispatch.dispatcher.setState(b.id, 'active', 'test');
      }
    }
  });

  it('a box answering 503 fails over on hash-callid too: every call is answered by the healthy box', async () => {
    const [b1, b2, b3] = hash.callees as [Callee, Callee, Callee];
    b1.ua.behaviour = { kind: 'reject', status: 503, reason: 'Service Unavailable' };
    b2.ua.behaviour = { kind: 'reject', status: 503, reason: 'Service Unavailable' };
    b3.ua.behaviour = ANSWER;
    const before = b1.invites().length + b2.invites().length;
    const results = await Promise.all(Array.from({ length: 12 }, () => call(hash)));
    for (const r of results) {
      expect(r.status).toBe(200);
      expect(b3.ua.dialogs.some((d) => d.callId === r.call.callId)).toBe(true);
    }
    // some calls were first offered to a 503 box and failed over
    expect(b1.invites().length + b2.invites().length).toBeGreaterThan(before);
    for (const b of hash.callees) b.ua.behaviour = BUSY;
  });

  it('a box that stops answering is marked inactive after the configured probes, gets no calls, and is used again when it comes back', async () => {
    const b2 = hash.callees[1]!;
    await waitState(hash, b2, 'active');
    const viewOf = () => hash.gw.dispatch.dispatcher.list().find((d) => d.id === b2.id)!;
    const failedBefore = viewOf().probesFailed;
    b2.ua.behaviour = { kind: 'silent' };
    await waitState(hash, b2, 'inactive');
    // probeFailThreshold 2: not before two probes went unanswered
    expect(viewOf().probesFailed - failedBefore).toBeGreaterThanOrEqual(2);
    expect(viewOf().lastProbeStatus).toBe(0);
    const before = b2.invites().length;
    const counts = await spread(hash, 24);
    expect(counts[1]).toBe(0);
    expect(b2.invites().length).toBe(before);
    b2.ua.behaviour = BUSY; // back: OPTIONS answered again
    await waitState(hash, b2, 'active');
    const after = await spread(hash, 24); // (2/3)^24: it would get one by chance anyway
    expect(after[1]).toBeGreaterThan(0);
  });

  it('all boxes down: 503 with Retry-After, without trying any box', async () => {
    for (const b of hash.callees) b.ua.behaviour = { kind: 'silent' };
    for (const b of hash.callees) await waitState(hash, b, 'inactive');
    const before = hash.callees.map((b) => b.invites().length);
    const c = bob.invite({ to: hash.ruri('15550001000'), via: hash.udp });
    const res = await c.final();
    expect(res.status).toBe(503);
    expect(res.header('retry-after')).toBe(String(RETRY_AFTER));
    expect(hash.callees.map((b) => b.invites().length)).toEqual(before);
    for (const b of hash.callees) b.ua.behaviour = BUSY;
    for (const b of hash.callees) await waitState(hash, b, 'active');
  });

  it('disabling a box through the management interface takes it out of rotation at once', async () => {
    const b1 = hash.callees[0]!;
    const set = await mgmt(`/dispatcher/${b1.id}/state`, { state: 'disabled' });
    expect(set.status).toBe(200);
    // no waiting: the very next calls avoid it
    const counts = await spread(hash, 24);
    expect(counts[0]).toBe(0);
    const list = await mgmt('/dispatcher');
    expect(list.status).toBe(200);
    expect(list.json.destinations.find((d: { id: string }) => d.id === b1.id).state).toBe('disabled');
    // a disabled box is not probed either
    const probes = b1.ua.received.filter((m) => m.method === 'OPTIONS').length;
    await sleep(400);
    expect(b1.ua.received.filter((m) => m.method === 'OPTIONS').length).toBe(probes);
    expect((await mgmt(`/dispatcher/${b1.id}/state`, { state: 'active' })).status).toBe(200);
    expect((await spread(hash, 24))[0]).toBeGreaterThan(0);
    // bad input gets a clear 4xx, not a crash
    expect((await mgmt('/dispatcher/abc/state', { state: 'disabled' })).status).toBe(400);
    expect((await mgmt(`/dispatcher/${b1.id}/state`, { state: 'asleep' })).status).toBe(400);
  });

  it('the metrics endpoint is valid Prometheus text with the dispatcher and call series', async () => {
    // traffic of its own: calls, and one 503 with every box disabled
    expect((await spread(hash, 9)).reduce((a, b) => a + b, 0)).toBe(9);
    for (const b of hash.callees) expect((await mgmt(`/dispatcher/${b.id}/state`, { state: 'disabled' })).status).toBe(200);
    expect((await bob.invite({ to: hash.ruri('15550001000'), via: hash.udp }).final()).status).toBe(503);
    for (const b of hash.callees) expect((await mgmt(`/dispatcher/${b.id}/state`, { state: 'active' })).status).toBe(200);
    await sleep(300); // a probe round

    const m = await mgmt('/metrics');
    expect(m.status).toBe(200);
    expect(m.type).toMatch(/^text\/plain; version=0\.0\.4/);
    const fams = parsePrometheusText(m.text); // strict: throws on anything Prometheus would reject
    const selections = fams.get('a2b_dispatcher_selections_total')!;
    expect(selections.type).toBe('counter');
    const boxIds = new Set(hash.callees.map((b) => b.id));
    const chosen = selections.samples.filter((x) => x.labels.set === '1' && boxIds.has(x.labels.id!)).reduce((a, x) => a + x.value, 0);
    expect(chosen).toBeGreaterThanOrEqual(9);
    expect(selections.samples.find((x) => x.labels.set === '1' && x.labels.id === 'none')?.value).toBeGreaterThanOrEqual(1);
    const state = fams.get('a2b_dispatcher_destination_state')!;
    for (const b of hash.callees) {
      expect(state.samples.find((x) => x.labels.id === b.id && x.labels.state === 'active')?.value).toBe(1);
      expect(state.samples.find((x) => x.labels.id === b.id && x.labels.state === 'disabled')?.value).toBe(0);
    }
    expect(fams.get('a2b_dispatcher_state_changes_total')!.samples.some((x) => x.labels.to === 'disabled' && x.value >= 1)).toBe(true);
    expect(fams.get('a2b_dispatcher_probes_total')!.samples.some((x) => x.labels.result === 'ok' && x.value >= 1)).toBe(true);
    expect(fams.get('a2b_calls_total')!.samples.find((x) => x.labels.event === 'started')?.value).toBeGreaterThanOrEqual(9);
    expect(fams.get('a2b_sip_requests_total')!.samples.find((x) => x.labels.method === 'INVITE')?.value).toBeGreaterThanOrEqual(10);
    // overload control: the queue probe measured (an idle gateway: well under the 300 ms target), every call admitted
    const delay = fams.get('a2b_sip_queue_delay_seconds')!.samples[0]!.value;
    expect(delay).toBeGreaterThan(0);
    expect(delay).toBeLessThan(0.3);
    expect(fams.get('a2b_sip_admit_share')!.samples[0]!.value).toBe(1);
    const health = await mgmt('/health');
    expect(JSON.parse(health.text)).toMatchObject({ overload: { admitShare: 1, rejected: 0 } });
  });

  it('a persisted admin state is written to gw_dispatcher and survives a reload; a new (TCP) row joins on POST /reload/dispatcher', async () => {
    const b2 = hash.callees[1]!;
    expect((await mgmt(`/dispatcher/${b2.id}/state`, { state: 'disabled', persist: true })).status).toBe(200);
    const rowState = async (id: string): Promise<number> => {
      const [rows] = await db.db.query('SELECT state FROM gw_dispatcher WHERE id = ?', [Number(id)]);
      return Number((rows as Array<{ state: number }>)[0]!.state);
    };
    expect(await rowState(b2.id)).toBe(3);
    const b4 = await hash.addCallee({ behaviour: BUSY, proto: 'tcp' }); // an Asterisk box reached over TCP
    expect((await mgmt('/reload/dispatcher', {})).status).toBe(200);
    const states = new Map((await mgmt('/dispatcher')).json.destinations.map((d: { id: string; state: string }) => [d.id, d.state]));
    expect(states.get(b2.id)).toBe('disabled');
    expect(states.get(b4.id)).toBe('active');
    const counts = await spread(hash, 24);
    expect(counts[1]).toBe(0);
    expect(counts[3]).toBeGreaterThan(0);
    expect(b4.invites().every((m) => m.source.proto === 'tcp' && /^SIP\/2\.0\/TCP /.test(m.headerValues('via')[0]!))).toBe(true);
    // probed over TCP as well: still active after a probe round
    await sleep(400);
    expect(hash.gw.dispatch.dispatcher.list().find((d) => d.id === b4.id)!.state).toBe('active');
    expect(b4.ua.received.some((m) => m.method === 'OPTIONS' && m.source.proto === 'tcp')).toBe(true);
    expect((await mgmt(`/dispatcher/${b2.id}/state`, { state: 'active', persist: true })).status).toBe(200);
    expect(await rowState(b2.id)).toBe(0);
  });
});
