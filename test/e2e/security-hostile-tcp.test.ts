// Hostile bytes over TCP against the whole gateway (startGateway, seeded MariaDB), on loopback: garbage,
// HTTP, oversize headers and bodies, lying Content-Lengths, one address hoarding connections, and
// slowloris-style partial messages. After each
// abuse the gateway must still complete a normal digest call over TCP (and UDP), and release the connections.
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SEED } from '../../src/devdb/seed.js';
import { digestInvite, finish, sleep, startTestGateway, type TestGateway } from '../helpers/gateway.js';

const ALICE = { user: SEED.cards.alice.sip.name, password: SEED.cards.alice.sip.secret, accountcode: SEED.cards.alice.username };
const IDLE_MS = 1500;

let h: TestGateway;

interface Conn { socket: Socket; data: () => string; closed: Promise<number> }

/** A raw TCP connection from `host`; `closed` resolves with the ms it stayed open once the gateway closes it. */
async function open(host: string): Promise<Conn> {
  const started = Date.now();
  const socket = connect({ host: '127.0.0.1', port: h.tcp.port, localAddress: host });
  let data = '';
  socket.on('data', (d: Buffer) => { data += d.toString('latin1'); });
  socket.on('error', () => { /* a reset by the gateway is an acceptable close */ });
  const closed = new Promise<number>((resolve) => socket.on('close', () => resolve(Date.now() - started)));
  await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject); });
  return { socket, data: () => data, closed };
}

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([p, sleep(ms).then(() => { throw new Error(`${what}: not within ${ms} ms`); })]);
}

function invite(host: string, extra: string[] = [], body = ''): string {
  return [
    `INVITE sip:15551234567@127.0.0.1:${h.tcp.port};transport=tcp SIP/2.0`,
    `Via: SIP/2.0/TCP ${host}:5060;branch=z9hG4bK${Math.random().toString(16).slice(2)}`,
    'Max-Forwards: 70',
    `From: <sip:${ALICE.user}@${host}>;tag=h1`,
    `To: <sip:15551234567@127.0.0.1:${h.tcp.port}>`,
    `Call-ID: hostile-${Math.random().toString(16).slice(2)}@${host}`,
    'CSeq: 1 INVITE',
    `Contact: <sip:${ALICE.user}@${host};transport=tcp>`,
    ...extra,
    `Content-Length: ${Buffer.byteLength(body)}`,
    '',
    body,
  ].join('\r\n');
}

/** A normal digest-authenticated call (TCP, then UDP) from a fresh address must still be answered. */
async function normalCallsWork(n: number): Promise<void> {
  for (const proto of ['tcp', 'udp'] as const) {
    const caller = await h.caller({ host: `127.0.75.${n}`, proto });
    const { second } = await digestInvite(caller, { to: h.ruri('15551234567', proto), via: proto === 'tcp' ? h.tcp : h.udp, user: ALICE.user, password: ALICE.password });
    expect((await finish(second)).status).toBe(200);
  }
}

async function metric(name: string, labels = ''): Promise<number> {
  const text = await h.gw.metrics.text();
  const line = text.split('\n').find((l) => l.startsWith(labels ? `${name}{` : name) && l.includes(labels));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}

beforeAll(async () => {
  h = await startTestGateway({
    callees: [{ behaviour: { kind: 'answer' } }],
    config: { billing: { creditCheck: false }, mgmt: { enabled: false }, sip: { tcpIdleTimeoutMs: IDLE_MS } },
  });
});

afterAll(async () => {
  await h?.stop();
});

describe('hostile TCP input', () => {
  it('binary garbage, HTTP and NUL bytes: the connection is closed, parse errors counted, calls still work', async () => {
    const before = await metric('a2b_sip_parse_errors_total', 'proto="tcp"');
    const payloads = [
      Buffer.concat([Buffer.from('INVITE sip:x@y SIP/2.0\r\nVia: \x00\x01\x02'), Buffer.alloc(64, 0xff), Buffer.from('\r\n\r\n')]),
      Buffer.from('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: curl/8\r\n\r\n'),
      Buffer.from('\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03' + 'A'.repeat(200) + '\r\n\r\n', 'latin1'), // a TLS ClientHello-ish
      Buffer.from('SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n'), // a response nobody asked for, missing everything
    ];
    for (const [i, p] of payloads.entries()) {
      const c = await open(`127.0.74.${i + 1}`);
      c.socket.write(p);
      await within(c.closed, IDLE_MS + 1000, `payload ${i} connection close`);
      expect(c.data()).not.toMatch(/^SIP\/2\.0 [12]\d\d/);
    }
    expect(await metric('a2b_sip_parse_errors_total', 'proto="tcp"')).toBeGreaterThan(before);
    await normalCallsWork(1);
  });

  it('oversize: a 20 KB header block and a 1 MB Content-Length get 513 or a close, never a forwarded call', async () => {
    const big = await open('127.0.74.10');
    big.socket.write(invite('127.0.74.10', [`X-Junk: ${'a'.repeat(20_000)}`]));
    await within(big.closed, 3000, 'oversize header close');
    expect(big.data()).toMatch(/^(|SIP\/2\.0 513 [^\r\n]*\r\n[\s\S]*)$/);

    const cl = await open('127.0.74.11');
    const msg = invite('127.0.74.11').replace(/Content-Length: 0/, 'Content-Length: 1000000');
    cl.socket.write(msg);
    cl.socket.write('v=0\r\n'.repeat(100));
    await within(cl.closed, 3000, 'huge Content-Length close');
    expect(cl.data()).toMatch(/^(|SIP\/2\.0 513 [^\r\n]*\r\n[\s\S]*)$/);

    for (const bad of ['-1', '12abc', '99999999999999999999']) {
      const c = await open('127.0.74.12');
      c.socket.write(invite('127.0.74.12').replace(/Content-Length: 0/, `Content-Length: ${bad}`));
      await within(c.closed, 3000, `Content-Length ${bad} close`);
      expect(c.data()).not.toMatch(/^SIP\/2\.0 [12]\d\d /);
    }
    expect(h.callees[0]!.invites()).toHaveLength(0 + 2); // only the two normal calls of the first test
    await normalCallsWork(2);
  });

  it('no false positive: a connection whose messages each complete in time stays open though its buffer never empties', async () => {
    const c = await open('127.0.77.1');
    const options = (i: number): string => [
      `OPTIONS sip:127.0.0.1:${h.tcp.port};transport=tcp SIP/2.0`,
      `Via: SIP/2.0/TCP 127.0.77.1:5060;branch=z9hG4bKhonest${i}`, 'Max-Forwards: 70',
      `From: <sip:probe@127.0.77.1>;tag=o${i}`, `To: <sip:127.0.0.1:${h.tcp.port}>`, `Call-ID: honest-${i}@127.0.77.1`,
      `CSeq: ${i + 1} OPTIONS`, 'Content-Length: 0', '', '',
    ].join('\r\n');
    // every write ends in the middle of a message: 10 x 300 ms = 3 s of never-empty buffer, each message ≤ 300 ms
    const n = 10;
    let pending = options(0).slice(0, 40);
    for (let i = 0; i < n; i++) {
      const rest = options(i).slice(40);
      const next = i + 1 < n ? options(i + 1).slice(0, 40) : '';
      c.socket.write(pending);
      await sleep(150);
      c.socket.write(rest + next);
      pending = '';
      await sleep(150);
    }
    await sleep(100);
    expect(c.socket.destroyed).toBe(false);
    expect(c.data().match(/SIP\/2\.0 200 /g)?.length).toBe(n);
    c.socket.destroy();
  });

  it('one address cannot take every TCP slot: beyond 256 open connections it is refused, others still call', async () => {
    const conns: Conn[] = [];
    try {
      for (let i = 0; i < 270; i++) conns.push(await open('127.0.78.1'));
      const refused = await within(Promise.all(conns.slice(256).map((c) => c.closed)), 3000, 'connections beyond the per-source limit closed');
      expect(refused).toHaveLength(14);
      await sleep(50);
      expect(conns.slice(0, 256).filter((c) => c.socket.destroyed)).toHaveLength(0);
      expect(await metric('a2b_sip_dropped_total', 'reason="tcp-source-limit"')).toBe(14);
      await normalCallsWork(5);
    } finally {
      for (const c of conns) c.socket.destroy();
    }
    await sleep(100);
    const again = await open('127.0.78.1'); // slots are given back on close
    again.socket.write(`OPTIONS sip:127.0.0.1:${h.tcp.port};transport=tcp SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.78.1:5060;branch=z9hG4bKagain\r\n` +
      `Max-Forwards: 70\r\nFrom: <sip:p@127.0.78.1>;tag=a\r\nTo: <sip:127.0.0.1>\r\nCall-ID: again@127.0.78.1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n`);
    const deadline = Date.now() + 2000;
    while (!/SIP\/2\.0 200 /.test(again.data()) && Date.now() < deadline) await sleep(20);
    expect(again.data()).toMatch(/^SIP\/2\.0 200 /);
    again.socket.destroy();
  });

  it('slowloris: 40 connections trickling a never-ending header are closed; calls work meanwhile and after', async () => {
    const baseline = await metric('a2b_sip_tcp_connections');
    const conns: Conn[] = [];
    for (let i = 0; i < 40; i++) {
      const c = await open(`127.0.76.${(i % 4) + 1}`);
      c.socket.write(`INVITE sip:15551234567@127.0.0.1:${h.tcp.port};transport=tcp SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.76.1;branch=z9hG4bKslow${i}\r\n`);
      conns.push(c);
    }
    // one byte of a header every 300 ms (well inside the idle timeout) on every connection
    let stop = false;
    const trickle = (async () => {
      for (let n = 0; !stop; n++) {
        for (const c of conns) if (!c.socket.destroyed) c.socket.write(n % 40 === 39 ? '\r\n' : 'X');
        await sleep(300);
      }
    })();
    try {
      await normalCallsWork(3); // served while the slow connections are open
      const t0 = Date.now();
      const times = await within(Promise.all(conns.map((c) => c.closed)), 8000, 'slowloris connections closed by the gateway');
      expect(times.length).toBe(40);
      // closed by the message read timeout (default min(20 s, tcpIdleTimeoutMs)), though bytes kept coming
      expect(Math.max(...times)).toBeLessThan(IDLE_MS * 3);
      expect(Date.now() - t0).toBeLessThan(8000);
      expect(await metric('a2b_sip_dropped_total', 'reason="tcp-incomplete"')).toBe(40);
    } finally {
      stop = true;
      await trickle;
      for (const c of conns) c.socket.destroy();
    }
    await normalCallsWork(4);
    await sleep(100);
    expect(await metric('a2b_sip_tcp_connections')).toBeLessThanOrEqual(baseline + 2);
  });
});
