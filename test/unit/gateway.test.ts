// The composition root's call-event wiring: a call restored after a restart and ended by a BYE still gets its CDR.
import { afterEach, describe, expect, it } from 'vitest';
import { createAccounting, type Accounting, type AccRecord, type CdrRecord } from '../../src/acc/index.js';
import { configSchema } from '../../src/config/schema.js';
import { Dialogs } from '../../src/dialog/dialogs.js';
import { RECORD_VERSION, dialogKey } from '../../src/dialog/record.js';
import type { DialogStateStore, LoadedState, StateLine } from '../../src/dialog/state-file.js';
import { withDialogSnapshot } from '../../src/gateway.js';
import { silentLogger } from '../../src/log.js';
import type { CallEvent, DialogInfo } from '../../src/proxy/hooks.js';

/** A state file left by the previous run, in memory. */
class SavedState implements DialogStateStore {
  readonly path = 'memory';
  constructor(private file: StateLine[]) {}
  get lines() { return this.file.length; }
  async load(): Promise<LoadedState> {
    const out: LoadedState = { records: new Map(), tombstones: new Map(), badLines: 0 };
    for (const l of this.file) if (l.op === 'up') out.records.set(l.rec.key, structuredClone(l.rec));
    return out;
  }
  append(line: StateLine) { this.file.push(structuredClone(line)); }
  async flush() {}
  async compact(lines: StateLine[]) { this.file = structuredClone(lines); }
  async close() {}
}

const answeredAt = Date.now() - 95_000;
const info: DialogInfo = {
  callId: 'restored-1@pbx', callerTag: 'caller-tag', calleeTag: 'callee-tag',
  fromHeader: '"Alice" <sip:4242424242@gw.example>;tag=caller-tag', toHeader: '<sip:19995550100@gw.example>;tag=callee-tag',
  callerContact: '<sip:4242424242@127.0.0.1:5070>', calleeContact: '<sip:ast@127.0.0.1:5080>', callerRouteSet: [], calleeRouteSet: [],
  callerHop: { ip: '127.0.0.1', port: 5070, proto: 'udp' }, calleeHop: { ip: '127.0.0.1', port: 5080, proto: 'udp' }, callerCseq: 1, calleeCseq: 0,
  recordRoute: [], accountcode: '4242424242', targetId: 'ast1', createdAt: answeredAt - 3000, answeredAt,
};

describe('gateway call-event wiring', () => {
  let dialogs: Dialogs | undefined;
  let accounting: Accounting | undefined;
  afterEach(async () => {
    await dialogs?.close();
    await accounting?.close();
  });

  it("a restored call ended by the callee's BYE gets its CDR from the dialog module's snapshot", async () => {
    const cfg = configSchema.parse({ dialog: { stateDir: '/nonexistent' } });
    dialogs = new Dialogs({
      dialog: cfg.dialog, log: silentLogger(), actions: { endDialog: async () => {} },
      store: new SavedState([{ op: 'up', rec: {
        v: RECORD_VERSION, key: dialogKey(info.callId, info.callerTag, info.calleeTag), instance: 'default', info,
        expiresAt: answeredAt + 3_600_000, maxDurationSec: null, updated: answeredAt,
      } }]),
    });
    expect(await dialogs.restore()).toBe(1);
    const cdrs: CdrRecord[] = [];
    const accs: AccRecord[] = [];
    accounting = createAccounting({
      config: { acc: { reportCancels: true, logRecords: false }, dialog: cfg.dialog }, log: silentLogger(),
      sinks: { acc: { enqueue: (r) => accs.push(r) }, missed: { enqueue: () => {} }, cdr: { enqueue: (r) => cdrs.push(r) } },
    });
    // What the proxy emits after a restart: it relayed the BYE but never saw this call's 2xx, so no snapshot.
    const bye: CallEvent = { type: 'ended', callId: info.callId, fromTag: 'callee-tag', toTag: 'caller-tag', reason: 'bye-callee', at: answeredAt + 90_000 };

    accounting.onCallEvent(withDialogSnapshot(bye, dialogs));

    expect(accs).toHaveLength(1);
    expect(cdrs).toHaveLength(1);
    expect(cdrs[0]).toMatchObject({ callId: info.callId, accountcode: '4242424242', srcUser: '4242424242', dstUser: '19995550100', durationSec: 90, endReason: 'bye-callee' });
  });

  it('leaves events that carry a snapshot, and other events, as they are', () => {
    const none = { snapshot: () => { throw new Error('not asked'); } };
    const withSnap: CallEvent = { type: 'ended', callId: 'c', fromTag: 'a', toTag: 'b', reason: 'bye-caller', at: 1, dialog: info };
    expect(withDialogSnapshot(withSnap, none)).toBe(withSnap);
    const other: CallEvent = { type: 'in-dialog', callId: 'c', fromTag: 'a', toTag: 'b', method: 'ACK', cseq: 1, fromCaller: true, at: 1 };
    expect(withDialogSnapshot(other, none)).toBe(other);
    const unknown: CallEvent = { type: 'ended', callId: 'c', fromTag: 'a', toTag: 'b', reason: 'bye-caller', at: 1 };
    expect(withDialogSnapshot(unknown, { snapshot: () => undefined })).toBe(unknown);
  });
});
