// Billing and Dialogs wired as NOTES-dialog.md tells main.ts to: authorize gives the maximum duration, the dialog
// ends the call at answer + maximum with BYE both sides, the emitted `ended` closes the call and frees its slot.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Billing } from '../../src/billing/credit.js';
import { configSchema } from '../../src/config/schema.js';
import { createDb, type Db } from '../../src/db/pool.js';
import { SEED } from '../../src/devdb/seed.js';
import { Dialogs } from '../../src/dialog/dialogs.js';
import { silentLogger } from '../../src/log.js';
import type { Authenticated, CallEvent, DialogInfo, EndReason, RequestFacts } from '../../src/proxy/hooks.js';
import { createTestDb, type TestDb } from '../helpers/db.js';

let t: TestDb;
let gw: Db;
let dir: string;
beforeAll(async () => {
  t = await createTestDb({ seed: true });
  gw = createDb({ url: t.gwUrl, poolSize: 2 });
  dir = await mkdtemp(join(tmpdir(), 'a2b-bd-'));
  // 0.006 at 0.06/min buys one 6 s block on 1999.
  await t.db.query('UPDATE cc_card SET credit = 0.006 WHERE id = ?', [SEED.cards.erin.id]);
});
afterAll(async () => {
  await gw?.end();
  await t?.drop();
  await rm(dir, { recursive: true, force: true });
});

it('authorize → answered → max-duration BYE → ended → slot free again', async () => {
  const cfg = configSchema.parse({ billing: { safetyMarginSec: 4, maxCallsPerAccount: 1 }, dialog: { stateDir: dir } });
  const billing = new Billing({ billing: cfg.billing, dialog: cfg.dialog, db: gw, log: silentLogger() });
  const ends: Array<{ callId: string; reason: EndReason; at: number }> = [];
  const seen: CallEvent[] = [];
  const fanout = (ev: CallEvent) => { seen.push(ev); billing.onCallEvent(ev); dialogs.onCallEvent(ev); };
  const dialogs: Dialogs = new Dialogs({
    dialog: cfg.dialog, db: gw, log: silentLogger(), emit: fanout,
    actions: { endDialog: async (d, reason) => { ends.push({ callId: d.callId, reason, at: Date.now() }); } },
  });
  const authorize = async (callId: string) => {
    const dec = await billing.authorize({ callId, ruriUser: '+19995550100' }, auth);
    if (dec.kind === 'ok') dialogs.setMaxDuration(callId, dec.maxDurationSec);
    return dec;
  };
  const auth: Authenticated = { method: 'digest', accountcode: SEED.cards.erin.username, cardId: SEED.cards.erin.id };
  try {
    expect(await dialogs.restore()).toBe(0);
    const dec = await authorize('wired-1@h');
    expect(dec).toMatchObject({ kind: 'ok', maxDurationSec: 2 });
    const facts = { callId: 'wired-1@h', fromTag: 'ft1' } as unknown as RequestFacts;
    fanout({ type: 'start', facts, auth, at: Date.now() });
    const answeredAt = Date.now();
    const info: DialogInfo = {
      callId: 'wired-1@h', callerTag: 'ft1', calleeTag: 'tt1', fromHeader: '<sip:8888000005@gw>;tag=ft1', toHeader: '<sip:+19995550100@gw>;tag=tt1',
      callerContact: '<sip:8888000005@127.0.0.1:5070>', calleeContact: '<sip:ast@127.0.0.1:5080>', callerRouteSet: [], calleeRouteSet: [],
      callerHop: { ip: '127.0.0.1', port: 5070, proto: 'udp' }, calleeHop: { ip: '127.0.0.1', port: 5080, proto: 'udp' }, callerCseq: 1, calleeCseq: 0,
      recordRoute: [], accountcode: auth.accountcode, targetId: '1', createdAt: answeredAt - 500, answeredAt,
    };
    fanout({ type: 'answered', facts, auth, target: { id: '1', uri: 'sip:127.0.0.1:5080', host: '127.0.0.1', port: 5080, proto: 'udp' }, status: 200, reason: 'OK', at: answeredAt, dialog: info });

    // One call at a time for this account while the first is up.
    expect(await authorize('wired-2@h')).toMatchObject({ kind: 'reject', status: 403 });

    await new Promise((r) => setTimeout(r, 2300));
    expect(ends).toHaveLength(1);
    expect(ends[0]!.reason).toBe('max-duration');
    expect(ends[0]!.at - answeredAt).toBeGreaterThanOrEqual(2000);
    expect(seen.at(-1)).toMatchObject({ type: 'ended', callId: 'wired-1@h', reason: 'max-duration' });
    expect(billing.activeCalls(auth.accountcode)).toBe(0);
    expect(dialogs.activeCount).toBe(0);
    // The proxy's release() arriving late changes nothing.
    if (dec.kind === 'ok') dec.release?.();
    const again = await authorize('wired-3@h');
    expect(again.kind).toBe('ok');
    if (again.kind === 'ok') again.release?.();
  } finally {
    await dialogs.close();
    billing.close();
  }
});
