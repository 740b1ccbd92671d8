import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { configSchema } from '../../../src/config/schema.js';
import { CSEQ_RESTORE_BUMP, Dialogs } from '../../../src/dialog/dialogs.js';
import { RECORD_VERSION, dialogKey, type DialogRecord } from '../../../src/dialog/record.js';
import type { DialogStateStore, LoadedState, StateLine } from '../../../src/dialog/state-file.js';
import { silentLogger } from '../../../src/log.js';
import type { CallEvent, DialogInfo, EndReason, RequestFacts } from '../../../src/proxy/hooks.js';

/** The state file's contract, in memory: lines appended, replayed by load(). */
class MemoryStore implements DialogStateStore {
  readonly path = 'memory';
  file: StateLine[] = [];
  get lines() { return this.file.length; }
  async load(): Promise<LoadedState> {
    const out: LoadedState = { records: new Map(), tombstones: new Map(), badLines: 0 };
    for (const l of this.file) {
      if (l.op === 'up') { out.records.set(l.rec.key, structuredClone(l.rec)); out.tombstones.delete(l.rec.key); }
      else { out.records.delete(l.key); out.tombstones.set(l.key, l.updated); }
    }
    return out;
  }
  append(line: StateLine) { this.file.push(structuredClone(line)); }
  async flush() {}
  async compact(lines: StateLine[]) { this.file = structuredClone(lines); }
  async close() {}
}

const T0 = Date.UTC(2026, 10, 22, 8, 0, 0);
const cfg = (over: Record<string, unknown> = {}) => configSchema.parse({ dialog: { stateDir: '/nonexistent', ...over } }).dialog;

function info(callId: string, answeredAt: number): DialogInfo {
  return {
    callId, callerTag: `ft-${callId}`, calleeTag: `tt-${callId}`,
    fromHeader: `<sip:4242424242@gw>;tag=ft-${callId}`, toHeader: `<sip:19995550100@gw>;tag=tt-${callId}`,
    callerContact: '<sip:4242424242@127.0.0.1:5070>', calleeContact: '<sip:ast@127.0.0.1:5080>',
    callerRouteSet: [], calleeRouteSet: [], callerHop: { ip: '127.0.0.1', port: 5070, proto: 'udp' },
    calleeHop: { ip: '127.0.0.1', port: 5080, proto: 'udp' }, callerCseq: 1, calleeCseq: 0,
    recordRoute: ['<sip:127.0.0.1:5060;lr>'], accountcode: '4242424242', targetId: 'ast1', createdAt: answeredAt - 2000, answeredAt,
  };
}

const facts = (callId: string) => ({ callId, fromTag: `ft-${callId}` }) as unknown as RequestFacts;
const target = { id: 'ast1', uri: 'sip:127.0.0.1:5080', host: '127.0.0.1', port: 5080, proto: 'udp' as const };
const answered = (d: DialogInfo): CallEvent => ({ type: 'answered', facts: facts(d.callId), auth: undefined, target, status: 200, reason: 'OK', at: d.answeredAt, dialog: d });

describe('Dialogs: timers and events', () => {
  let store: MemoryStore;
  let ends: Array<{ callId: string; reason: EndReason; cseq: [number, number] }>;
  let emitted: CallEvent[];
  let endDialogImpl: (d: DialogInfo) => Promise<void>;
  let dialogs: Dialogs;

  const make = (over: Record<string, unknown> = {}) => new Dialogs({
    dialog: cfg(over), log: silentLogger(), store, emit: (ev) => emitted.push(ev),
    actions: { endDialog: async (d, reason) => { ends.push({ callId: d.callId, reason, cseq: [d.callerCseq, d.calleeCseq] }); await endDialogImpl(d); } },
  });

  beforeEach(() => {
    vi.useFakeTimers({ now: T0 });
    store = new MemoryStore();
    ends = [];
    emitted = [];
    endDialogImpl = async () => {};
    dialogs = make();
  });
  afterEach(async () => {
    await dialogs.close();
    vi.useRealTimers();
  });

  it('ends the call with BYE both sides exactly at answer + maxDurationSec, then emits ended', async () => {
    dialogs.setMaxDuration('c1', 96);
    dialogs.onCallEvent(answered(info('c1', T0)));
    expect(dialogs.activeCount).toBe(1);
    expect(dialogs.list()[0]).toMatchObject({ callId: 'c1', state: 'confirmed', expiresAt: T0 + 96_000, maxDurationSec: 96 });
    await vi.advanceTimersByTimeAsync(95_999);
    expect(ends).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(ends).toEqual([{ callId: 'c1', reason: 'max-duration', cseq: [1, 0] }]);
    expect(emitted).toEqual([{ type: 'ended', callId: 'c1', fromTag: 'ft-c1', toTag: 'tt-c1', reason: 'max-duration', at: T0 + 96_000, dialog: info('c1', T0) }]);
    expect(dialogs.activeCount).toBe(0);
    expect(store.file.at(-1)).toMatchObject({ op: 'del', key: dialogKey('c1', 'ft-c1', 'tt-c1') });
  });

  it('takes the maximum duration from the answered event when the proxy carries it', async () => {
    dialogs.setMaxDuration('ev1', 500);
    dialogs.onCallEvent({ ...answered(info('ev1', T0)), maxDurationSec: 7 } as CallEvent);
    expect(dialogs.list()[0]).toMatchObject({ expiresAt: T0 + 7000, maxDurationSec: 7 });
    await vi.advanceTimersByTimeAsync(7000);
    expect(ends.map((e) => e.callId)).toEqual(['ev1']);
  });

  it('the default lifetime caps a longer (or absent) maximum duration', async () => {
    await dialogs.close();
    dialogs = make({ defaultMaxLifetimeSec: 60 });
    dialogs.setMaxDuration('long', 3600);
    dialogs.onCallEvent(answered(info('long', T0)));
    dialogs.onCallEvent(answered(info('free', T0)));
    await vi.advanceTimersByTimeAsync(59_999);
    expect(ends).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(ends.map((e) => e.callId).sort()).toEqual(['free', 'long']);
  });

  it('counts the maximum from the answer, not from when the event arrived', async () => {
    dialogs.setMaxDuration('late', 30);
    dialogs.onCallEvent(answered(info('late', T0 - 10_000)));
    await vi.advanceTimersByTimeAsync(19_999);
    expect(ends).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(ends).toHaveLength(1);
  });

  it('a BYE from either side removes the dialog and its timer', async () => {
    dialogs.setMaxDuration('c2', 10);
    dialogs.onCallEvent(answered(info('c2', T0)));
    // The callee hangs up: tags arrive the other way round.
    dialogs.onCallEvent({ type: 'ended', callId: 'c2', fromTag: 'tt-c2', toTag: 'ft-c2', reason: 'bye-callee', at: T0 + 5000 });
    expect(dialogs.activeCount).toBe(0);
    await vi.advanceTimersByTimeAsync(20_000);
    expect(ends).toEqual([]);
    expect(emitted).toEqual([]);
  });

  it('does not emit a second ended when the proxy reported one while ending', async () => {
    let finish!: () => void;
    endDialogImpl = () => new Promise<void>((r) => { finish = r; });
    dialogs.setMaxDuration('c3', 5);
    dialogs.onCallEvent(answered(info('c3', T0)));
    await vi.advanceTimersByTimeAsync(5000);
    expect(dialogs.list()[0]!.state).toBe('terminating');
    dialogs.onCallEvent({ type: 'ended', callId: 'c3', fromTag: 'ft-c3', toTag: 'tt-c3', reason: 'max-duration', at: T0 + 5000 });
    finish();
    await vi.advanceTimersByTimeAsync(0);
    expect(emitted).toEqual([]);
    expect(dialogs.activeCount).toBe(0);
  });

  it('like the real proxy: an ended emitted synchronously inside endDialog is the only one, the dialog stays saved until BYEs finish', async () => {
    let finish!: () => void;
    const seen: CallEvent[] = [];
    await dialogs.close();
    dialogs = new Dialogs({
      dialog: cfg(), log: silentLogger(), store, emit: (ev) => { seen.push(ev); dialogs.onCallEvent(ev); },
      actions: {
        endDialog: (d, reason) => {
          const ev: CallEvent = { type: 'ended', callId: d.callId, fromTag: d.callerTag, toTag: d.calleeTag, reason, at: Date.now() };
          seen.push(ev);
          dialogs.onCallEvent(ev);
          return new Promise<void>((r) => { finish = r; });
        },
      },
    });
    dialogs.setMaxDuration('p1', 3);
    dialogs.onCallEvent(answered(info('p1', T0)));
    await vi.advanceTimersByTimeAsync(3000);
    expect(seen).toHaveLength(1);
    expect(dialogs.list()[0]!.state).toBe('terminating');
    expect(store.file.at(-1)!.op).toBe('up');
    finish();
    await vi.advanceTimersByTimeAsync(0);
    expect(seen).toHaveLength(1);
    expect(dialogs.activeCount).toBe(0);
    expect(store.file.at(-1)!.op).toBe('del');
  });

  it('keeps the dialog saved until endDialog settles, and emits ended even if endDialog fails', async () => {
    let fail!: (e: Error) => void;
    endDialogImpl = () => new Promise<void>((_, rej) => { fail = rej; });
    dialogs.setMaxDuration('c4', 1);
    dialogs.onCallEvent(answered(info('c4', T0)));
    await vi.advanceTimersByTimeAsync(1000);
    expect(store.file.at(-1)!.op).toBe('up');
    fail(new Error('transport down'));
    await vi.advanceTimersByTimeAsync(0);
    expect(store.file.at(-1)!.op).toBe('del');
    expect(emitted).toHaveLength(1);
  });

  it('close() lets a dialog being ended settle (bounded): its deletion is saved and its ended emitted', async () => {
    endDialogImpl = () => new Promise<void>((r) => { setTimeout(r, 500); });
    dialogs.setMaxDuration('c6', 1);
    dialogs.onCallEvent(answered(info('c6', T0)));
    await vi.advanceTimersByTimeAsync(1000); // the max-duration BYE is under way
    const closing = dialogs.close();
    await vi.advanceTimersByTimeAsync(500);
    await closing;
    expect(store.file.at(-1)).toMatchObject({ op: 'del', key: dialogKey('c6', 'ft-c6', 'tt-c6') });
    expect(emitted.map((e) => e.type)).toEqual(['ended']);

    // An endDialog that never settles holds close() for 2 s at most; the dialog then stays saved for the next start.
    store = new MemoryStore();
    emitted = [];
    endDialogImpl = () => new Promise<void>(() => {});
    dialogs = make();
    dialogs.setMaxDuration('c7', 1);
    dialogs.onCallEvent(answered(info('c7', T0 + 1000)));
    await vi.advanceTimersByTimeAsync(1000);
    let closed = false;
    const stuck = dialogs.close().then(() => { closed = true; });
    await vi.advanceTimersByTimeAsync(1999);
    expect(closed).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    await stuck;
    expect(store.file.at(-1)!.op).toBe('up');
    expect(emitted).toEqual([]);
  });

  it('writes the snapshot on answer at once, and debounces CSeq changes into one write', async () => {
    dialogs.onCallEvent(answered(info('c5', T0)));
    expect(store.file).toHaveLength(1);
    expect(store.file[0]).toMatchObject({ op: 'up', rec: { info: { callId: 'c5', callerCseq: 1 } } });
    for (let cseq = 2; cseq <= 5; cseq++) {
      dialogs.onCallEvent({ type: 'in-dialog', callId: 'c5', fromTag: 'ft-c5', toTag: 'tt-c5', method: 'INVITE', cseq, fromCaller: true, at: T0 });
    }
    dialogs.onCallEvent({ type: 'in-dialog', callId: 'c5', fromTag: 'tt-c5', toTag: 'ft-c5', method: 'UPDATE', cseq: 7, fromCaller: false, at: T0 });
    // A stale (lower) CSeq never goes backwards.
    dialogs.onCallEvent({ type: 'in-dialog', callId: 'c5', fromTag: 'ft-c5', toTag: 'tt-c5', method: 'INFO', cseq: 3, fromCaller: true, at: T0 });
    expect(store.file).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1000);
    expect(store.file).toHaveLength(2);
    expect(store.file[1]).toMatchObject({ op: 'up', rec: { info: { callerCseq: 5, calleeCseq: 7 } } });
  });

  it('management: end(callId) sends BYE with reason admin; unknown Call-ID is false', async () => {
    dialogs.onCallEvent(answered(info('c6', T0)));
    expect(await dialogs.end('nope')).toBe(false);
    expect(await dialogs.end('c6')).toBe(true);
    expect(ends).toEqual([{ callId: 'c6', reason: 'admin', cseq: [1, 0] }]);
    expect(emitted[0]).toMatchObject({ type: 'ended', callId: 'c6', reason: 'admin' });
    expect(dialogs.list()).toEqual([]);
  });

  it('lists early dialogs from start until answered or failed', () => {
    dialogs.onCallEvent({ type: 'start', facts: facts('e1'), auth: { method: 'ip', accountcode: '5555000002' }, at: T0 });
    dialogs.onCallEvent({ type: 'start', facts: facts('e2'), auth: undefined, at: T0 });
    expect(dialogs.list().map((d) => [d.callId, d.state])).toEqual([['e1', 'early'], ['e2', 'early']]);
    dialogs.onCallEvent({ type: 'failed', facts: facts('e2'), auth: undefined, target: undefined, status: 486, reason: 'Busy Here', at: T0, cancelled: false });
    dialogs.onCallEvent(answered(info('e1', T0)));
    expect(dialogs.list().map((d) => [d.callId, d.state])).toEqual([['e1', 'confirmed']]);
  });

  it('a failed call forgets its maximum duration', async () => {
    dialogs.setMaxDuration('f1', 5);
    dialogs.onCallEvent({ type: 'failed', facts: facts('f1'), auth: undefined, target: undefined, status: 503, reason: 'x', at: T0, cancelled: false });
    dialogs.onCallEvent(answered(info('f1', T0)));
    await vi.advanceTimersByTimeAsync(60_000);
    expect(ends).toEqual([]);
  });

  it('restore does not resurrect a dialog whose BYE passed while the gateway was starting', async () => {
    await dialogs.close();
    const key = dialogKey('byed', 'ft-byed', 'tt-byed');
    store.file = [{ op: 'up', rec: { v: RECORD_VERSION, key, instance: 'default', info: info('byed', T0 - 5000), expiresAt: T0 + 60_000, maxDurationSec: null, updated: T0 - 5000 } }];
    dialogs = make();
    dialogs.onCallEvent({ type: 'ended', callId: 'byed', fromTag: 'ft-byed', toTag: 'tt-byed', reason: 'bye-caller', at: T0 });
    expect(await dialogs.restore()).toBe(0);
    expect(store.file.some((l) => l.op === 'up')).toBe(false);
    await vi.advanceTimersByTimeAsync(120_000);
    expect(ends).toEqual([]);
  });

  it('restore: re-arms from the absolute expiry, ends at once what expired while down, bumps CSeqs', async () => {
    await dialogs.close();
    const rec = (callId: string, expiresAt: number): DialogRecord => ({
      v: RECORD_VERSION, key: dialogKey(callId, `ft-${callId}`, `tt-${callId}`), instance: 'default',
      info: info(callId, T0 - 60_000), expiresAt, maxDurationSec: 100, updated: T0 - 1000,
    });
    store.file = [
      { op: 'up', rec: rec('alive', T0 + 40_000) },
      { op: 'up', rec: rec('expired', T0 - 1) },
      { op: 'up', rec: rec('gone', T0 + 40_000) },
      { op: 'del', key: rec('gone', 0).key, updated: T0 - 500 },
      { op: 'up', rec: { ...rec('foreign', T0 + 1000), v: 99 } as DialogRecord },
    ];
    dialogs = make();
    expect(await dialogs.restore()).toBe(2);
    await vi.advanceTimersByTimeAsync(0);
    expect(ends).toEqual([{ callId: 'expired', reason: 'max-duration', cseq: [1 + CSEQ_RESTORE_BUMP, CSEQ_RESTORE_BUMP] }]);
    expect(emitted.map((e) => e.type === 'ended' && e.callId)).toEqual(['expired']);
    await vi.advanceTimersByTimeAsync(39_999);
    expect(ends).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(ends.map((e) => e.callId)).toEqual(['expired', 'alive']);
  });
});
