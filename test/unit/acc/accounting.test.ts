import { afterEach, describe, expect, it } from 'vitest';
import { createAccounting, type Accounting } from '../../../src/acc/accounting.js';
import { accTable, cdrTable, durationSeconds, missedTable, type AccRecord, type CdrRecord } from '../../../src/acc/records.js';
import { callRef } from '../../../src/callref.js';
import { createLogger, silentLogger } from '../../../src/log.js';
import type { CallEvent } from '../../../src/proxy/hooks.js';
import { T0, alice, answeredCall, box1, box2, dialog, facts } from './events.js';

interface Sinks { acc: AccRecord[]; missed: AccRecord[]; cdr: CdrRecord[] }
let open: Accounting[] = [];

function setup(over: { reportCancels?: boolean; durationRounding?: 'floor' | 'half-up' | 'ceil'; maxLifetimeSec?: number } = {}): { a: Accounting; out: Sinks } {
  const out: Sinks = { acc: [], missed: [], cdr: [] };
  const a = createAccounting({
    config: { acc: { reportCancels: over.reportCancels ?? true, logRecords: false, durationRounding: over.durationRounding }, dialog: { defaultMaxLifetimeSec: over.maxLifetimeSec ?? 10800 } },
    sinks: { acc: { enqueue: (r) => out.acc.push(r) }, missed: { enqueue: (r) => out.missed.push(r) }, cdr: { enqueue: (r) => out.cdr.push(r) } },
    log: silentLogger(),
  });
  open.push(a);
  return { a, out };
}

const feed = (a: Accounting, evs: CallEvent[]): void => evs.forEach((e) => a.onCallEvent(e));

afterEach(async () => {
  for (const a of open) await a.close();
  open = [];
});

describe('accounting of an answered call', () => {
  it('writes the INVITE and BYE transactions and one CDR with setup time and duration', () => {
    const { a, out } = setup();
    const f = facts();
    feed(a, answeredCall(f, { answerAfterMs: 2350, talkMs: 61_999, maxDurationSec: 5400 }));

    expect(out.missed).toEqual([]);
    expect(out.acc.map((r) => [r.method, r.sipCode, r.fromTag, r.toTag])).toEqual([['INVITE', 200, '1928301774', 'as5e1b2c'], ['BYE', 200, '1928301774', 'as5e1b2c']]);
    expect(out.acc[0]).toMatchObject({
      callId: f.callId, sipReason: 'OK', time: T0 + 2350, srcUser: 'alice', srcDomain: 'example.com', dstUser: '4420123456',
      dstDomain: 'gw.example.net', accountcode: '4242424242', srcIp: '192.0.2.10', authMethod: 'digest', destination: box1.uri, attempt: 1,
    });
    expect(out.cdr).toHaveLength(1);
    expect(out.cdr[0]).toMatchObject({
      callId: f.callId, fromTag: '1928301774', toTag: 'as5e1b2c', created: T0, answered: T0 + 2350, ended: T0 + 2350 + 61_999,
      setupMs: 2350, durationMs: 61_999, durationSec: 61, endReason: 'bye-caller', sipCode: 200, accountcode: '4242424242', cardId: 1,
      srcUser: 'alice', dstUser: '4420123456', srcIp: '192.0.2.10', authMethod: 'digest', destination: box1.uri, maxDurationSec: 5400,
    });
    expect(a.stats().activeCalls).toBe(0);
  });

  it('accounts the BYE as sent by the callee when the callee hangs up, and keeps max-duration as the end reason', () => {
    const { a, out } = setup();
    feed(a, answeredCall(facts({ callId: 'c1' }), { answerAfterMs: 100, talkMs: 5000, reason: 'bye-callee' }));
    feed(a, answeredCall(facts({ callId: 'c2' }), { answerAfterMs: 100, talkMs: 96_000, reason: 'max-duration', maxDurationSec: 96 }));
    const bye = out.acc.filter((r) => r.method === 'BYE');
    expect(bye[0]).toMatchObject({ fromTag: 'as5e1b2c', toTag: '1928301774' });
    expect(out.cdr.map((r) => [r.callId, r.endReason, r.durationSec, r.maxDurationSec])).toEqual([['c1', 'bye-callee', 5, null], ['c2', 'max-duration', 96, 96]]);
  });

  it('finds the call when `ended` names the tags the other way round', () => {
    const { a, out } = setup();
    const f = facts();
    const evs = answeredCall(f, { answerAfterMs: 10, talkMs: 1000, reason: 'bye-callee' });
    const ended = evs[evs.length - 1] as Extract<CallEvent, { type: 'ended' }>;
    evs[evs.length - 1] = { ...ended, fromTag: 'as5e1b2c', toTag: f.fromTag };
    feed(a, evs);
    expect(out.cdr).toHaveLength(1);
    expect(out.cdr[0]).toMatchObject({ fromTag: f.fromTag, toTag: 'as5e1b2c', durationSec: 1 });
  });

  it('records the failed first box in missed calls and bills the box that answered', () => {
    const { a, out } = setup();
    feed(a, answeredCall(facts(), { answerAfterMs: 900, talkMs: 30_000, failover: true }));
    expect(out.missed).toHaveLength(1);
    expect(out.missed[0]).toMatchObject({ method: 'INVITE', sipCode: 503, sipReason: 'Service Unavailable', destination: box1.uri, attempt: 1, accountcode: '4242424242' });
    expect(out.acc[0]).toMatchObject({ method: 'INVITE', destination: box2.uri, attempt: 2 });
    expect(out.cdr[0]).toMatchObject({ destination: box2.uri, setupMs: 900, durationSec: 30 });
  });
});

describe('accounting of calls that fail', () => {
  it('a rejected call: one missed-call row and a CDR with duration 0 and end reason failed', () => {
    const { a, out } = setup();
    const f = facts();
    feed(a, [
      { type: 'start', facts: f, auth: alice, at: T0 },
      { type: 'failed', facts: f, auth: alice, target: box1, status: 486, reason: 'Busy Here', at: T0 + 3000, cancelled: false },
    ]);
    expect(out.acc).toEqual([]);
    expect(out.missed).toHaveLength(1);
    expect(out.missed[0]).toMatchObject({ sipCode: 486, sipReason: 'Busy Here', destination: box1.uri, attempt: 1, time: T0 + 3000 });
    expect(out.cdr[0]).toMatchObject({ answered: null, ended: T0 + 3000, setupMs: null, durationSec: 0, durationMs: 0, endReason: 'failed', sipCode: 486, destination: box1.uri });
    expect(a.stats().activeCalls).toBe(0);
  });

  it('a cancelled call: CANCEL accounted, 487 in missed calls, CDR cancelled', () => {
    const { a, out } = setup();
    const f = facts();
    feed(a, [
      { type: 'start', facts: f, auth: alice, at: T0 },
      { type: 'transaction', facts: facts({ method: 'CANCEL' }), status: 200, reason: 'OK', at: T0 + 4000 },
      { type: 'failed', facts: f, auth: alice, target: box1, status: 487, reason: 'Request Terminated', at: T0 + 4010, cancelled: true },
    ]);
    expect(out.acc).toHaveLength(1);
    expect(out.acc[0]).toMatchObject({ method: 'CANCEL', sipCode: 200, accountcode: '4242424242', authMethod: 'digest' });
    expect(out.missed.map((r) => r.sipCode)).toEqual([487]);
    expect(out.cdr[0]).toMatchObject({ endReason: 'cancelled', sipCode: 487, durationSec: 0 });
  });

  it('does not account CANCEL when reportCancels is off (the CDR still says cancelled)', () => {
    const { a, out } = setup({ reportCancels: false });
    const f = facts();
    feed(a, [
      { type: 'start', facts: f, auth: alice, at: T0 },
      { type: 'transaction', facts: facts({ method: 'CANCEL' }), status: 200, reason: 'OK', at: T0 + 4000 },
      { type: 'failed', facts: f, auth: alice, target: box1, status: 487, reason: 'Request Terminated', at: T0 + 4010, cancelled: true },
    ]);
    expect(out.acc).toEqual([]);
    expect(out.cdr[0]!.endReason).toBe('cancelled');
  });

  it('failover over two boxes then failure: one row per attempt, whether or not the last attempt was also reported as attempt-failed', () => {
    for (const reportLast of [false, true]) {
      const { a, out } = setup();
      const f = facts();
      const evs: CallEvent[] = [
        { type: 'start', facts: f, auth: alice, at: T0 },
        { type: 'attempt-failed', facts: f, auth: alice, target: box1, status: 408, reason: 'Request Timeout', at: T0 + 4000, attempt: 1 },
      ];
      if (reportLast) evs.push({ type: 'attempt-failed', facts: f, auth: alice, target: box2, status: 503, reason: 'Service Unavailable', at: T0 + 4100, attempt: 2 });
      evs.push({ type: 'failed', facts: f, auth: alice, target: box2, status: 503, reason: 'Service Unavailable', at: T0 + 4100, cancelled: false });
      feed(a, evs);
      expect(out.missed.map((r) => [r.attempt, r.sipCode, r.destination])).toEqual([[1, 408, box1.uri], [2, 503, box2.uri]]);
      expect(new Set(out.missed.map((r) => r.key)).size).toBe(2);
      expect(out.cdr).toHaveLength(1);
      expect(out.cdr[0]).toMatchObject({ endReason: 'failed', sipCode: 503, destination: box2.uri });
    }
  });

  it('a 2xx that crosses the CANCEL: the call ends with an answered CDR under the same key, replacing the cancelled one', () => {
    const { a, out } = setup();
    const f = facts();
    feed(a, [
      { type: 'start', facts: f, auth: alice, at: T0 },
      { type: 'transaction', facts: facts({ method: 'CANCEL' }), status: 200, reason: 'OK', at: T0 + 3000 },
      { type: 'failed', facts: f, auth: alice, target: box1, status: 487, reason: 'Request Terminated', at: T0 + 3001, cancelled: true, attempt: 1 },
      { type: 'answered', facts: f, auth: alice, target: box1, status: 200, reason: 'OK', at: T0 + 3002, dialog: dialog(f, box1, T0, T0 + 3002) },
      { type: 'ended', callId: f.callId, fromTag: f.fromTag, toTag: 'as5e1b2c', reason: 'bye-caller', at: T0 + 3002 + 4000 },
    ]);
    expect(out.cdr.map((r) => [r.endReason, r.durationSec])).toEqual([['cancelled', 0], ['bye-caller', 4]]);
    expect(out.cdr[1]!.key).toBe(out.cdr[0]!.key);
    expect(cdrTable.onDuplicate).toBe('update');
  });

  it('the proxy style: attempt-failed for the last hop, then failed with another status for the same attempt: one row', () => {
    const { a, out } = setup();
    const f = facts();
    feed(a, [
      { type: 'start', facts: f, auth: alice, at: T0 },
      { type: 'attempt-failed', facts: f, auth: alice, target: box1, status: 408, reason: 'Request Timeout', at: T0 + 4000, attempt: 1 },
      { type: 'failed', facts: f, auth: alice, target: box1, status: 503, reason: 'Service Unavailable', at: T0 + 4000, cancelled: false, attempt: 1 },
    ]);
    expect(out.missed.map((r) => [r.attempt, r.sipCode])).toEqual([[1, 408]]);
    expect(out.cdr[0]).toMatchObject({ endReason: 'failed', sipCode: 503 });
  });

  it('a call refused before any box (no destination): missed row without destination, CDR failed', () => {
    const { a, out } = setup();
    const f = facts();
    feed(a, [
      { type: 'start', facts: f, auth: alice, at: T0 },
      { type: 'failed', facts: f, auth: alice, target: undefined, status: 503, reason: 'No Destination', at: T0 + 1, cancelled: false },
    ]);
    expect(out.missed[0]).toMatchObject({ attempt: 1, destination: '', sipCode: 503 });
    expect(out.cdr[0]).toMatchObject({ endReason: 'failed', destination: '' });
  });
});

describe('call state', () => {
  it('keeps calls with the same Call-ID but different From tags apart', () => {
    const { a, out } = setup();
    feed(a, answeredCall(facts({ fromTag: 'x1' }), { answerAfterMs: 10, talkMs: 2000 }).slice(0, 2));
    feed(a, answeredCall(facts({ fromTag: 'x2' }), { answerAfterMs: 10, talkMs: 7000 }).slice(0, 2));
    expect(a.stats().activeCalls).toBe(2);
    a.onCallEvent({ type: 'ended', callId: facts().callId, fromTag: 'x2', toTag: 'as5e1b2c', reason: 'bye-caller', at: T0 + 7010 });
    expect(out.cdr.map((r) => [r.fromTag, r.durationSec])).toEqual([['x2', 7]]);
    expect(a.stats().activeCalls).toBe(1);
  });

  it('reaps an answered call whose end never comes after the dialog lifetime, with a timeout CDR', () => {
    const { a, out } = setup({ maxLifetimeSec: 3600 });
    feed(a, answeredCall(facts(), { answerAfterMs: 1000, talkMs: 0 }).slice(0, 2));
    expect(a.reap(T0 + 1000 + 3600_000)).toBe(0);
    expect(a.reap(T0 + 1000 + 3600_000 + 61_000)).toBe(1);
    expect(out.cdr[0]).toMatchObject({ endReason: 'timeout', durationSec: 3600 }); // ends at the lifetime, not at the reaping
    expect(a.stats()).toMatchObject({ activeCalls: 0, reaped: 1 });
  });

  it('reaps a call that never got a final answer after the setup limit', () => {
    const { a, out } = setup();
    a.onCallEvent({ type: 'start', facts: facts(), auth: alice, at: T0 });
    expect(a.reap(T0 + 599_000)).toBe(0);
    expect(a.reap(T0 + 601_000)).toBe(1);
    expect(out.cdr[0]).toMatchObject({ endReason: 'timeout', answered: null, durationSec: 0 });
  });

  it('holds at most maxCalls calls: the oldest is reaped early with a timeout CDR', () => {
    const out: Sinks = { acc: [], missed: [], cdr: [] };
    const a = createAccounting({
      config: { acc: { reportCancels: true, logRecords: false }, dialog: { defaultMaxLifetimeSec: 3600 } }, maxCalls: 2,
      sinks: { acc: { enqueue: (r) => out.acc.push(r) }, missed: { enqueue: (r) => out.missed.push(r) }, cdr: { enqueue: (r) => out.cdr.push(r) } },
      log: silentLogger(),
    });
    open.push(a);
    for (const id of ['k1', 'k2', 'k3']) a.onCallEvent({ type: 'start', facts: facts({ callId: id }), auth: alice, at: T0 });
    expect(a.stats()).toMatchObject({ activeCalls: 2, evicted: 1 });
    expect(out.cdr.map((r) => [r.callId, r.endReason])).toEqual([['k1', 'timeout']]);
  });

  it('writes the CDR of a dialog restored after a restart from the snapshot carried by `ended`', () => {
    const { a, out } = setup();
    const f = facts();
    const d = dialog(f, box1, T0, T0 + 500);
    a.onCallEvent({ type: 'ended', callId: f.callId, fromTag: f.fromTag, toTag: d.calleeTag, reason: 'bye-callee', at: T0 + 500 + 42_400, dialog: d });
    expect(out.cdr[0]).toMatchObject({ created: T0, answered: T0 + 500, durationSec: 42, setupMs: 500, accountcode: '4242424242', srcUser: 'alice', srcDomain: 'example.com', dstUser: '4420123456', destination: '1' });
    expect(out.acc.map((r) => r.method)).toEqual(['BYE']);
    expect(a.stats().unknownEnds).toBe(1);
  });

  it('an `ended` for a call whose answer was not reported takes the answer time from the snapshot', () => {
    const { a, out } = setup();
    const f = facts();
    a.onCallEvent({ type: 'start', facts: f, auth: alice, at: T0 });
    a.onCallEvent({ type: 'ended', callId: f.callId, fromTag: f.fromTag, toTag: 'as5e1b2c', reason: 'bye-caller', at: T0 + 9000, dialog: dialog(f, box1, T0, T0 + 1000) });
    a.onCallEvent({ type: 'start', facts: facts({ callId: 'nosnap' }), auth: alice, at: T0 });
    a.onCallEvent({ type: 'ended', callId: 'nosnap', fromTag: f.fromTag, toTag: 'x', reason: 'bye-caller', at: T0 + 9000 });
    expect(out.cdr.map((r) => [r.callId, r.answered, r.durationSec, r.accountcode])).toEqual([[f.callId, T0 + 1000, 8, '4242424242'], ['nosnap', null, 0, '4242424242']]);
  });

  it('an `ended` for an unknown dialog without snapshot: BYE accounted, no invented CDR', () => {
    const { a, out } = setup();
    a.onCallEvent({ type: 'ended', callId: 'ghost', fromTag: 'a', toTag: 'b', reason: 'bye-caller', at: T0 });
    expect(out.acc).toHaveLength(1);
    expect(out.cdr).toEqual([]);
  });

  it('never throws into the proxy, even when a sink does', () => {
    const a = createAccounting({
      config: { acc: { reportCancels: true, logRecords: false }, dialog: { defaultMaxLifetimeSec: 60 } },
      sinks: { acc: { enqueue: () => { throw new Error('boom'); } }, missed: { enqueue: () => undefined }, cdr: { enqueue: () => undefined } },
      log: silentLogger(),
    });
    open.push(a);
    expect(() => feed(a, answeredCall(facts(), { answerAfterMs: 1, talkMs: 1 }))).not.toThrow();
    expect(a.stats().errors).toBe(2);
  });
});

describe('record logging', () => {
  it('logs every record through pino when acc.logRecords is on', () => {
    const lines: string[] = [];
    const log = createLogger({ level: 'info', format: 'json' }, { write: (l: string) => { lines.push(l); } });
    const out: Sinks = { acc: [], missed: [], cdr: [] };
    const a = createAccounting({
      config: { acc: { reportCancels: true, logRecords: true }, dialog: { defaultMaxLifetimeSec: 60 } },
      sinks: { acc: { enqueue: (r) => out.acc.push(r) }, missed: { enqueue: (r) => out.missed.push(r) }, cdr: { enqueue: (r) => out.cdr.push(r) } },
      log,
    });
    open.push(a);
    feed(a, answeredCall(facts(), { answerAfterMs: 5, talkMs: 2500, failover: true }));
    const recs = lines.map((l) => JSON.parse(l) as { acc: string; record: { callId: string; durationSec?: number } });
    expect(recs.map((r) => r.acc)).toEqual(['missed', 'acc', 'acc', 'cdr']);
    expect(recs[3]!.record).toMatchObject({ callId: facts().callId, durationSec: 2 });
  });
});

describe('durations and rows', () => {
  it('rounds seconds like Asterisk billsec (truncate), or half-up / ceil when configured', () => {
    expect([0, 999, 1000, 59_999, 60_000].map((ms) => durationSeconds(ms, 'floor'))).toEqual([0, 0, 1, 59, 60]);
    expect([499, 500, 1499, 1500].map((ms) => durationSeconds(ms, 'half-up'))).toEqual([0, 1, 1, 2]);
    expect([1, 1000, 1001].map((ms) => durationSeconds(ms, 'ceil'))).toEqual([1, 1, 2]);
    expect(durationSeconds(-5, 'ceil')).toBe(0);
    const { a, out } = setup({ durationRounding: 'ceil' });
    feed(a, answeredCall(facts(), { answerAfterMs: 1, talkMs: 1001 }));
    expect(out.cdr[0]!.durationSec).toBe(2);
  });

  it('maps records to rows in column order, clipping attacker-sized values and adding the callref', () => {
    const { a, out } = setup();
    const f = facts({ fromUser: 'x'.repeat(500), callId: `${'c'.repeat(300)}@h` });
    feed(a, answeredCall(f, { answerAfterMs: 1, talkMs: 1000 }));
    const cdrRow = cdrTable.toRow(out.cdr[0]!);
    const col = (name: string): unknown => cdrRow[cdrTable.columns.indexOf(name)];
    expect(cdrRow).toHaveLength(cdrTable.columns.length);
    expect(col('callref')).toBe(callRef(f.callId));
    expect((col('callid') as string).length).toBe(255);
    expect((col('src_user') as string).length).toBe(64);
    expect(col('created')).toBe('2026-11-22 08:00:00.000');
    expect(col('card_id')).toBe(1);
    const accRow = accTable.toRow(out.acc[0]!);
    expect(accRow).toHaveLength(accTable.columns.length);
    expect(missedTable.columns).toEqual(accTable.columns);
    expect(new Set([...out.acc, ...out.cdr].map((r) => r.key)).size).toBe(3);
  });
});
