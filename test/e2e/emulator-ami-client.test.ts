// The AMI client against the emulator's AMI server and against a raw TCP server replaying real capture bytes.
import { readFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, test } from 'vitest';
import type { CdrRecord } from '../../src/ami/cdr.js';
import { AmiClient, type AmiClientOptions, type AmiDown } from '../../src/ami/client.js';
import { EmulatedAmiServer } from '../../src/emulator/ami-server.js';
import { cdrEventFields, type EmuCdr } from '../../src/emulator/cdr-event.js';
import { isGwError } from '../../src/errors.js';

const fixture = (name: string): Buffer => readFileSync(join(import.meta.dirname, '../fixtures/ami', name));
const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function emulator(users = [{ username: 'collector', secret: 'collector-secret', read: ['cdr', 'call', 'system'] }]): Promise<EmulatedAmiServer> {
  const s = new EmulatedAmiServer({ users });
  await s.start();
  cleanups.push(() => s.stop());
  return s;
}

function client(port: number, over: Partial<AmiClientOptions> = {}): AmiClient {
  const c = new AmiClient({ box: 'ast1', host: '127.0.0.1', port, username: 'collector', secret: 'collector-secret',
    pingIntervalMs: 60_000, pingTimeoutMs: 1000, actionTimeoutMs: 1000, reconnectMinMs: 10, reconnectMaxMs: 50, ...over });
  cleanups.push(() => c.stop());
  return c;
}

const once = <T>(c: AmiClient, ev: 'cdr' | 'down' | 'up'): Promise<T> => new Promise((r) => c.once(ev, r as never));

const sampleCdr: EmuCdr = {
  accountCode: '4242424242', source: '33123456789', destination: '15551234567', destinationContext: 'from-proxy-pjsip',
  callerId: '"" <33123456789>', channel: 'PJSIP/gateway-00000001', destinationChannel: '', lastApplication: 'Hangup',
  lastData: '', startTime: '2026-11-22 04:07:23', answerTime: '2026-11-22 04:07:24', endTime: '2026-11-22 04:07:30',
  duration: 7, billableSeconds: 6, disposition: 'ANSWERED', amaFlags: 'DOCUMENTATION', uniqueId: '1795320443.1',
  userField: 'abc@gw', extras: { LinkedID: '1795320443.1', Sequence: '3', SIPCallID: 'abc@gw', TalkTime: '', DialStatus: '' },
};

describe('AMI client ↔ emulated Asterisk', () => {
  test('logs in with Events: cdr, receives only Cdr events as typed records, answers Ping/Command', async () => {
    const ast = await emulator();
    const c = client(ast.port);
    const events: string[] = [];
    c.on('event', (m) => events.push(m.event!));
    c.start();
    await c.whenUp(2000);
    expect(ast.record.logins).toEqual([{ session: 1, username: 'collector', ok: true, events: 'cdr' }]);
    const got = once<CdrRecord>(c, 'cdr');
    ast.postEvent([['Event', 'Newchannel'], ['Privilege', 'call,all'], ['Uniqueid', '1.1']]);
    ast.postEvent(cdrEventFields(sampleCdr));
    const rec = await got;
    expect(rec).toMatchObject({ box: 'ast1', uniqueId: '1795320443.1', sequence: 3, accountCode: '4242424242',
      start: Date.parse('2026-11-22T04:07:23Z'), duration: 7, billableSeconds: 6, sipCallId: 'abc@gw', origin: 'ami' });
    expect(events).toEqual(['Cdr']); // no FullyBooted, no Newchannel: narrowed to the cdr class
    expect(await c.ping()).toBeGreaterThanOrEqual(0);
    expect(await c.command('core show version')).toEqual([expect.stringMatching(/^Asterisk 20/)]);
    await expect(c.action('QueueStatus')).rejects.toMatchObject({ code: 'GW_ERR_AMI_ACTION',
      message: expect.stringContaining('Invalid/unknown command: QueueStatus. Use Action: ListCommands to show available commands.') });
    await c.stop();
    expect(c.state).toBe('stopped');
    expect(ast.record.actions.at(-1)!.action.action).toBe('Logoff');
  });

  test('a refused login is an error, and the client does not retry it', async () => {
    const ast = await emulator();
    const c = client(ast.port, { secret: 'wrong' });
    const failed = new Promise((r) => c.once('loginFailed', r));
    c.start();
    await expect(c.whenUp(2000)).rejects.toMatchObject({ code: 'GW_ERR_AMI_LOGIN', message: expect.stringContaining('Authentication failed') });
    await failed;
    await sleep(150);
    expect(c.state).toBe('failed');
    expect(ast.record.logins.map((l) => l.ok)).toEqual([false]);
    await expect(c.action('Ping')).rejects.toMatchObject({ code: 'GW_ERR_AMI_DISCONNECTED' });
  });

  test('heartbeat: a box that stops answering Ping is declared down, and the client reconnects', async () => {
    const ast = await emulator();
    const c = client(ast.port, { pingIntervalMs: 40, pingTimeoutMs: 60 });
    c.start();
    await c.whenUp(2000);
    ast.setPingMode('ignore');
    const down = await once<AmiDown>(c, 'down');
    expect(down.reason).toMatch(/heartbeat: no answer to Ping within 60 ms/);
    ast.setPingMode('answer');
    await c.whenUp(2000);
    expect(ast.record.logins.filter((l) => l.ok).length).toBeGreaterThanOrEqual(2);
    await sleep(150); // several heartbeats answered: stays up
    expect(c.state).toBe('up');
  });

  test('actions while disconnected fail fast; an action in flight fails when the connection drops', async () => {
    const ast = await emulator();
    const c = client(ast.port, { reconnectMinMs: 5000, reconnectMaxMs: 5000 });
    await expect(c.action('Ping')).rejects.toMatchObject({ code: 'GW_ERR_AMI_DISCONNECTED' }); // never started
    c.start();
    await c.whenUp(2000);
    ast.setPingMode('ignore');
    const inFlight = c.action('Ping', {}, { timeoutMs: 5000 });
    await sleep(20);
    const t0 = performance.now();
    const down = once<AmiDown>(c, 'down');
    ast.dropConnections(5000);
    await expect(inFlight).rejects.toMatchObject({ code: 'GW_ERR_AMI_DISCONNECTED' });
    await down;
    const t1 = performance.now();
    const err = await c.action('Ping').catch((e: unknown) => e);
    expect(isGwError(err, 'GW_ERR_AMI_DISCONNECTED')).toBe(true);
    expect(performance.now() - t1).toBeLessThan(20);
    expect(t1 - t0).toBeLessThan(1000);
  });

  test('an unanswered action times out', async () => {
    const ast = await emulator();
    const c = client(ast.port);
    c.start();
    await c.whenUp(2000);
    ast.setPingMode('ignore');
    await expect(c.action('Ping', {}, { timeoutMs: 50 })).rejects.toMatchObject({ code: 'GW_ERR_AMI_TIMEOUT' });
    expect(c.state).toBe('up');
  });

  test('a Cdr posted while AMI is blind never arrives (what gw_ami_session intervals are for)', async () => {
    const ast = await emulator();
    const c = client(ast.port, { reconnectMinMs: 100, reconnectMaxMs: 100 });
    const got: CdrRecord[] = [];
    c.on('cdr', (r) => got.push(r));
    c.start();
    await c.whenUp(2000);
    ast.dropConnections(300);
    await once(c, 'down');
    expect(ast.postEvent(cdrEventFields(sampleCdr))).toBe(0);
    await c.whenUp(3000);
    ast.postEvent(cdrEventFields({ ...sampleCdr, uniqueId: '1795320443.2' }));
    await sleep(50);
    expect(got.map((r) => r.uniqueId)).toEqual(['1795320443.2']);
  });

  test('a non-AMI port is a protocol error and is retried with back-off', async () => {
    const srv = createServer((s) => s.end('SSH-2.0-OpenSSH_9.6\r\n'));
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise((r) => srv.close(r)));
    let accepted = 0;
    srv.on('connection', () => accepted++);
    const c = client((srv.address() as AddressInfo).port, { reconnectMinMs: 20, reconnectMaxMs: 40 });
    c.start();
    await sleep(250);
    expect(accepted).toBeGreaterThanOrEqual(3);
    expect(accepted).toBeLessThan(20);
    expect(c.state).not.toBe('up');
  });
});

describe('real capture bytes over TCP, split at every byte boundary', () => {
  /** A raw server: banner, then on Login the capture's bytes (login ActionID swapped for the client's) via `plan`. */
  async function rawServer(capture: Buffer, plan: (sock: Socket, bytes: Buffer) => Promise<void>): Promise<Server> {
    const srv = createServer((sock) => {
      sock.setNoDelay(true);
      sock.on('error', () => undefined);
      sock.write('Asterisk Call Manager/9.0.0\r\n');
      let buf = '';
      sock.on('data', (d) => {
        buf += String(d);
        const id = /Action: Login\r\nActionID: (\S+)\r\n[\s\S]*?\r\n\r\n/.exec(buf)?.[1];
        if (!id) return;
        buf = '';
        const body = capture.subarray(capture.indexOf('\r\n') + 2).toString('latin1').replace('ActionID: login-1', `ActionID: ${id}`);
        void plan(sock, Buffer.from(body, 'latin1'));
      });
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise((r) => { srv.close(r); }));
    return srv;
  }

  test('every split of the Cdr event of capture 01 yields the same CdrRecord', async () => {
    const cap = fixture('01-pjsip-answer.rx.ami');
    const ev = cap.subarray(cap.indexOf('Event: Cdr'));
    const cdrEvent = ev.subarray(0, ev.indexOf('\r\n\r\n') + 4);
    let splits = 0;
    const srv = await rawServer(cap, async (sock, bytes) => {
      sock.write(bytes.subarray(0, bytes.indexOf('\r\n\r\n') + 4)); // the login response only
      await sleep(5);
      for (let i = 1; i < cdrEvent.length; i++) {
        sock.write(cdrEvent.subarray(0, i));
        await new Promise((r) => setImmediate(r)); // a separate read for each half
        sock.write(cdrEvent.subarray(i));
        splits++;
      }
    });
    const c = client((srv.address() as AddressInfo).port);
    const got: CdrRecord[] = [];
    c.on('cdr', (r) => got.push(r));
    c.start();
    await c.whenUp(2000);
    for (let i = 0; i < 400 && got.length < cdrEvent.length - 1; i++) await sleep(10);
    expect(splits).toBe(cdrEvent.length - 1);
    expect(got).toHaveLength(cdrEvent.length - 1);
    const first = JSON.stringify(got[0]);
    expect(got.every((r) => JSON.stringify(r) === first)).toBe(true);
    expect(got[0]).toMatchObject({ uniqueId: '1795320443.0', sequence: 0, accountCode: '4242424242', sipCallId: 'a84b4c76e66710@proxy.lab' });
  });

  test('every split of the banner and the login response still logs in, then the whole capture 03 is read', async () => {
    // The client's first ActionID is "<box>-1": the capture's login response is rewritten to answer it.
    const all = Buffer.from(fixture('03-pjsip-a2blike-dial.rx.ami').toString('latin1').replace('ActionID: login-1', 'ActionID: ast1-1'), 'latin1');
    const loginEnd = all.indexOf('\r\n\r\n') + 4;
    let split = 0;
    const srv = createServer((sock) => {
      sock.setNoDelay(true);
      sock.on('error', () => undefined);
      sock.resume(); // read (and drop) the Login, so the client's close is seen
      const at = split;
      sock.write(all.subarray(0, at));
      setTimeout(() => sock.write(all.subarray(at)), 3);
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise((r) => { srv.close(r); }));
    for (split = 1; split < loginEnd; split++) {
      const c = new AmiClient({ box: 'ast1', host: '127.0.0.1', port: (srv.address() as AddressInfo).port, username: 'u', secret: 's',
        actionTimeoutMs: 1000, pingIntervalMs: 60_000 });
      const got = new Promise<CdrRecord>((r) => c.once('cdr', r));
      c.start();
      const rec = await Promise.race([got, sleep(1000).then(() => null)]);
      if (rec === null) expect.fail(`split at byte ${split}: no Cdr record`);
      expect(rec).toMatchObject({ uniqueId: '1795320450.4', sequence: 2, dstChannel: 'PJSIP/trunk-00000002' });
      await c.stop({ logoffTimeoutMs: 0 });
    }
  });
});
