// The emulated Asterisk box end to end, called directly by a test UA (no gateway): SIP answers as the dialplan
// gives them, Cdr events to an AMI client, cc_call rows as A2Billing's AGI writes them, and the switchable faults.
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { CdrRecord } from '../../src/ami/cdr.js';
import { AmiClient } from '../../src/ami/client.js';
import { callRef } from '../../src/callref.js';
import { SEED } from '../../src/devdb/seed.js';
import { EmulatedAsterisk } from '../../src/emulator/asterisk.js';
import { silentLogger } from '../../src/log.js';
import { createTestDb, type TestDb } from '../helpers/db.js';
import { SipUa, type HostPort } from '../helpers/sip-ua.js';

let t: TestDb;
let ast: EmulatedAsterisk;
let ua: SipUa;
let ami: AmiClient;
const cdrs: CdrRecord[] = [];
let box: HostPort;

beforeAll(async () => {
  t = await createTestDb({ seed: true });
  ast = new EmulatedAsterisk({ name: 'ast1', db: t.db, log: silentLogger(), uniqueIdBase: 1795320443, t1Ms: 100,
    amiUsers: [{ username: 'gateway', secret: 'gateway-secret', read: ['cdr'] }] });
  const { ami: a } = await ast.start();
  box = { ...ast.sipAddress('udp'), proto: 'udp' };
  ua = await SipUa.start({ name: 'gw' });
  ami = new AmiClient({ box: 'ast1', host: a.host, port: a.port, username: 'gateway', secret: 'gateway-secret', reconnectMinMs: 50, reconnectMaxMs: 100 });
  ami.on('cdr', (r) => cdrs.push(r));
  ami.start();
  await ami.whenUp(3000);
});
afterAll(async () => {
  await ami?.stop();
  await ua?.close();
  await ast?.stop();
  await t?.drop();
});

async function ccCalls(where = '1=1', args: unknown[] = []): Promise<Array<Record<string, unknown>>> {
  const [r] = await t.db.query(`SELECT id, sessionid, uniqueid, card_id, nasipaddress, sessiontime, real_sessiontime, sessionbill, terminatecauseid,
    calledstation, src, dnid, a2b_custom1, id_ratecard FROM cc_call WHERE ${where} ORDER BY id`, args);
  return r as Array<Record<string, unknown>>;
}

function call(to: string, headers: Array<[string, string]>, callId?: string) {
  return ua.invite({ to: `sip:${to}@${box.host}:${box.port}`, via: box, from: `sip:33123456789@${ua.host}`, headers, callId });
}

/** The box's BYE for one call (waitRequest would return any earlier BYE). */
const byeFor = (callId: string) => ua.waitFor((m) => m.isRequest && m.method === 'BYE' && m.callId === callId, 3000);

async function cdrFor(callId: string, count = 1): Promise<CdrRecord[]> {
  for (let i = 0; i < 200; i++) {
    const got = cdrs.filter((c) => c.sipCallId === callId || (c.userField === '' && c.sipCallId === '' && callId === ''));
    if (got.length >= count) return got;
    await sleep(10);
  }
  throw new Error(`no Cdr for ${callId}`);
}

describe('calls the dialplan way', () => {
  test('answered: 180/200, BYE from the box after the talk time, a Cdr and a cc_call rated by longest prefix', async () => {
    ast.setBehaviour({ kind: 'answer', ringMs: 50, talkMs: 1100 });
    const callId = `ans-${Date.now()}@gw.test`;
    const c = call('442071234567', [['P-Accountcode', SEED.cards.alice.username], ['X-A2B-Callref', callRef(callId)]], callId);
    expect((await c.final()).status).toBe(200);
    expect(c.responses.map((r) => r.status)).toContain(180);
    c.ack();
    await byeFor(callId);
    await ast.idle();
    const rec = ast.record.calls.find((x) => x.callId === callId)!;
    expect(rec).toMatchObject({ outcome: 'answered', endedBy: 'callee', accountCode: '4242424242', cardId: SEED.cards.alice.id,
      uniqueId: expect.stringMatching(/^1795320443\.\d+$/), channel: expect.stringMatching(/^PJSIP\/gateway-[0-9a-f]{8}$/) });
    const [cc] = await ccCalls('uniqueid = ?', [rec.uniqueId]);
    // 4420 beats 44: 1 s answered → billed as the 30 s initial block at 0.03/min.
    expect(rec.ccCalls[0]).toMatchObject({ billedSeconds: 30 });
    expect(cc).toMatchObject({ sessionid: rec.channel, card_id: 1, nasipaddress: '', sessiontime: 30, real_sessiontime: 1,
      terminatecauseid: 1, calledstation: '442071234567', dnid: '442071234567', src: '33123456789', a2b_custom1: callRef(callId) });
    expect(Number(cc!.sessionbill)).toBeCloseTo(0.015, 5);
    const [cdr] = await cdrFor(callId);
    expect(cdr).toMatchObject({ box: 'ast1', uniqueId: rec.uniqueId, channel: rec.channel, accountCode: '4242424242',
      userField: callId, sipCallId: callId, disposition: 'ANSWERED', billableSeconds: 1, lastApp: 'Dial' });
  });

  test('over TCP on the same port as UDP: answered, BYE from the box on the connection', async () => {
    expect(ast.sipAddress('tcp').port).toBe(box.port);
    ast.setBehaviour({ kind: 'answer', ringMs: 0, talkMs: 80 });
    const tcp: HostPort = { ...box, proto: 'tcp' };
    const callId = `tcp-${Date.now()}@gw.test`;
    const c = ua.invite({ to: `sip:15551234567@${box.host}:${box.port};transport=tcp`, via: tcp, from: `sip:100@${ua.host}`,
      headers: [['P-Accountcode', SEED.cards.alice.username]], callId });
    expect((await c.final()).status).toBe(200);
    c.ack();
    const bye = await byeFor(callId);
    expect(bye.source.proto).toBe('tcp');
    await ast.idle();
    expect(ast.record.calls.at(-1)).toMatchObject({ callId, outcome: 'answered', endedBy: 'callee' });
  });

  test('the caller hangs up: the box answers the BYE with 200', async () => {
    ast.setBehaviour({ kind: 'answer', ringMs: 0, talkMs: null });
    const c = call('15551234567', [['P-Accountcode', SEED.cards.bob.username]]);
    expect((await c.final()).status).toBe(200);
    c.ack();
    await sleep(50);
    const bye = c.dialog!.request('BYE');
    expect((await bye.final()).status).toBe(200);
    await ast.idle();
    expect(ast.record.calls.at(-1)).toMatchObject({ outcome: 'answered', endedBy: 'caller', cardId: 2 });
    const [cc] = await ccCalls('uniqueid = ?', [ast.record.calls.at(-1)!.uniqueId]);
    expect(cc).toMatchObject({ terminatecauseid: 1, sessiontime: 0, card_id: 2 }); // under a second: nothing billed
  });

  test('no P-Accountcode: 403 like Hangup(21), a Cdr without account code, no cc_call', async () => {
    ast.setBehaviour({ kind: 'answer', ringMs: 0, talkMs: 100 });
    const before = (await ccCalls()).length;
    const c = call('15551234567', []);
    expect((await c.final()).status).toBe(403);
    await ast.idle();
    const rec = ast.record.calls.at(-1)!;
    expect(rec).toMatchObject({ outcome: 'refused', cardId: null, ccCalls: [] });
    expect(rec.cdrs).toEqual([expect.objectContaining({ disposition: 'NO ANSWER', deliveredTo: 1 })]);
    expect((await ccCalls()).length).toBe(before);
  });

  test('busy → 486 and a cc_call with terminatecauseid 2; overloaded → 503 and nothing else', async () => {
    ast.setBehaviour({ kind: 'busy', ringMs: 20 });
    const c = call('15551234567', [['P-Accountcode', SEED.cards.alice.username]]);
    expect((await c.final()).status).toBe(486);
    await ast.idle();
    const busy = ast.record.calls.at(-1)!;
    expect((await ccCalls('uniqueid = ?', [busy.uniqueId]))[0]).toMatchObject({ terminatecauseid: 2, sessiontime: 0 });
    ast.setBehaviour({ kind: 'overloaded' });
    const before = (await ccCalls()).length;
    const o = call('15551234567', [['P-Accountcode', SEED.cards.alice.username]]);
    expect((await o.final()).status).toBe(503);
    await ast.idle();
    expect(ast.record.calls.at(-1)).toMatchObject({ outcome: 'overloaded', cdrs: [], ccCalls: [] });
    expect((await ccCalls()).length).toBe(before);
  });

  test('CANCEL while ringing → 487 and cancel cause; no answer → 480 and cause 3; fail → the status and cause 6', async () => {
    ast.setBehaviour({ kind: 'answer', ringMs: 5000, talkMs: 100 });
    const c = call('15551234567', [['P-Accountcode', SEED.cards.alice.username]]);
    await c.status(180);
    expect((await c.cancel().final()).status).toBe(200);
    expect((await c.final()).status).toBe(487);
    await ast.idle();
    expect(ast.record.calls.at(-1)).toMatchObject({ outcome: 'cancelled', endedBy: 'caller' });
    expect(ast.record.calls.at(-1)!.ccCalls[0]).toMatchObject({ cause: 4, sessiontime: 0 });
    ast.setBehaviour({ kind: 'noanswer', ringMs: 30 });
    expect((await call('15551234567', [['P-Accountcode', SEED.cards.alice.username]]).final()).status).toBe(480);
    ast.setBehaviour({ kind: 'fail', status: 404 });
    expect((await call('15551234567', [['P-Accountcode', SEED.cards.alice.username]]).final()).status).toBe(404);
    await ast.idle();
    expect(ast.record.calls.slice(-2).map((x) => `${x.outcome}/${x.ccCalls[0]!.cause}/${x.cdrs[0]!.disposition}`))
      .toEqual(['noanswer/3/NO ANSWER', 'failed/6/FAILED']);
  });

  test('an unknown account code: the AGI writes no cc_call, the Cdr still carries the account code', async () => {
    ast.setBehaviour({ kind: 'answer', ringMs: 0, talkMs: 50 });
    const c = call('15551234567', [['P-Accountcode', SEED.handmade.accountcode]]);
    expect((await c.final()).status).toBe(200);
    c.ack();
    await byeFor(c.callId);
    await ast.idle();
    expect(ast.record.calls.at(-1)).toMatchObject({ cardId: null, ccCalls: [], cdrs: [expect.objectContaining({ disposition: 'ANSWERED' })] });
  });

  test('a retry inside one call: two cc_call rows (uniqueid + 1000000000) and two Cdr sequences', async () => {
    ast.setBehaviour({ kind: 'answer', ringMs: 0, talkMs: 50, failedAttempts: ['busy'] });
    const callId = `retry-${Date.now()}@gw.test`;
    const c = call('15551234567', [['P-Accountcode', SEED.cards.alice.username]], callId);
    expect((await c.final()).status).toBe(200);
    c.ack();
    await byeFor(callId);
    await ast.idle();
    const rec = ast.record.calls.find((x) => x.callId === callId)!;
    const [int, frac] = rec.uniqueId.split('.');
    expect(rec.ccCalls.map((x) => `${x.uniqueId}/${x.cause}`)).toEqual([`${rec.uniqueId}/2`, `${Number(int) + 1_000_000_000}.${frac}/1`]);
    const got = await cdrFor(callId, 2);
    expect(got.map((x) => x.disposition)).toEqual(['BUSY', 'ANSWERED']);
    expect(got[1]!.sequence).toBe(got[0]!.sequence + 1);
  });
});

describe('faults', () => {
  test('drop cc_call, skew, wrong card, bypass and AMI disconnect are applied and recorded', async () => {
    ast.setBehaviour({ kind: 'answer', ringMs: 0, talkMs: 50 });
    const run = async (id: string): Promise<string> => {
      const c = call('15551234567', [['P-Accountcode', SEED.cards.alice.username]], id);
      expect((await c.final()).status).toBe(200);
      c.ack();
      await byeFor(id);
      await ast.idle();
      return id;
    };
    ast.setFaults({ dropCcCall: 'all' });
    await run(`f1-${Date.now()}@gw`);
    expect(ast.record.calls.at(-1)).toMatchObject({ faults: ['drop-cc_call'], ccCalls: [] });
    ast.setFaults({ skewDurationSec: 7 });
    await run(`f2-${Date.now()}@gw`);
    expect(ast.record.calls.at(-1)!.faults).toEqual(['skew:7']);
    expect(ast.record.calls.at(-1)!.ccCalls[0]).toMatchObject({ realSessiontime: 7, sessiontime: 60, billedSeconds: 60 });
    ast.setFaults({ wrongCardAccountCode: SEED.cards.bob.username });
    await run(`f3-${Date.now()}@gw`);
    expect(ast.record.calls.at(-1)).toMatchObject({ cardId: 1, billedCardId: 2, faults: ['wrong-card:5555000002'] });
    ast.setFaults({});
    const bypass = await ast.injectBypassCall({ accountCode: SEED.cards.bob.username, toUser: '4420999', talkSec: 40 });
    expect(bypass).toMatchObject({ bypass: true, callref: null, cardId: 2 });
    expect(bypass.ccCalls[0]).toMatchObject({ sessiontime: 42, billedSeconds: 42, realSessiontime: 40 });
    expect((await cdrFor(bypass.callId))[0]).toMatchObject({ billableSeconds: 40, accountCode: '5555000002' });
    const down = new Promise((r) => ami.once('down', r));
    ast.dropAmi(400);
    await down;
    const lost = await run(`f4-${Date.now()}@gw`);
    expect(ast.record.calls.at(-1)!.cdrs[0]!.deliveredTo).toBe(0);
    expect(ast.record.amiDrops).toHaveLength(1);
    await ami.whenUp(3000);
    expect(cdrs.some((c) => c.sipCallId === lost)).toBe(false);
    expect(ast.record.errors).toEqual([]);
  });
});
