// Real sockets on loopback (IPv4 and IPv6), ephemeral ports.
import dgram from 'node:dgram';
import net from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { silentLogger } from '../../../src/log.js';
import {
  createResponse, parseOrThrow, SipParseError, SipTransport, TransactionLayer,
  type MessageSource, type ServerTransaction, type SipMessage, type SipRequest, type SipResponse, type TransportOptions,
} from '../../../src/sip/index.js';

const closers: Array<() => Promise<void> | void> = [];
afterEach(async () => { while (closers.length) await closers.pop()!(); });

interface Got { msg: SipMessage | SipParseError; source: MessageSource }

async function startTransport(listen: TransportOptions['listen'], extra: Partial<TransportOptions> = {}) {
  const got: Got[] = [];
  const waiters: Array<() => void> = [];
  const t = new SipTransport({ listen, maxMessageSize: 4096, tcpIdleTimeoutMs: 5000, logger: silentLogger(), ...extra }, (msg, source) => {
    got.push({ msg, source });
    waiters.splice(0).forEach((w) => w());
  });
  await t.start();
  closers.push(() => t.close());
  const next = async (n = 1): Promise<Got[]> => {
    while (got.length < n) await new Promise<void>((r) => waiters.push(r));
    return got.splice(0, n);
  };
  return { t, next };
}

function invite(viaHost: string, opts: { branch?: string; proto?: string; rport?: boolean } = {}): string {
  return [
    'INVITE sip:bob@example.com SIP/2.0',
    `Via: SIP/2.0/${opts.proto ?? 'UDP'} ${viaHost};branch=${opts.branch ?? 'z9hG4bKt1'}${opts.rport === false ? '' : ';rport'}`,
    'Max-Forwards: 70', 'To: <sip:bob@example.com>', 'From: <sip:alice@example.com>;tag=a', 'Call-ID: tr-1', 'CSeq: 1 INVITE',
    'Content-Length: 0', '', '',
  ].join('\r\n');
}

function udpClient(type: 'udp4' | 'udp6' = 'udp4') {
  const sock = dgram.createSocket(type);
  const inbox: Buffer[] = [];
  const waiters: Array<() => void> = [];
  sock.on('message', (b) => { inbox.push(b); waiters.splice(0).forEach((w) => w()); });
  closers.push(() => new Promise<void>((r) => sock.close(() => r())));
  return {
    sock,
    bind: () => new Promise<number>((r) => sock.bind(0, type === 'udp4' ? '127.0.0.1' : '::1', () => r(sock.address().port))),
    recv: async (): Promise<Buffer> => { while (!inbox.length) await new Promise<void>((r) => waiters.push(r)); return inbox.shift()!; },
  };
}

function tcpCollector(socket: net.Socket) {
  let data = Buffer.alloc(0);
  const waiters: Array<() => void> = [];
  socket.on('data', (c) => { data = Buffer.concat([data, c]); waiters.splice(0).forEach((w) => w()); });
  return async (pred: (s: string) => boolean): Promise<string> => {
    while (!pred(data.toString('latin1'))) await new Promise<void>((r) => waiters.push(r));
    return data.toString('latin1');
  };
}

describe('UDP transport', () => {
  it('binds port 0 on IPv4 and IPv6 and exposes the bound ports and the Via address', async () => {
    const { t } = await startTransport([{ proto: 'udp', host: '127.0.0.1', port: 0 }, { proto: 'udp', host: '::1', port: 0 }]);
    const ls = t.listeners();
    expect(ls.map((l) => l.host)).toEqual(['127.0.0.1', '::1']);
    for (const l of ls) expect(l.port).toBeGreaterThan(0);
    expect(t.localAddress('udp')).toEqual({ host: '127.0.0.1', port: ls[0]!.port });
    expect(t.localAddress('udp', 6)).toEqual({ host: '::1', port: ls[1]!.port });
    expect(t.localAddress('tcp')).toBeUndefined();
  });

  it('post() sends without a promise and reports failures asynchronously to its owner', async () => {
    const { t } = await startTransport([{ proto: 'udp', host: '127.0.0.1', port: 0 }]);
    const c = udpClient();
    const port = await c.bind();
    const errors: Error[] = [];
    const owner = { sendFailed: (e: Error): void => { errors.push(e); } };
    t.post(Buffer.from(invite('127.0.0.1:5060')), { proto: 'udp', address: '127.0.0.1', port }, owner);
    expect((await c.recv()).toString('latin1')).toContain('INVITE sip:bob@example.com');
    // no IPv6 listener, a bad port, an unresolvable name: each is an error, none is thrown at the caller
    t.post(Buffer.from('x'), { proto: 'udp', address: '::1', port }, owner);
    t.post(Buffer.from('x'), { proto: 'udp', address: '127.0.0.1', port: 0 }, owner);
    t.post(Buffer.from('x'), { proto: 'udp', address: 'no-such-host.invalid', port }, owner);
    expect(errors).toHaveLength(0); // never synchronously
    await vi.waitFor(() => expect(errors).toHaveLength(3), { timeout: 5000 });
    for (const e of errors) expect(e).toMatchObject({ code: 'GW_ERR_SIP_TRANSPORT' });
  });

  it('stamps received/rport on the top Via and routes the response back to the source port', async () => {
    const { t, next } = await startTransport([{ proto: 'udp', host: '127.0.0.1', port: 0 }]);
    const c = udpClient();
    const port = await c.bind();
    c.sock.send(invite('192.0.2.99:5099'), t.listeners()[0]!.port, '127.0.0.1');
    const [{ msg, source }] = await next();
    const req = msg as SipRequest;
    expect(source).toMatchObject({ proto: 'udp', address: '127.0.0.1', port });
    expect(req.topVia).toMatchObject({ host: '192.0.2.99', port: 5099, received: '127.0.0.1', rport: port });
    await t.sendResponse(createResponse(req, 180));
    const back = parseOrThrow(await c.recv()) as SipResponse;
    expect(back.status).toBe(180);
    expect(back.topVia?.rport).toBe(port);
  });

  it('routes a response by maddr, then by received without rport (sent-by port)', async () => {
    const { t } = await startTransport([{ proto: 'udp', host: '127.0.0.1', port: 0 }]);
    const c = udpClient();
    const port = await c.bind();
    const base = parseOrThrow(invite('x')) as SipRequest;
    base.replaceTopVia(`SIP/2.0/UDP unresolvable.invalid:${port};branch=z9hG4bKm;maddr=127.0.0.1`);
    await t.sendResponse(createResponse(base, 404));
    expect((parseOrThrow(await c.recv()) as SipResponse).status).toBe(404);
    base.replaceTopVia(`SIP/2.0/UDP unresolvable.invalid:${port};branch=z9hG4bKm;received=127.0.0.1`);
    await t.sendResponse(createResponse(base, 480));
    expect((parseOrThrow(await c.recv()) as SipResponse).status).toBe(480);
    base.replaceTopVia('SIP/2.0/UDP unresolvable.invalid;branch=z9hG4bKm');
    await expect(t.sendResponse(createResponse(base, 500))).rejects.toMatchObject({ code: 'GW_ERR_SIP_TRANSPORT' });
    for (const port of [0, 70000, 1.5]) {
      await expect(t.send(Buffer.from('x'), { proto: 'udp', address: '127.0.0.1', port })).rejects.toMatchObject({ code: 'GW_ERR_SIP_TRANSPORT' });
      await expect(t.send(Buffer.from('x'), { proto: 'tcp', address: '127.0.0.1', port })).rejects.toMatchObject({ code: 'GW_ERR_SIP_TRANSPORT' });
    }
  });

  it('works over IPv6 with a bracketed sent-by', async () => {
    const { t, next } = await startTransport([{ proto: 'udp', host: '::1', port: 0 }]);
    const c = udpClient('udp6');
    const port = await c.bind();
    c.sock.send(invite(`[::1]:${port}`, { rport: false }), t.listeners()[0]!.port, '::1');
    const [{ msg }] = await next();
    expect((msg as SipRequest).topVia).toMatchObject({ host: '::1', ipv6: true, received: undefined });
    await t.sendResponse(createResponse(msg as SipRequest, 200));
    expect((parseOrThrow(await c.recv()) as SipResponse).status).toBe(200);
  });

  it('hands parse failures to the handler and ignores keep-alive datagrams', async () => {
    const { t, next } = await startTransport([{ proto: 'udp', host: '127.0.0.1', port: 0 }]);
    const c = udpClient();
    await c.bind();
    const port = t.listeners()[0]!.port;
    c.sock.send('\r\n\r\n', port, '127.0.0.1');
    c.sock.send(invite('h').replace('CSeq: 1 INVITE', 'CSeq: x INVITE'), port, '127.0.0.1');
    const [{ msg }] = await next();
    expect(msg).toBeInstanceOf(SipParseError);
    expect((msg as SipParseError).reason).toBe('Bad CSeq');
    expect((msg as SipParseError).message?.source?.proto).toBe('udp');
  });

  it('resolves URIs: transport parameter, maddr and default port', async () => {
    const { t } = await startTransport([{ proto: 'udp', host: '127.0.0.1', port: 0 }]);
    await expect(t.resolve('sip:bob@127.0.0.1')).resolves.toEqual({ proto: 'udp', address: '127.0.0.1', port: 5060 });
    await expect(t.resolve('sip:bob@[::1]:5070;transport=TCP')).resolves.toEqual({ proto: 'tcp', address: '::1', port: 5070 });
    await expect(t.resolve('sip:bob@example.invalid;maddr=127.0.0.2')).resolves.toMatchObject({ address: '127.0.0.2' });
    await expect(t.resolve('sips:bob@127.0.0.1')).rejects.toMatchObject({ code: 'GW_ERR_SIP_URI' });
    await expect(t.resolve('sip:bob@127.0.0.1;transport=sctp')).rejects.toMatchObject({ code: 'GW_ERR_SIP_URI' });
  });
});

describe('TCP transport', () => {
  it('frames chunked input, answers pings and replies on the same connection', async () => {
    const { t, next } = await startTransport([{ proto: 'tcp', host: '127.0.0.1', port: 0 }]);
    const sock = net.connect(t.listeners()[0]!.port, '127.0.0.1');
    closers.push(() => { sock.destroy(); });
    await new Promise((r) => sock.once('connect', r));
    const wait = tcpCollector(sock);
    const m = invite('client.invalid:5070', { proto: 'TCP' });
    sock.write('\r\n\r\n');
    expect(await wait((s) => s === '\r\n')).toBe('\r\n');
    sock.write(m.slice(0, 17));
    await new Promise((r) => setTimeout(r, 20));
    sock.write(m.slice(17) + m.replace('z9hG4bKt1', 'z9hG4bKt2'));
    const [a, b] = await next(2);
    expect((a!.msg as SipRequest).topVia?.branch).toBe('z9hG4bKt1');
    expect((b!.msg as SipRequest).topVia?.branch).toBe('z9hG4bKt2');
    expect(a!.source.connectionId).toBeGreaterThan(0);
    expect(t.tcpConnectionCount).toBe(1);
    // reply by Via (received/rport point at the connection) without naming the connection
    await t.sendResponse(createResponse(a!.msg as SipRequest, 486));
    const text = await wait((s) => s.includes('486'));
    expect(text).toContain('SIP/2.0 486 Busy Here\r\n');
    // a request to that address reuses the incoming connection
    await t.send(Buffer.from(invite('gw', { proto: 'TCP', branch: 'z9hG4bKout' })), { proto: 'tcp', address: '127.0.0.1', port: sock.localPort! });
    expect(await wait((s) => s.includes('z9hG4bKout'))).toContain('z9hG4bKout');
    expect(t.tcpConnectionCount).toBe(1);
  });

  it('works over IPv6: stamps received, answers by Via on the same connection', async () => {
    const { t, next } = await startTransport([{ proto: 'tcp', host: '::1', port: 0 }]);
    expect(t.localAddress('tcp', 6)).toEqual({ host: '::1', port: t.listeners()[0]!.port });
    const sock = net.connect(t.listeners()[0]!.port, '::1');
    closers.push(() => { sock.destroy(); });
    await new Promise((r) => sock.once('connect', r));
    const wait = tcpCollector(sock);
    sock.write(invite('[2001:db8::99]:5070', { proto: 'TCP' }));
    const [{ msg, source }] = await next();
    expect(source).toMatchObject({ proto: 'tcp', address: '::1', port: sock.localPort });
    expect((msg as SipRequest).topVia).toMatchObject({ host: '2001:db8::99', received: '::1', rport: sock.localPort });
    await t.sendResponse(createResponse(msg as SipRequest, 100));
    expect(await wait((s) => s.includes('100 Trying'))).toContain('received=::1');
  });

  it('honours ;alias (RFC 5923): requests to the sent-by port reuse the connection the peer opened', async () => {
    const { t, next } = await startTransport([{ proto: 'tcp', host: '127.0.0.1', port: 0 }]);
    const sock = net.connect(t.listeners()[0]!.port, '127.0.0.1');
    closers.push(() => { sock.destroy(); });
    await new Promise((r) => sock.once('connect', r));
    const wait = tcpCollector(sock);
    // nothing listens on 127.0.0.1:1 — without the alias this send would fail
    sock.write(invite('127.0.0.1:1', { proto: 'TCP' }).replace(';rport', ';alias'));
    await next();
    await t.send(Buffer.from(invite('gw', { proto: 'TCP', branch: 'z9hG4bKalias' })), { proto: 'tcp', address: '127.0.0.1', port: 1 });
    expect(await wait((s) => s.includes('z9hG4bKalias'))).toContain('z9hG4bKalias');
    expect(t.tcpConnectionCount).toBe(1);
  });

  it('reuses its own outgoing connection and reports refused connections as rejections', async () => {
    const { t } = await startTransport([{ proto: 'tcp', host: '127.0.0.1', port: 0 }]);
    const accepted: net.Socket[] = [];
    const server = net.createServer((s) => { accepted.push(s); s.resume(); });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    closers.push(() => new Promise<void>((r) => { accepted.forEach((s) => s.destroy()); server.close(() => r()); }));
    const port = (server.address() as net.AddressInfo).port;
    const msg = Buffer.from(invite('gw', { proto: 'TCP' }));
    await Promise.all([t.send(msg, { proto: 'tcp', address: '127.0.0.1', port }), t.send(msg, { proto: 'tcp', address: '127.0.0.1', port })]);
    await t.send(msg, { proto: 'tcp', address: '127.0.0.1', port });
    expect(accepted).toHaveLength(1);
    // a port nobody listens on
    const dead = net.createServer();
    await new Promise<void>((r) => dead.listen(0, '127.0.0.1', () => r()));
    const deadPort = (dead.address() as net.AddressInfo).port;
    await new Promise<void>((r) => dead.close(() => r()));
    await expect(t.send(msg, { proto: 'tcp', address: '127.0.0.1', port: deadPort })).rejects.toMatchObject({ code: 'GW_ERR_SIP_TRANSPORT' });
  });

  it('closes idle connections', async () => {
    const { t } = await startTransport([{ proto: 'tcp', host: '127.0.0.1', port: 0 }], { tcpIdleTimeoutMs: 150 });
    const idle = net.connect(t.listeners()[0]!.port, '127.0.0.1');
    closers.push(() => { idle.destroy(); });
    const t0 = Date.now();
    await new Promise((r) => idle.once('close', r));
    expect(Date.now() - t0).toBeGreaterThanOrEqual(100);
    for (let i = 0; i < 50 && t.tcpConnectionCount > 0; i++) await new Promise((r) => setTimeout(r, 5));
    expect(t.tcpConnectionCount).toBe(0);
  });

  it('closes an oversize stream after handing over an answerable 513 that still reaches the client', async () => {
    const errors: SipParseError[] = [];
    const t: SipTransport = new SipTransport({ listen: [{ proto: 'tcp', host: '127.0.0.1', port: 0 }], maxMessageSize: 1024, tcpIdleTimeoutMs: 5000, logger: silentLogger() },
      (msg, source) => {
        if (!(msg instanceof SipParseError)) return;
        errors.push(msg);
        if (msg.message) void t.sendResponse(createResponse(msg.message, msg.status, { reason: msg.reason }), source.connectionId).catch(() => undefined);
      });
    await t.start();
    closers.push(() => t.close());
    const big = net.connect(t.listeners()[0]!.port, '127.0.0.1');
    closers.push(() => { big.destroy(); });
    const wait = tcpCollector(big);
    big.write(invite('client.invalid', { proto: 'TCP' }).replace('Content-Length: 0', 'Content-Length: 5000'));
    await new Promise((r) => big.once('end', r));
    expect(errors.map((e) => [e.kind, e.status])).toEqual([['too-large', 513]]);
    expect(await wait((s) => s.length > 0)).toMatch(/^SIP\/2.0 513 Message Too Large\r\n/);
  });
});

describe('transactions over real sockets', () => {
  it('INVITE → 100 Trying → 486 → ACK absorbed, over UDP between two transports', async () => {
    const timers = { t1Ms: 200, t2Ms: 1600, t4Ms: 500, inviteTimeoutMs: 5000, noResponseTimeoutMs: 4000 };
    const uas = await startTransport([{ proto: 'udp', host: '127.0.0.1', port: 0 }]);
    const uac = await startTransport([{ proto: 'udp', host: '127.0.0.1', port: 0 }]);
    const serverSide: Array<{ req: SipRequest; st: ServerTransaction | null }> = [];
    const sLayer = new TransactionLayer({ transport: uas.t, timers, logger: silentLogger() }, {
      onRequest: (req, st) => {
        serverSide.push({ req, st });
        if (st) setTimeout(() => st.respond(createResponse(req, 486)), 20);
      },
    });
    const cLayer = new TransactionLayer({ transport: uac.t, timers, logger: silentLogger() }, { onRequest: () => undefined });
    closers.push(() => { sLayer.close(); cLayer.close(); });
    const statuses: number[] = [];
    const done = new Promise<void>((resolve) => {
      cLayer.sendRequest(parseOrThrow(invite('placeholder')) as SipRequest, { proto: 'udp', address: '127.0.0.1', port: uas.t.listeners()[0]!.port }, {
        onResponse: (res) => { statuses.push(res.status); if (res.status >= 200) resolve(); },
      });
    });
    await done;
    for (let i = 0; i < 200 && serverSide[0]!.st!.state !== 'confirmed'; i++) await new Promise((r) => setTimeout(r, 10));
    // (a loaded machine may retransmit the INVITE, and each retransmission re-sends the 100)
    expect(statuses[0]).toBe(100);
    expect(statuses.filter((s) => s >= 200)).toEqual([486]);
    expect(serverSide.map((s) => s.req.method)).toEqual(['INVITE']); // the ACK was absorbed
    expect(serverSide[0]!.st!.state).toBe('confirmed');
  });

  it('BYE → 200 over TCP between two transports: the response comes back on the connection the request opened', async () => {
    const timers = { t1Ms: 200, t2Ms: 1600, t4Ms: 500, inviteTimeoutMs: 5000, noResponseTimeoutMs: 4000 };
    const uas = await startTransport([{ proto: 'tcp', host: '127.0.0.1', port: 0 }]);
    const uac = await startTransport([{ proto: 'tcp', host: '127.0.0.1', port: 0 }]);
    const sLayer = new TransactionLayer({ transport: uas.t, timers, logger: silentLogger() }, {
      onRequest: (req, st) => { st?.respond(createResponse(req, 200)); },
    });
    const cLayer = new TransactionLayer({ transport: uac.t, timers, logger: silentLogger() }, { onRequest: () => undefined });
    closers.push(() => { sLayer.close(); cLayer.close(); });
    const bye = parseOrThrow(invite('placeholder').replace(/INVITE/g, 'BYE')) as SipRequest;
    const res = await new Promise<SipResponse>((resolve) => {
      cLayer.sendRequest(bye, { proto: 'tcp', address: '127.0.0.1', port: uas.t.listeners()[0]!.port }, { onResponse: (r) => resolve(r) });
    });
    expect(res.status).toBe(200);
    expect(res.topVia?.transport).toBe('TCP');
    expect(uac.t.tcpConnectionCount).toBe(1);
    expect(uas.t.tcpConnectionCount).toBe(1);
  });
});
