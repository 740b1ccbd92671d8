// The proxy's sockets: one UDP socket or TCP server per configured listener, TCP stream framing by
// Content-Length, and sending with TCP connection reuse. It hands the core parsed messages (or the parse
// failure, so the core can answer 400/513) tagged with where they came from and which listener got them.
// A small stand-in until the SIP core's transport layer is published (see /work/team/REQUESTS-sip.md);
// the core only sees the `ProxyNet` interface below.
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { connect, createServer, isIPv6, type Server, type Socket as TcpSocket } from 'node:net';
import type { Logger } from '../log.js';
import { GwError } from '../errors.js';
import { parseMessage, type SipParseError } from '../sip/parser.js';
import type { MessageSource, SipMessage, TransportProto } from '../sip/message.js';

export interface Listener {
  proto: TransportProto;
  /** Bound address and port (the real port when configured with 0). */
  address: string;
  port: number;
}

export interface Destination {
  proto: TransportProto;
  address: string;
  port: number;
  /** Reply on this TCP connection when it is still open. */
  connectionId?: number;
}

export type Incoming = (msg: SipMessage | null, err: SipParseError | null, source: MessageSource) => void;

export interface ProxyNet {
  readonly listeners: Listener[];
  /** The listener used to send over a transport (the first one of that protocol). */
  listenerFor(proto: TransportProto): Listener | undefined;
  /** Sends bytes; rejects with GW_ERR_SIP_TRANSPORT when the transport fails (TCP refused, reset, no listener). */
  send(buf: Buffer, dest: Destination): Promise<void>;
  close(): Promise<void>;
}

export interface NetOptions {
  listen: ReadonlyArray<{ proto: TransportProto; host: string; port: number }>;
  maxMessageSize: number;
  tcpIdleTimeoutMs: number;
  log: Logger;
  onMessage: Incoming;
  /** Parse failures and dropped bytes, for metrics. */
  onParseError?: (proto: TransportProto) => void;
}

interface Conn {
  id: number;
  sock: TcpSocket;
  key: string;
  local: Listener;
}

export async function openNet(opts: NetOptions): Promise<ProxyNet> {
  const listeners: Listener[] = [];
  const udps: Array<{ l: Listener; sock: UdpSocket }> = [];
  const servers: Server[] = [];
  const conns = new Map<number, Conn>();
  const byRemote = new Map<string, Conn>();
  const dialling = new Map<string, Promise<Conn>>();
  let nextId = 1;
  let closed = false;
  const { log, maxMessageSize } = opts;

  const deliver = (buf: Buffer, source: MessageSource, stream: boolean): void => {
    const r = parseMessage(buf, { maxMessageSize, stream });
    if (r.ok) {
      r.message.source = source;
      opts.onMessage(r.message, null, source);
    } else {
      opts.onParseError?.(source.proto);
      if (r.error.message) r.error.message.source = source;
      opts.onMessage(null, r.error, source);
    }
  };

  const adopt = (sock: TcpSocket, local: Listener): Conn => {
    const key = `${sock.remoteAddress}|${sock.remotePort}`;
    const c: Conn = { id: nextId++, sock, key, local };
    conns.set(c.id, c);
    byRemote.set(key, c);
    sock.setNoDelay(true);
    sock.setTimeout(opts.tcpIdleTimeoutMs, () => sock.destroy());
    let buf: Buffer = Buffer.alloc(0);
    sock.on('data', (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      // Frame by Content-Length. A header block that never ends, or a body bigger than allowed, closes the stream.
      for (;;) {
        let s = 0;
        while (s < buf.length && (buf[s] === 13 || buf[s] === 10)) s++;
        if (s > 0) buf = buf.subarray(s);
        if (buf.length === 0) return;
        const end = buf.indexOf('\r\n\r\n', 0, 'latin1');
        if (end < 0) {
          if (buf.length > maxMessageSize) {
            opts.onParseError?.('tcp');
            sock.destroy();
          }
          return;
        }
        const head = buf.toString('latin1', 0, end);
        const len = contentLength(head);
        if (len < 0 || end + 4 + len > maxMessageSize * 4) {
          opts.onParseError?.('tcp');
          sock.destroy();
          return;
        }
        const total = end + 4 + len;
        if (buf.length < total) return;
        const frame = buf.subarray(0, total);
        buf = buf.subarray(total);
        deliver(frame, {
          proto: 'tcp', address: sock.remoteAddress ?? '', port: sock.remotePort ?? 0,
          localAddress: local.address, localPort: local.port, connectionId: c.id,
        }, true);
        if (closed) return;
      }
    });
    sock.on('error', (e) => log.debug({ err: e.message, remote: key }, 'tcp connection error'));
    sock.on('close', () => {
      conns.delete(c.id);
      if (byRemote.get(key) === c) byRemote.delete(key);
    });
    return c;
  };

  try {
    for (const l of opts.listen) await bindOne(l);
  } catch (e) {
    // A listener that cannot bind (address in use, bad host) leaves nothing open behind it.
    closed = true;
    for (const u of udps) u.sock.close();
    for (const s of servers) s.close();
    throw new GwError('GW_ERR_SIP_TRANSPORT', `cannot listen: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }

  async function bindOne(l: { proto: TransportProto; host: string; port: number }): Promise<void> {
    if (l.proto === 'udp') {
      const sock = createSocket({ type: isIPv6(l.host) ? 'udp6' : 'udp4', reuseAddr: false });
      await new Promise<void>((resolve, reject) => {
        sock.once('error', reject);
        sock.bind(l.port, l.host, () => { sock.off('error', reject); resolve(); });
      });
      const a = sock.address();
      const listener: Listener = { proto: 'udp', address: a.address, port: a.port };
      sock.on('error', (e) => log.warn({ err: e.message }, 'udp socket error'));
      sock.on('message', (buf, rinfo) => {
        if (buf.length > maxMessageSize * 4) { opts.onParseError?.('udp'); return; }
        deliver(buf, { proto: 'udp', address: rinfo.address, port: rinfo.port, localAddress: a.address, localPort: a.port }, false);
      });
      listeners.push(listener);
      udps.push({ l: listener, sock });
    } else {
      const server = createServer();
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(l.port, l.host, () => { server.off('error', reject); resolve(); });
      });
      const a = server.address();
      const listener: Listener = { proto: 'tcp', address: typeof a === 'object' && a ? a.address : l.host, port: typeof a === 'object' && a ? a.port : l.port };
      server.on('connection', (sock) => { if (closed) sock.destroy(); else adopt(sock, listener); });
      server.on('error', (e) => log.warn({ err: e.message }, 'tcp server error'));
      listeners.push(listener);
      servers.push(server);
    }
  }

  const listenerFor = (proto: TransportProto): Listener | undefined => listeners.find((x) => x.proto === proto);

  const dial = (dest: Destination): Promise<Conn> => {
    const key = `${dest.address}|${dest.port}`;
    const pending = dialling.get(key);
    if (pending) return pending;
    const local = listenerFor('tcp');
    if (!local) return Promise.reject(new GwError('GW_ERR_SIP_TRANSPORT', 'no TCP listener'));
    const p = new Promise<Conn>((resolve, reject) => {
      const sock = connect({ host: dest.address, port: dest.port });
      const fail = (e: Error): void => { dialling.delete(key); reject(new GwError('GW_ERR_SIP_TRANSPORT', `tcp connect to ${dest.address}:${dest.port}: ${e.message}`)); };
      sock.once('error', fail);
      sock.setTimeout(5000, () => sock.destroy(new Error('connect timeout')));
      sock.once('connect', () => {
        sock.off('error', fail);
        dialling.delete(key);
        resolve(adopt(sock, local));
      });
    });
    dialling.set(key, p);
    return p;
  };

  return {
    listeners,
    listenerFor,
    async send(buf: Buffer, dest: Destination): Promise<void> {
      if (closed) throw new GwError('GW_ERR_SIP_TRANSPORT', 'proxy stopped');
      if (dest.proto === 'udp') {
        const u = udps[0];
        if (!u) throw new GwError('GW_ERR_SIP_TRANSPORT', 'no UDP listener');
        await new Promise<void>((resolve, reject) => {
          u.sock.send(buf, dest.port, dest.address, (err) => (err ? reject(new GwError('GW_ERR_SIP_TRANSPORT', err.message)) : resolve()));
        });
        return;
      }
      let c = dest.connectionId !== undefined ? conns.get(dest.connectionId) : undefined;
      if (!c || c.sock.destroyed) c = byRemote.get(`${dest.address}|${dest.port}`);
      if (!c || c.sock.destroyed) c = await dial(dest);
      const conn = c;
      await new Promise<void>((resolve, reject) => {
        conn.sock.write(buf, (err) => (err ? reject(new GwError('GW_ERR_SIP_TRANSPORT', err.message)) : resolve()));
      });
    },
    async close(): Promise<void> {
      closed = true;
      for (const c of conns.values()) c.sock.destroy();
      conns.clear();
      byRemote.clear();
      await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
      await Promise.all(udps.map((u) => new Promise<void>((resolve) => u.sock.close(() => resolve()))));
    },
  };
}

/** Content-Length from a header block (compact 'l' too); 0 when absent, -1 when malformed. */
function contentLength(head: string): number {
  let pos = 0;
  for (;;) {
    const nl = head.indexOf('\n', pos);
    if (nl < 0) return 0;
    pos = nl + 1;
    const c = head.charCodeAt(pos);
    if (c !== 67 && c !== 99 && c !== 76 && c !== 108) continue; // C c L l
    const colon = head.indexOf(':', pos);
    if (colon < 0) return 0;
    const name = head.slice(pos, colon).trim().toLowerCase();
    if (name !== 'content-length' && name !== 'l') continue;
    let end = head.indexOf('\r', colon);
    if (end < 0) end = head.length;
    const v = head.slice(colon + 1, end).trim();
    if (!/^\d{1,9}$/.test(v)) return -1;
    return Number(v);
  }
}
