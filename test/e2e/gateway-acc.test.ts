// Accounting, credit and dialogs through the whole gateway (startGateway) over real UDP sockets and a real
// MariaDB: the rows each kind of call leaves, 402 without credit, the call limit, and calls ended with BYE on
// both sides when their credit runs out.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { SEED } from '../../src/devdb/seed.js';
import { startGateway, type Gateway } from '../../src/gateway.js';
import { silentLogger } from '../../src/log.js';
import { createTestDb, type TestDb } from '../helpers/db.js';
import { SipUa, type Behaviour } from '../helpers/sip-ua.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A card with credit for exactly `seconds` on prefix 1999 (0.06/min in 6 s blocks, so whole blocks of 0.006). */
async function cardWithSeconds(t: TestDb, id: number, seconds: number): Promise<{ user: string; ip: string }> {
  const user = `90000000${id}`;
  const ip = `127.0.0.${id}`;
  await t.db.query(
    `INSERT INTO cc_card (id, username, useralias, uipass, credit, tariff, activated, status, typepaid, creditlimit, firstname, lastname, address, city, state, country, zipcode, phone, email, fax, redial, loginkey, tag, email_notification, company_name, company_website, traffic_target)
     VALUES (?, ?, ?, 'x', ?, 1, 't', 1, 0, 0, '', '', '', '', '', '', '', '', '', '', '', '', '', '', '', '', '')`,
    [id, user, user, (seconds / 6) * 0.006]);
  await t.db.query(
    `INSERT INTO cc_sip_buddies (id_cc_card, name, accountcode, secret, username, host, regexten, callerid, context, fromuser, fromdomain, insecure, mailbox, md5secret, deny, mask, allow, musiconhold, fullcontact, setvar)
     VALUES (?, ?, ?, 'pw', ?, ?, '', '', 'a2billing', '', '', '', '', '', '', '', '', '', '', '')`, [id, user, user, user, ip]);
  return { user, ip };
}

async function rows<T = Record<string, unknown>>(t: TestDb, sql: string, params: unknown[] = []): Promise<T[]> {
  const [r] = await t.db.query(sql, params);
  return r as T[];
}

async function until<T>(fn: () => Promise<T>, ok: (v: T) => boolean, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (ok(v) || Date.now() > end) return v;
    await sleep(50);
  }
}

describe('accounting and credit through the gateway', () => {
  let t: TestDb;
  let gw: Gateway;
  let box1: SipUa;
  let box2: SipUa;
  const uas: SipUa[] = [];

  function config(extra: ConfigInput = {}): ReturnType<typeof validateConfig> {
    const dir = mkdtempSync(join(tmpdir(), 'a2b-acc-e2e-'));
    return validateConfig({
      ...extra,
      log: { level: 'silent' },
      db: { url: t.gwUrl, poolSize: 6 },
      sip: { listen: [{ proto: 'udp', host: '127.0.0.1', port: 0 }], inviteTimeoutMs: 3000, noResponseTimeoutMs: 1000 },
      auth: { nonceSecret: 'acc-e2e-nonce-secret-0123' },
      abuse: { pike: { enabled: false } },
      acc: { journalDir: join(dir, 'journal'), flushIntervalMs: 50 },
      dialog: { stateDir: join(dir, 'dialogs') },
      billing: { maxCallsPerAccount: 1, ...(extra as { billing?: object }).billing },
      dispatch: { algorithms: { 1: 'priority' } },
      reconcile: { enabled: false },
      mgmt: { enabled: false },
    });
  }

  beforeAll(async () => {
    t = await createTestDb({ seed: true });
    box1 = await SipUa.start({ name: 'box1', behaviour: { kind: 'answer', ringMs: 20 } });
    box2 = await SipUa.start({ name: 'box2', behaviour: { kind: 'answer', ringMs: 20 } });
    // box1 first (priority), box2 takes over when box1 fails.
    await t.db.query('INSERT INTO gw_dispatcher (setid, destination, priority, description) VALUES (1, ?, 10, ?), (1, ?, 5, ?)',
      [`sip:127.0.0.1:${box1.address('udp').port}`, 'box1', `sip:127.0.0.1:${box2.address('udp').port}`, 'box2']);
    gw = await startGateway({ config: config(), log: silentLogger() });
  });
  afterEach(async () => {
    while (uas.length) await uas.pop()!.close();
    box1.behaviour = { kind: 'answer', ringMs: 20 };
  });
  afterAll(async () => {
    await gw?.stop();
    await box1?.close();
    await box2?.close();
    await t?.drop();
  });

  async function bob(): Promise<SipUa> {
    const ua = await SipUa.start({ name: 'bob', host: SEED.cards.bob.sip.host });
    uas.push(ua);
    return ua;
  }
  const via = (): { host: string; port: number; proto: 'udp' } => ({ host: '127.0.0.1', port: gw.proxy.address('udp').port, proto: 'udp' });
  const ruri = (user: string): string => `sip:${user}@127.0.0.1:${gw.proxy.address('udp').port}`;

  it('an answered call leaves INVITE and BYE acc rows and one CDR with its duration and box', async () => {
    const caller = await bob();
    const call = caller.invite({ to: ruri('15551230001'), via: via() });
    expect((await call.final()).status).toBe(200);
    call.ack();
    await sleep(600);
    expect((await call.dialog!.request('BYE').final()).status).toBe(200);
    const cdr = await until(() => rows(t, 'SELECT * FROM gw_cdr WHERE callid = ?', [call.callId]), (r) => r.length > 0);
    expect(cdr).toHaveLength(1);
    expect(cdr[0]).toMatchObject({ accountcode: SEED.cards.bob.username, card_id: SEED.cards.bob.id, end_reason: 'bye-caller', sip_code: 200, auth_method: 'ip', src_ip: '127.0.0.2', dst_user: '15551230001' });
    expect(Number(cdr[0]!.duration_ms)).toBeGreaterThanOrEqual(550);
    expect(Number(cdr[0]!.duration_ms)).toBeLessThan(3000);
    expect(cdr[0]!.destination).toBe(`sip:127.0.0.1:${box1.address('udp').port}`);
    const acc = await until(() => rows(t, 'SELECT method, sip_code, accountcode FROM gw_acc WHERE callid = ? ORDER BY id', [call.callId]), (r) => r.length >= 2);
    expect(acc).toEqual([
      { method: 'INVITE', sip_code: 200, accountcode: SEED.cards.bob.username },
      { method: 'BYE', sip_code: 200, accountcode: SEED.cards.bob.username },
    ]);
  });

  it('a rejected call goes to missed calls and its CDR says failed', async () => {
    box1.behaviour = { kind: 'reject', status: 486, reason: 'Busy Here' } satisfies Behaviour;
    const caller = await bob();
    const call = caller.invite({ to: ruri('15551230002'), via: via() });
    expect((await call.final()).status).toBe(486);
    const missed = await until(() => rows(t, 'SELECT sip_code, accountcode FROM gw_missed_calls WHERE callid = ?', [call.callId]), (r) => r.length > 0);
    expect(missed).toEqual([{ sip_code: 486, accountcode: SEED.cards.bob.username }]);
    const cdr = await until(() => rows(t, 'SELECT end_reason, duration_sec, sip_code FROM gw_cdr WHERE callid = ?', [call.callId]), (r) => r.length > 0);
    expect(cdr).toEqual([{ end_reason: 'failed', duration_sec: 0, sip_code: 486 }]);
  });

  it('a failed-over call records the failed attempt and the answer on the next box', async () => {
    box1.behaviour = { kind: 'reject', status: 503, reason: 'Service Unavailable' };
    const caller = await bob();
    const call = caller.invite({ to: ruri('15551230003'), via: via() });
    expect((await call.final()).status).toBe(200);
    call.ack();
    expect((await call.dialog!.request('BYE').final()).status).toBe(200);
    const missed = await until(() => rows(t, 'SELECT sip_code, destination FROM gw_missed_calls WHERE callid = ?', [call.callId]), (r) => r.length > 0);
    expect(missed).toEqual([{ sip_code: 503, destination: `sip:127.0.0.1:${box1.address('udp').port}` }]);
    const cdr = await until(() => rows(t, 'SELECT end_reason, destination FROM gw_cdr WHERE callid = ?', [call.callId]), (r) => r.length > 0);
    expect(cdr).toEqual([{ end_reason: 'bye-caller', destination: `sip:127.0.0.1:${box2.address('udp').port}` }]);
    // box1 answered 503: the dispatcher demoted it; put it back for the next tests.
    gw.dispatch.dispatcher.setState(gw.dispatch.dispatcher.list().find((d) => d.description === 'box1')!.id, 'active');
  });

  it('a cancelled call is reported with its CANCEL and a cancelled CDR', async () => {
    box1.behaviour = { kind: 'ring' };
    const caller = await bob();
    const call = caller.invite({ to: ruri('15551230004'), via: via() });
    await call.status(180);
    expect((await call.cancel().final()).status).toBe(200);
    expect((await call.final()).status).toBe(487);
    const cdr = await until(() => rows(t, 'SELECT end_reason, sip_code FROM gw_cdr WHERE callid = ?', [call.callId]), (r) => r.length > 0);
    expect(cdr).toEqual([{ end_reason: 'cancelled', sip_code: 487 }]);
    const acc = await until(() => rows(t, "SELECT method FROM gw_acc WHERE callid = ? AND method = 'CANCEL'", [call.callId]), (r) => r.length > 0);
    expect(acc).toHaveLength(1);
  });

  it('a card without credit gets 402 and never reaches Asterisk', async () => {
    await t.db.query("UPDATE cc_sip_buddies SET host = '127.0.0.40' WHERE name = ?", [SEED.cards.dave.sip.name]);
    await gw.auth.reload();
    const ua = await SipUa.start({ name: 'dave', host: '127.0.0.40' });
    uas.push(ua);
    const before = box1.requests('INVITE').length + box2.requests('INVITE').length;
    const call = ua.invite({ to: ruri('15551230005'), via: via() });
    expect((await call.final()).status).toBe(402);
    expect(box1.requests('INVITE').length + box2.requests('INVITE').length).toBe(before);
  });

  it('holds the simultaneous-call limit per account and frees the slot when the call ends', async () => {
    const caller = await bob();
    const first = caller.invite({ to: ruri('15551230006'), via: via() });
    expect((await first.final()).status).toBe(200);
    first.ack();
    const second = caller.invite({ to: ruri('15551230007'), via: via() });
    expect((await second.final()).status).toBe(403);
    expect((await first.dialog!.request('BYE').final()).status).toBe(200);
    await sleep(50);
    const third = caller.invite({ to: ruri('15551230008'), via: via() });
    expect((await third.final()).status).toBe(200);
    third.ack();
    expect((await third.dialog!.request('BYE').final()).status).toBe(200);
  });

  it('a card with credit for 6 s at the dialled rate is ended with BYE on both sides after 6 s', async () => {
    const frank = await cardWithSeconds(t, 41, 6); // one 6 s block
    await gw.auth.reload();
    const ua = await SipUa.start({ name: 'frank', host: frank.ip });
    uas.push(ua);
    const call = ua.invite({ to: ruri('19995550001'), via: via() });
    expect((await call.final()).status).toBe(200);
    call.ack();
    const answeredAt = Date.now();
    const byeToCaller = await ua.waitRequest('BYE', 10_000);
    const byeToCallee = await box1.waitFor((m) => m.method === 'BYE' && m.callId === call.callId, 2000);
    const elapsed = Date.now() - answeredAt;
    expect(elapsed).toBeGreaterThan(5500);
    expect(elapsed).toBeLessThan(7500);
    expect(byeToCaller.callId).toBe(call.callId);
    expect(byeToCallee.callId).toBe(call.callId);
    const cdr = await until(() => rows(t, 'SELECT end_reason, duration_sec, max_duration_sec FROM gw_cdr WHERE callid = ?', [call.callId]), (r) => r.length > 0);
    expect(cdr).toEqual([{ end_reason: 'max-duration', duration_sec: 6, max_duration_sec: 6 }]);
  }, 20_000);
});
