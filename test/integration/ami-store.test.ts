// AMI → MariaDB: Cdr events from the emulated Asterisk stored idempotently in gw_ami_cdr (duplicates ignored,
// several Sequence per UniqueID kept), connection intervals in gw_ami_session, nothing lost across a MySQL outage,
// and the backfill paths (Master.csv, the box's cdr table, automatic gap fill after a reconnect).
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { backfillCsv, backfillFromCdrTable } from '../../src/ami/backfill.js';
import { AmiConnector } from '../../src/ami/connector.js';
import { AmiStore } from '../../src/ami/store.js';
import { configSchema } from '../../src/config/schema.js';
import { createDb, type Db } from '../../src/db/pool.js';
import { EmulatedAmiServer } from '../../src/emulator/ami-server.js';
import { cdrEventFields, type EmuCdr } from '../../src/emulator/cdr-event.js';
import { silentLogger } from '../../src/log.js';
import { createTestDb, type TestDb } from '../helpers/db.js';

let t: TestDb;
let gw: Db;
let tmp: string;
const log = silentLogger();

beforeAll(async () => {
  t = await createTestDb();
  gw = createDb({ url: t.gwUrl, poolSize: 3 });
  tmp = await mkdtemp(join(tmpdir(), 'ami-store-'));
});
afterAll(async () => {
  await gw.end();
  await t.drop();
  await rm(tmp, { recursive: true, force: true });
});

async function until(cond: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await sleep(20);
  }
}

const cdr = (n: number, over: Partial<EmuCdr> = {}): EmuCdr => ({
  accountCode: '4242424242', source: '33123456789', destination: '15551234567', destinationContext: 'from-gateway',
  callerId: '"" <33123456789>', channel: `PJSIP/gateway-0000000${n}`, destinationChannel: '', lastApplication: 'Hangup',
  lastData: '', startTime: '2026-11-22 04:07:23', answerTime: '2026-11-22 04:07:24', endTime: '2026-11-22 04:07:30',
  duration: 7, billableSeconds: 6, disposition: 'ANSWERED', amaFlags: 'DOCUMENTATION', uniqueId: `1795320443.${n}`,
  userField: `call-${n}@gw`, extras: { LinkedID: `1795320443.${n}`, Sequence: '0', SIPCallID: `call-${n}@gw`, TalkTime: '', DialStatus: '' },
  ...over,
});

async function rows(box: string): Promise<Array<Record<string, unknown>>> {
  const [r] = await t.db.query('SELECT * FROM gw_ami_cdr WHERE box = ? ORDER BY uniqueid, sequence', [box]);
  return r as Array<Record<string, unknown>>;
}
async function sessions(box: string): Promise<Array<Record<string, unknown>>> {
  const [r] = await t.db.query('SELECT * FROM gw_ami_session WHERE box = ? ORDER BY connected_at, id', [box]);
  return r as Array<Record<string, unknown>>;
}

async function setup(box: string, journal: string, amiOver: Record<string, unknown> = {}, boxOver: Record<string, unknown> = {}) {
  const ast = new EmulatedAmiServer({ users: [{ username: 'gw', secret: 'gw-secret' }] });
  await ast.start();
  const config = configSchema.parse({
    ami: { boxes: [{ name: box, host: '127.0.0.1', port: ast.port, username: 'gw', secret: 'gw-secret', ...boxOver }],
      pingIntervalMs: 1000, reconnectMinMs: 20, reconnectMaxMs: 50, sessionTouchMs: 100, gapMarginSec: 0, ...amiOver },
  });
  const store = await AmiStore.open({ db: gw, log, journalDir: join(tmp, journal), flushIntervalMs: 20, retryMinMs: 20, retryMaxMs: 100, instance: 'test-gw' });
  const connector = new AmiConnector({ ami: config.ami, store, log, db: gw });
  connector.start();
  await connector.client(box)!.whenUp(3000);
  return {
    ast, store, connector,
    async close() { await connector.stop(); await store.close(); await ast.stop(); },
  };
}

describe('gw_ami_cdr from AMI', () => {
  test('stored once per (box, UniqueID, Sequence): duplicates ignored, several Sequence of one call kept', async () => {
    const h = await setup('box-a', 'a');
    h.ast.postEvent(cdrEventFields(cdr(1)));
    h.ast.postEvent(cdrEventFields(cdr(1))); // the same event again (e.g. a replay)
    h.ast.postEvent(cdrEventFields(cdr(1, { destinationChannel: 'PJSIP/trunk-00000002', lastApplication: 'Dial', disposition: 'BUSY',
      billableSeconds: 0, extras: { LinkedID: '1795320443.1', Sequence: '1', SIPCallID: 'call-1@gw', TalkTime: '', DialStatus: 'BUSY' } })));
    h.ast.postEvent(cdrEventFields(cdr(2)));
    await until(async () => (await rows('box-a')).length === 3);
    await h.store.flush();
    await sleep(50);
    const r = await rows('box-a');
    expect(r.map((x) => `${x.uniqueid}/${x.sequence}/${x.disposition}`)).toEqual(['1795320443.1/0/ANSWERED', '1795320443.1/1/BUSY', '1795320443.2/0/ANSWERED']);
    expect(r[0]).toMatchObject({ accountcode: '4242424242', start_time: '2026-11-22 04:07:23', answer_time: '2026-11-22 04:07:24',
      end_time: '2026-11-22 04:07:30', duration: 7, billsec: 6, sip_callid: 'call-1@gw', userfield: 'call-1@gw', origin: 'ami',
      channel: 'PJSIP/gateway-00000001', clid: '"" <33123456789>' });
    expect(h.store.stats().cdr.duplicates).toBeGreaterThanOrEqual(1);
    await h.close();
  });

  test('a box clock in another zone: times stored in UTC', async () => {
    const h = await setup('box-tz', 'tz', {}, { timezone: 'America/New_York' });
    h.ast.postEvent(cdrEventFields(cdr(5, { startTime: '2026-07-01 12:00:00', answerTime: '', endTime: '2026-07-01 12:00:10', billableSeconds: 0, disposition: 'NO ANSWER' })));
    await until(async () => (await rows('box-tz')).length === 1);
    expect((await rows('box-tz'))[0]).toMatchObject({ start_time: '2026-07-01 16:00:00', answer_time: null, end_time: '2026-07-01 16:00:10' });
    await h.close();
  });
});

describe('gw_ami_session', () => {
  test('each connection interval is a row: a drop ends one, the reconnect opens the next, shutdown ends the last', async () => {
    const h = await setup('box-s', 's');
    await until(async () => (await sessions('box-s')).length === 1);
    await sleep(250); // touched while up: the end moves forward
    expect(h.connector.status()).toEqual([expect.objectContaining({ box: 'box-s', up: true, state: 'up', since: expect.any(Number), cdrs: 0 })]);
    const [open] = await sessions('box-s');
    expect(open).toMatchObject({ instance: 'test-gw', reason: 'up' });
    expect(String(open!.disconnected_at) > String(open!.connected_at)).toBe(true);
    const down = new Promise((r) => h.connector.client('box-s')!.once('down', r));
    h.ast.dropConnections(150);
    await down;
    await h.connector.client('box-s')!.whenUp(3000);
    await until(async () => (await sessions('box-s')).length === 2);
    await h.close();
    const s = await sessions('box-s');
    expect(s.map((x) => x.reason)).toEqual(['connection closed by the box', 'stopped']);
    expect(String(s[0]!.disconnected_at) <= String(s[1]!.connected_at)).toBe(true);
    expect(s.every((x) => x.disconnected_at !== null)).toBe(true);
  });
});

describe('MySQL outage', () => {
  test('Cdr events received while the gateway user is locked out all land once MySQL is back', async () => {
    const h = await setup('box-o', 'o');
    h.ast.postEvent(cdrEventFields(cdr(1)));
    await until(async () => (await rows('box-o')).length === 1);
    await t.db.query('ALTER USER ?@? ACCOUNT LOCK', [t.gwUser, '%']);
    const [procs] = await t.db.query('SELECT ID AS id FROM information_schema.PROCESSLIST WHERE USER = ?', [t.gwUser]);
    for (const p of procs as Array<{ id: number }>) await t.db.query(`KILL CONNECTION ${Number(p.id)}`).catch(() => undefined);
    for (let n = 2; n <= 40; n++) h.ast.postEvent(cdrEventFields(cdr(n)));
    await until(() => h.store.stats().cdr.writeErrors > 0 && h.store.stats().cdr.journalRecords >= 39);
    expect((await rows('box-o')).length).toBe(1);
    await t.db.query('ALTER USER ?@? ACCOUNT UNLOCK', [t.gwUser, '%']);
    await until(async () => (await rows('box-o')).length === 40, 15_000);
    await until(() => h.store.stats().cdr.journalRecords === 0);
    await h.close();
    expect((await rows('box-o')).map((r) => r.uniqueid)).toEqual(Array.from({ length: 40 }, (_, i) => `1795320443.${i + 1}`).sort());
  });
});

describe('backfill', () => {
  const csvLine = (n: number, seq?: number): string =>
    `"4242424242","33123456789","15551234567","from-gateway","""Alice"" <33123456789>","PJSIP/gateway-0000000${n}","","Hangup","",` +
    `"2026-11-22 04:07:23","2026-11-22 04:07:24","2026-11-22 04:07:30",7,6,"ANSWERED","DOCUMENTATION","1795320443.${n}","call-${n}@gw"` +
    (seq === undefined ? '' : `,"","1795320443.${n}","${seq}"`);

  test('Master.csv: stored with origin backfill, a leg AMI already delivered is recognised, a rerun adds nothing', async () => {
    const h = await setup('box-c', 'c');
    h.ast.postEvent(cdrEventFields(cdr(1))); // call 1 arrived over AMI (Sequence 0)
    await until(async () => (await rows('box-c')).length === 1);
    await h.close();
    const file = join(tmp, 'Master.csv');
    await writeFile(file, [csvLine(1), csvLine(2), 'garbage,"', csvLine(3, 4), ''].join('\r\n'));
    const r1 = await backfillCsv({ db: gw, box: 'box-c', file });
    expect(r1).toMatchObject({ read: 3, inserted: 2, duplicates: 0, alreadyFromAmi: 1 });
    expect(r1.errors).toEqual([{ line: 3, message: expect.stringContaining('unterminated') }]);
    const r = await rows('box-c');
    expect(r.map((x) => `${x.uniqueid}/${x.origin}`)).toEqual(['1795320443.1/ami', '1795320443.2/backfill', '1795320443.3/backfill']);
    expect(Number(r[1]!.sequence)).toBeLessThan(0);
    expect(r[2]).toMatchObject({ sequence: 4, clid: '"Alice" <33123456789>', sip_callid: 'call-3@gw' });
    const r2 = await backfillCsv({ db: gw, box: 'box-c', file });
    expect(r2).toMatchObject({ read: 3, inserted: 0, duplicates: 2, alreadyFromAmi: 1 });
    await expect(backfillCsv({ db: gw, box: 'box-c', file: join(tmp, 'missing.csv') })).rejects.toMatchObject({ code: 'GW_ERR_AMI_BACKFILL' });
  });

  const CDR_DDL = `CREATE TABLE IF NOT EXISTS cdr (calldate datetime NOT NULL, clid varchar(80) NOT NULL DEFAULT '', src varchar(80) NOT NULL DEFAULT '',
    dst varchar(80) NOT NULL DEFAULT '', dcontext varchar(80) NOT NULL DEFAULT '', channel varchar(80) NOT NULL DEFAULT '',
    dstchannel varchar(80) NOT NULL DEFAULT '', lastapp varchar(80) NOT NULL DEFAULT '', lastdata varchar(80) NOT NULL DEFAULT '',
    duration int NOT NULL DEFAULT 0, billsec int NOT NULL DEFAULT 0, disposition varchar(45) NOT NULL DEFAULT '', amaflags int NOT NULL DEFAULT 0,
    accountcode varchar(20) NOT NULL DEFAULT '', uniqueid varchar(32) NOT NULL DEFAULT '', userfield varchar(255) NOT NULL DEFAULT '',
    linkedid varchar(32) NOT NULL DEFAULT '', sequence int NOT NULL DEFAULT 0, peeraccount varchar(20) NOT NULL DEFAULT '', KEY calldate (calldate))`;
  const cdrRow = (uid: string, calldate: string, seq: number): unknown[] =>
    [calldate, '"" <33123456789>', '33123456789', '15551234567', 'from-gateway', 'PJSIP/gateway-00000009', '', 'Hangup', '', 7, 6, 'ANSWERED', 3, '5555000002', uid, `${uid}@gw`, uid, seq];

  test('the box cdr table: a window is read in the box zone and stored', async () => {
    await t.db.query(CDR_DDL);
    await t.db.query('INSERT INTO cdr (calldate, clid, src, dst, dcontext, channel, dstchannel, lastapp, lastdata, duration, billsec, disposition, amaflags, accountcode, uniqueid, userfield, linkedid, sequence) VALUES ?',
      [[cdrRow('1795400000.1', '2026-11-22 09:00:00', 0), cdrRow('1795400000.2', '2026-11-22 09:30:00', 3), cdrRow('1795400000.3', '2026-11-22 11:00:00', 0)]]);
    const source = createDb({ url: t.url, poolSize: 1 });
    // Paris is UTC+1 in November: local 09:00-10:00 is 08:00-09:00 UTC.
    const res = await backfillFromCdrTable({ db: gw, source, box: 'box-t', timezone: 'Europe/Paris',
      fromMs: Date.parse('2026-11-22T08:00:00Z'), toMs: Date.parse('2026-11-22T09:00:00Z') });
    await source.end();
    expect(res).toMatchObject({ read: 2, inserted: 2 });
    const r = await rows('box-t');
    expect(r.map((x) => `${x.uniqueid}/${x.sequence}/${x.start_time}/${x.end_time}/${x.answer_time}/${x.amaflags}`)).toEqual([
      '1795400000.1/0/2026-11-22 08:00:00/2026-11-22 08:00:07/2026-11-22 08:00:01/DOCUMENTATION',
      '1795400000.2/3/2026-11-22 08:30:00/2026-11-22 08:30:07/2026-11-22 08:30:01/DOCUMENTATION',
    ]);
  });

  test('after a gateway restart the interval since the last recorded session is filled from the cdr table', async () => {
    await t.db.query(CDR_DDL);
    const iso = (ms: number): string => new Date(ms).toISOString().slice(0, 19).replace('T', ' ');
    const now = Date.now();
    await t.db.query("INSERT INTO gw_ami_session (box, instance, connected_at, disconnected_at, reason) VALUES ('box-r', 'old', ?, ?, 'gateway shutdown')",
      [iso(now - 600_000), iso(now - 60_000)]);
    await t.db.query('INSERT INTO cdr (calldate, clid, src, dst, dcontext, channel, dstchannel, lastapp, lastdata, duration, billsec, disposition, amaflags, accountcode, uniqueid, userfield, linkedid, sequence) VALUES ?',
      [[cdrRow('1795600000.1', iso(now - 30_000), 0), cdrRow('1795600000.2', iso(now - 900_000), 0)]]);
    const h = await setup('box-r', 'r', { gapMarginSec: 5 }, { cdrDbUrl: t.url });
    await until(async () => (await rows('box-r')).length === 1);
    await sleep(100);
    expect((await rows('box-r')).map((r) => `${r.uniqueid}/${r.origin}`)).toEqual(['1795600000.1/backfill']); // not the one before the gap
    await h.close();
  });

  test('after a reconnect the blind interval is filled from the box cdr table automatically', async () => {
    await t.db.query(CDR_DDL);
    const h = await setup('box-g', 'g', { gapMarginSec: 5 }, { cdrDbUrl: t.url });
    const down = new Promise((r) => h.connector.client('box-g')!.once('down', r));
    h.ast.dropConnections(200);
    await down;
    // A call that ended while AMI was blind: its Cdr is never delivered, but cdr_mysql wrote it.
    const now = new Date();
    const local = now.toISOString().slice(0, 19).replace('T', ' ');
    expect(h.ast.postEvent(cdrEventFields(cdr(7, { uniqueId: '1795500000.7' })))).toBe(0);
    await t.db.query('INSERT INTO cdr (calldate, clid, src, dst, dcontext, channel, dstchannel, lastapp, lastdata, duration, billsec, disposition, amaflags, accountcode, uniqueid, userfield, linkedid, sequence) VALUES ?',
      [[cdrRow('1795500000.7', local, 0)]]);
    await h.connector.client('box-g')!.whenUp(3000);
    await until(async () => (await rows('box-g')).length === 1);
    expect((await rows('box-g'))[0]).toMatchObject({ uniqueid: '1795500000.7', origin: 'backfill', sequence: 0 });
    await h.close();
  });
});
