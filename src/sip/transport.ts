// UDP and TCP transports (RFC 3261 §18, RFC 3581, RFC 5626 keep-alives). Listens on configured addresses,
// parses what arrives, stamps received/rport on requests, routes responses by Via, sends requests to URIs or
// explicit destinations, and reuses TCP connections keyed by remote address. Send failures are returned as
// rejected promises (GwError GW_ERR_SIP_TRANSPORT); nothing is thrown from a socket event.
import dgram from 'node:dgram';
import dns from 'node:dns';
import { lookup } from 'node:dns/promises';
import net from 'node:net';
import os from 'node:os';
import { GwError } from '../errors.js';
import type { Logger } from '../log.js';
import { StreamFramer } from './framer.js';
import { formatHost } from './uri.js';
import { parseUri, uriTransport, type SipUri } from './uri.js';
import type { MessageSource, SipMessage, SipRequest, SipResponse, TransportProto } from './message.js';
import { parseMessage, SipParseError, type ParseResult } from './parser.js';
import { QueueProbe } from './queue-probe.js';

export interface ListenSpec { proto: TransportProto; host: string; port: number }

/** A listener after binding: `port` is the real port (useful with port 0). */
export interface BoundListener { proto: TransportProto; host: string; port: number }

/** Where to send: an IP address (IPv6 without brackets) or a host name, a port, and the transport. */
export interface Destination {
  proto: TransportProto;
  address: string;
  port: number;
  /** Prefer this TCP connection (e.g. the one a request came in on). */
  connectionId?: number;
}

/** The metrics this layer touches; structurally a subset of src/metrics.ts `Metrics`. */
export interface SipMetricsLike {
  sipParseErrors?: { inc(labels: { proto: string }): void };
  sipTcpConnections?: { inc(): void; dec(): void };
  sipDropped?: { inc(labels: { reason: string }): void };
  sipRetransmissions?: { inc(labels: { method: string }): void };
  sipTransactions?: { inc(labels: { kind: string }): void; dec(labels: { kind: string }): void };
  sipResponses?: { inc(labels: { code: string; origin: string }): void };
}

/** Who hears that a posted send failed (a transaction). */
export interface SendFailureSink {
  sendFailed(err: Error): void;
}

/** Called for every received message, and for every parse failure (answer it when `answerable`). */
export type ReceiveHandler = (msg: SipMessage | SipParseError, source: MessageSource) => void;

export interface TransportOptions {
  listen: ReadonlyArray<ListenSpec>;
  /** Host written in Via / Record-Route; defaults to the listen address (first non-loopback one for wildcards). */
  advertisedHost?: string;
  maxMessageSize: number;
  tcpIdleTimeoutMs: number;
  tcpConnectTimeoutMs?: number;
  /** UDP socket receive/send buffer size asked of the kernel (default 4 MiB; capped by net.core.rmem_max/wmem_max). */
  udpBufferBytes?: number;
  /** Incoming TCP connections accepted per listener (default 10 000). */
  maxTcpConnections?: number;
  /**
   * A message begun on a TCP connection must be complete within this time, else the connection is closed
   * (slowloris: the idle timeout alone is reset by every trickled byte). Default min(20 s, tcpIdleTimeoutMs),
   * like Kamailio's tcp_msg_read_timeout.
   */
  tcpMessageTimeoutMs?: number;
  /** Incoming TCP connections open at once from one address (default 256): one host cannot take every slot. */
  maxTcpConnectionsPerSource?: number;
  logger: Logger;
  metrics?: SipMetricsLike;
}

interface Conn {
  id: number;
  socket: net.Socket;
  framer: StreamFramer;
  key: string;
  address: string;
  port: number;
  localAddress: string;
  localPort: number;
  closed: boolean;
  /** Messages delivered so far, and when the message now buffered (incomplete) began (0: none). */
  messages: number;
  partialSince: number;
  partialTimer: NodeJS.Timeout | undefined;
}

interface UdpListener { spec: BoundListener; socket: dgram.Socket; family: 4 | 6; wildcard: boolean }
interface TcpListener { spec: BoundListener; server: net.Server; family: 4 | 6 }

const DEFAULT_PORT = 5060;

/** '::ffff:192.0.2.1' (dual-stack socket) → '192.0.2.1'. */
export function normalizeAddress(a: string): string {
  return a.length > 7 && a.charCodeAt(0) === 58 && a.startsWith('::ffff:') && net.isIPv4(a.slice(7)) ? a.slice(7) : a;
}

function keyOf(address: string, port: number): string {
  return `${normalizeAddress(address).toLowerCase()}|${port}`;
}

function transportError(detail: string, cause?: unknown): GwError {
  return new GwError('GW_ERR_SIP_TRANSPORT', detail, cause !== undefined ? { cause } : undefined);
}

function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '[::]';
}

/**
 * dgram runs every destination through dns.lookup, which for an address literal still costs a process.nextTick and
 * a few objects per datagram. sendUdp only ever passes literals (host names are resolved before), so answer those
 * at once and leave anything else to the resolver.
 */
function literalLookup(host: string, opts: dns.LookupOneOptions, cb: (err: NodeJS.ErrnoException | null, address: string, family: number) => void): void {
  const fam = literalFamily(host);
  if (fam !== 0) cb(null, host, fam);
  // dgram passes the socket's family as a bare number (lookup4/lookup6), whatever the typings say
  else dns.lookup(host, typeof opts === 'number' ? { family: opts } : { ...opts, all: false }, cb);
}

/** 4 or 6 for an address literal, 0 for a name; memoised (a gateway talks to the same few peers all day). */
const familyMemo = new Map<string, 0 | 4 | 6>();
function literalFamily(host: string): 0 | 4 | 6 {
  let f = familyMemo.get(host);
  if (f === undefined) {
    f = net.isIP(host) as 0 | 4 | 6;
    if (familyMemo.size >= 4096) familyMemo.clear(); // bounded: sources are attacker-chosen
    familyMemo.set(host, f);
  }
  return f;
}

function isPort(p: number): boolean {
  return Number.isInteger(p) && p >= 1 && p <= 65535;
}

function stripBrackets(h: string): string {
  return h.charCodeAt(0) === 91 && h.endsWith(']') ? h.slice(1, -1) : h;
}

/** First non-internal address of the family, for Via when listening on a wildcard. */
function interfaceAddress(family: 4 | 6): string {
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) {
      if (!a.internal && (a.family === 'IPv4' ? 4 : 6) === family && !a.address.startsWith('fe80')) return a.address;
    }
  }
  return family === 4 ? '127.0.0.1' : '::1';
}

export class SipTransport {
  private handler: ReceiveHandler;
  private readonly log: Logger;
  private readonly udp: UdpListener[] = [];
  private readonly tcp: TcpListener[] = [];
  private readonly conns = new Map<number, Conn>();
  private readonly byKey = new Map<string, Conn>();
  /** Open incoming connections per remote address. */
  private readonly perSource = new Map<string, number>();
  private readonly connecting = new Map<string, Promise<Conn>>();
  private nextConnId = 1;
  private closing = false;
  private readonly advertised = new Map<string, { host: string; port: number }>();
  private probe: QueueProbe | undefined;
  /** The probe socket's port (-1: none): one integer compare per datagram before the probe's own check. */
  private probePort = -1;

  constructor(private readonly opts: TransportOptions, handler?: ReceiveHandler) {
    this.log = opts.logger;
    this.handler = handler ?? (() => undefined);
  }

  /** Sets the receiver (the transaction layer installs itself here). */
  setHandler(h: ReceiveHandler): void { this.handler = h; }

  /** Binds every listener; rejects (and closes what was opened) when one cannot bind. */
  async start(): Promise<BoundListener[]> {
    try {
      for (const spec of this.opts.listen) {
        const host = stripBrackets(spec.host);
        if (spec.proto === 'udp') await this.listenUdp(host, spec.port);
        else await this.listenTcp(host, spec.port);
      }
    } catch (e) {
      await this.close();
      throw e;
    }
    for (const l of [...this.udp.map((u) => ({ spec: u.spec, family: u.family })), ...this.tcp.map((t) => ({ spec: t.spec, family: t.family }))]) {
      const k = `${l.spec.proto}${l.family}`;
      if (this.advertised.has(k)) continue;
      const host = this.opts.advertisedHost ?? (isWildcard(l.spec.host) ? interfaceAddress(l.family) : l.spec.host);
      this.advertised.set(k, { host, port: l.spec.port });
    }
    return this.listeners();
  }

  /**
   * Starts measuring the receive-queue delay of the first UDP listener (see queue-probe.ts): `onDelay` gets a
   * figure every intervalMs or so. Undefined when there is no UDP listener. Stopped by close().
   */
  async startQueueProbe(intervalMs: number, onDelay: (ms: number) => void): Promise<QueueProbe | undefined> {
    const l = this.udp[0];
    if (l === undefined || this.probe !== undefined) return this.probe;
    const p = new QueueProbe({ host: l.spec.host, port: l.spec.port, family: l.family, intervalMs, onDelay });
    await p.start();
    this.probe = p;
    this.probePort = p.port;
    return p;
  }

  listeners(): BoundListener[] {
    return [...this.udp.map((u) => ({ ...u.spec })), ...this.tcp.map((t) => ({ ...t.spec }))];
  }

  /**
   * Host and port to put in Via / Record-Route for a transport (and address family of the peer, default IPv4
   * when such a listener exists). Undefined when there is no listener for that transport.
   */
  localAddress(proto: TransportProto, family?: 4 | 6): { host: string; port: number } | undefined {
    if (family !== undefined) {
      const exact = this.advertised.get(`${proto}${family}`);
      if (exact) return exact;
    }
    return this.advertised.get(`${proto}4`) ?? this.advertised.get(`${proto}6`);
  }

  /** Open TCP connections. */
  get tcpConnectionCount(): number { return this.conns.size; }

  // ------------------------------------------------------------------------------------------ receive

  private listenUdp(host: string, port: number): Promise<void> {
    const family: 4 | 6 = net.isIPv6(host) ? 6 : 4;
    const socket = dgram.createSocket({ type: family === 6 ? 'udp6' : 'udp4', lookup: literalLookup });
    return new Promise((resolve, reject) => {
      const onErr = (err: Error): void => reject(transportError(`cannot bind udp ${formatHost(host)}:${port}`, err));
      socket.once('error', onErr);
      socket.bind(port, host, () => {
        socket.off('error', onErr);
        socket.on('error', (err) => this.log.warn({ err: err.message, proto: 'udp' }, 'udp socket error'));
        // bursts (a flood, a retransmission storm) must queue in the kernel rather than be dropped
        const want = this.opts.udpBufferBytes ?? 4 * 1024 * 1024;
        try { socket.setRecvBufferSize(want); socket.setSendBufferSize(want); } catch (e) {
          this.log.debug({ err: e instanceof Error ? e.message : String(e) }, 'udp buffer size not changed');
        }
        const spec: BoundListener = { proto: 'udp', host, port: socket.address().port };
        const l: UdpListener = { spec, socket, family, wildcard: isWildcard(host) };
        socket.on('message', (buf, rinfo) => this.onDatagram(l, buf, rinfo));
        this.udp.push(l);
        resolve();
      });
    });
  }

  private onDatagram(l: UdpListener, buf: Buffer, rinfo: dgram.RemoteInfo): void {
    try {
      if (rinfo.port === this.probePort && this.probe!.take(buf)) return;
      const source: MessageSource = {
        proto: 'udp', address: normalizeAddress(rinfo.address), port: rinfo.port, localAddress: l.spec.host, localPort: l.spec.port,
      };
      // a bare CRLF / CRLFCRLF datagram is a NAT keep-alive
      if (buf.length <= 4 && (buf[0] === 13 || buf[0] === 10)) return;
      this.deliver(parseMessage(buf, { maxMessageSize: this.opts.maxMessageSize }), source);
    } catch (e) {
      this.log.error({ err: e instanceof Error ? e.message : String(e) }, 'udp receive handler failed');
    }
  }

  private listenTcp(host: string, port: number): Promise<void> {
    const family: 4 | 6 = net.isIPv6(host) ? 6 : 4;
    const server = net.createServer((socket) => {
      const address = normalizeAddress(socket.remoteAddress ?? '');
      const open = this.perSource.get(address) ?? 0;
      if (open >= (this.opts.maxTcpConnectionsPerSource ?? 256)) {
        this.opts.metrics?.sipDropped?.inc({ reason: 'tcp-source-limit' });
        this.log.debug({ remote: address, open }, 'tcp connection refused: too many from this address');
        socket.destroy();
        return;
      }
      this.perSource.set(address, open + 1);
      socket.once('close', () => {
        const n = (this.perSource.get(address) ?? 1) - 1;
        if (n <= 0) this.perSource.delete(address);
        else this.perSource.set(address, n);
      });
      this.adopt(socket);
    });
    server.maxConnections = this.opts.maxTcpConnections ?? 10_000;
    return new Promise((resolve, reject) => {
      const onErr = (err: Error): void => reject(transportError(`cannot bind tcp ${formatHost(host)}:${port}`, err));
      server.once('error', onErr);
      server.listen({ host, port, ipv6Only: false }, () => {
        server.off('error', onErr);
        server.on('error', (err) => this.log.warn({ err: err.message, proto: 'tcp' }, 'tcp server error'));
        const addr = server.address() as net.AddressInfo;
        this.tcp.push({ spec: { proto: 'tcp', host, port: addr.port }, server, family });
        resolve();
      });
    });
  }

  /** One timer per connection at most, re-armed for the remaining time of the message now pending. */
  private armPartialTimer(conn: Conn): void {
    if (conn.partialTimer) return;
    const limit = this.opts.tcpMessageTimeoutMs ?? Math.min(20_000, this.opts.tcpIdleTimeoutMs);
    const check = (): void => {
      conn.partialTimer = undefined;
      if (conn.closed || conn.partialSince === 0) return;
      const age = Date.now() - conn.partialSince;
      if (age < limit) { conn.partialTimer = setTimeout(check, limit - age); return; }
      this.opts.metrics?.sipDropped?.inc({ reason: 'tcp-incomplete' });
      this.log.info({ remote: `${conn.address}:${conn.port}`, bufferedBytes: conn.framer.buffered, ms: age }, 'tcp message not completed in time, closing');
      conn.socket.destroy();
    };
    conn.partialTimer = setTimeout(check, limit);
  }

  private adopt(socket: net.Socket): Conn {
    const address = normalizeAddress(socket.remoteAddress ?? '');
    const port = socket.remotePort ?? 0;
    const conn: Conn = {
      id: this.nextConnId++, socket, key: keyOf(address, port), address, port,
      localAddress: normalizeAddress(socket.localAddress ?? ''), localPort: socket.localPort ?? 0, closed: false,
      framer: undefined as unknown as StreamFramer, messages: 0, partialSince: 0, partialTimer: undefined,
    };
    const source: MessageSource = {
      proto: 'tcp', address, port, localAddress: conn.localAddress, localPort: conn.localPort, connectionId: conn.id,
    };
    conn.framer = new StreamFramer(this.opts.maxMessageSize, {
      onMessage: (b) => {
        conn.messages++;
        this.deliver(parseMessage(b, { maxMessageSize: this.opts.maxMessageSize, stream: true }), { ...source });
      },
      onPing: () => { if (!socket.destroyed) socket.write('\r\n'); },
      onError: (kind, reason, head) => {
        this.opts.metrics?.sipParseErrors?.inc({ proto: 'tcp' });
        this.log.debug({ kind, reason, remote: `${address}:${port}` }, 'tcp framing error, closing');
        if (head !== undefined) {
          // tell the caller what it can answer (513 / 400) before the connection goes
          const r = parseMessage(head, { maxMessageSize: this.opts.maxMessageSize });
          const req = r.ok ? (r.message.isRequest() && r.message.method !== 'ACK' ? r.message : null) : r.error.message;
          if (req !== null) req.source = { ...source };
          const err = kind === 'too-large'
            ? new SipParseError('too-large', 513, reason, req)
            : new SipParseError(req ? 'bad' : 'garbage', 400, reason, req);
          this.safeHandle(err, { ...source });
        }
        socket.end();
        socket.destroySoon?.();
      },
    });
    socket.setNoDelay(true);
    socket.setTimeout(this.opts.tcpIdleTimeoutMs, () => socket.destroy());
    socket.on('data', (chunk: Buffer) => {
      const delivered = conn.messages;
      try { conn.framer.push(chunk); } catch (e) {
        this.log.error({ err: e instanceof Error ? e.message : String(e) }, 'tcp receive handler failed');
      }
      // the clock of an incomplete message starts with its first byte (a delivered message restarts it)
      if (conn.framer.buffered === 0) conn.partialSince = 0;
      else if (conn.partialSince === 0 || conn.messages !== delivered) {
        conn.partialSince = Date.now();
        this.armPartialTimer(conn);
      }
    });
    socket.on('error', (err) => this.log.debug({ err: err.message, remote: `${address}:${port}` }, 'tcp connection error'));
    socket.on('close', () => {
      conn.closed = true;
      if (conn.partialTimer) clearTimeout(conn.partialTimer);
      conn.framer.close();
      this.conns.delete(conn.id);
      for (const [k, c] of this.byKey) if (c === conn) this.byKey.delete(k);
      this.opts.metrics?.sipTcpConnections?.dec();
    });
    this.conns.set(conn.id, conn);
    this.byKey.set(conn.key, conn);
    this.opts.metrics?.sipTcpConnections?.inc();
    return conn;
  }

  private deliver(r: ParseResult, source: MessageSource): void {
    if (!r.ok) {
      this.opts.metrics?.sipParseErrors?.inc({ proto: source.proto });
      if (r.error.message) r.error.message.source = source;
      this.safeHandle(r.error, source);
      return;
    }
    const msg = r.message;
    msg.source = source;
    if (msg.isRequest()) {
      if (source.connectionId !== undefined) this.aliasConnection(msg, source.connectionId);
      stampVia(msg, source);
    }
    this.safeHandle(msg, source);
  }

  /**
   * RFC 5923: a request whose top Via carries `;alias` offers its connection for requests to its sent-by address, so
   * requests to host:port (e.g. a PBX's listening port) reuse the connection it opened. Only IP sent-by values that
   * match the connection's remote address are accepted (an alias must not steal traffic for someone else).
   */
  private aliasConnection(req: SipRequest, connectionId: number): void {
    const v = req.tryTopVia();
    if (v === null || !v.params.has('alias')) return;
    const conn = this.conns.get(connectionId);
    if (conn === undefined || normalizeAddress(v.host).toLowerCase() !== conn.address.toLowerCase()) return;
    const key = keyOf(conn.address, v.port ?? DEFAULT_PORT);
    const current = this.byKey.get(key);
    if (current === undefined || current.closed) this.byKey.set(key, conn);
  }

  private safeHandle(m: SipMessage | SipParseError, source: MessageSource): void {
    try {
      this.handler(m, source);
    } catch (e) {
      this.log.error({ err: e instanceof Error ? e.message : String(e), remote: `${source.address}:${source.port}` }, 'SIP handler threw');
    }
  }

  // ------------------------------------------------------------------------------------------ send

  /** Sends bytes (or a message) to a destination. Rejects with GW_ERR_SIP_TRANSPORT; never throws. */
  send(data: Buffer | SipMessage, dest: Destination): Promise<void> {
    // not async: one promise per datagram, not three (this is the hot path of every message we relay)
    try {
      const buf = Buffer.isBuffer(data) ? data : data.toBuffer();
      if (this.closing) throw transportError('transport closed');
      if (!isPort(dest.port)) throw transportError(`bad destination port ${String(dest.port)}`);
      if (dest.proto === 'udp') return this.sendUdp(buf, dest);
      if (dest.proto === 'tcp') return this.sendTcp(buf, dest);
      throw transportError(`unsupported transport ${String(dest.proto)}`);
    } catch (e) {
      return Promise.reject(e instanceof GwError ? e : transportError('send failed', e));
    }
  }

  /**
   * Sends a response where its top Via says (RFC 3261 §18.2.2, RFC 3581): over TCP on the connection the request
   * came in on (`connectionId`) or the one to received:rport, else a new connection to received/sent-by; over UDP to
   * maddr, else received:rport, else sent-by (default port 5060).
   */
  async sendResponse(res: SipResponse, connectionId?: number): Promise<void> {
    return this.send(res, this.responseDestination(res, connectionId));
  }

  /** Where sendResponse sends (see there). Throws GW_ERR_SIP_TRANSPORT for a Via it cannot use. */
  responseDestination(res: SipResponse, connectionId?: number): Destination {
    const via = res.tryTopVia();
    if (via === null) throw transportError('response has no usable Via');
    const proto = via.transport === 'UDP' ? 'udp' : via.transport === 'TCP' ? 'tcp' : null;
    if (proto === null) throw transportError(`unsupported Via transport ${via.transport}`);
    const rport = typeof via.rport === 'number' ? via.rport : undefined;
    if (proto === 'tcp') {
      const host = stripBrackets(via.received ?? via.host);
      const existing = (connectionId !== undefined ? this.conns.get(connectionId) : undefined)
        ?? this.byKey.get(keyOf(host, rport ?? via.port ?? DEFAULT_PORT));
      if (existing && !existing.closed) return { proto, address: existing.address, port: existing.port, connectionId: existing.id };
      return { proto, address: host, port: via.port ?? DEFAULT_PORT };
    }
    if (via.maddr !== undefined) return { proto, address: stripBrackets(via.maddr), port: via.port ?? DEFAULT_PORT };
    if (via.received !== undefined) return { proto, address: stripBrackets(via.received), port: rport ?? via.port ?? DEFAULT_PORT };
    return { proto, address: via.host, port: via.port ?? DEFAULT_PORT };
  }

  /**
   * Destination for a SIP URI: `;transport=` (udp default, tcp), `;maddr=` over the host, port default 5060, host names
   * resolved with the system resolver (A/AAAA; no SRV/NAPTR). Rejects with GW_ERR_SIP_URI for unusable URIs.
   */
  async resolve(uri: SipUri | string): Promise<Destination> {
    const u = typeof uri === 'string' ? parseUri(uri) : uri;
    if (u === null || u.scheme !== 'sip') throw new GwError('GW_ERR_SIP_URI', `cannot route to ${typeof uri === 'string' ? uri : uri.raw}`);
    const t = uriTransport(u) ?? 'udp';
    if (t !== 'udp' && t !== 'tcp') throw new GwError('GW_ERR_SIP_URI', `unsupported transport ${t}`);
    const host = stripBrackets(u.params.get('maddr') ?? u.host);
    const address = await this.resolveHost(host);
    return { proto: t, address, port: u.port ?? DEFAULT_PORT };
  }

  private async resolveHost(host: string): Promise<string> {
    if (literalFamily(host) !== 0) return host;
    try {
      return (await lookup(host)).address;
    } catch (e) {
      throw transportError(`cannot resolve ${host}`, e);
    }
  }

  private sendUdp(buf: Buffer, dest: Destination): Promise<void> {
    const host = stripBrackets(dest.address);
    const fam = literalFamily(host);
    if (fam === 0) return this.resolveHost(host).then((a) => this.sendUdpTo(buf, a, net.isIPv6(a) ? 6 : 4, dest.port));
    return this.sendUdpTo(buf, host, fam, dest.port);
  }

  /** The socket for a destination of this family, and the address to give it (IPv4-mapped on a dual-stack socket). */
  private udpTarget(address: string, fam: 4 | 6): { sock: dgram.Socket; to: string } | undefined {
    for (const u of this.udp) if (u.family === fam) return { sock: u.socket, to: address };
    if (fam === 4) for (const u of this.udp) if (u.family === 6 && u.wildcard) return { sock: u.socket, to: `::ffff:${address}` };
    return undefined;
  }

  private sendUdpTo(buf: Buffer, address: string, fam: 4 | 6, port: number): Promise<void> {
    const t = this.udpTarget(address, fam);
    if (t === undefined) throw transportError(`no udp listener for IPv${fam} destination ${address}`);
    return new Promise<void>((resolve, reject) => this.udpWrite(t, buf, address, port, (err) => (err ? reject(err) : resolve())));
  }

  /** One datagram out; `done` is always called asynchronously, with a GW_ERR_SIP_TRANSPORT error or null. */
  private udpWrite(t: { sock: dgram.Socket; to: string }, buf: Buffer, address: string, port: number, done: (err: Error | null) => void): void {
    try {
      t.sock.send(buf, port, t.to, (err) => done(err ? transportError(`udp send to ${formatHost(address)}:${port} failed`, err) : null));
    } catch (e) {
      const err = transportError(`udp send to ${formatHost(address)}:${port} failed`, e);
      queueMicrotask(() => done(err));
    }
  }

  /**
   * send() without a promise: a failure goes to `owner.sendFailed` (always asynchronously). The transaction layer
   * sends every datagram this way; a promise, its .catch() and their microtasks per message cost ~5 % of the CPU,
   * and an error callback per transaction was a closure kept for its whole linger time.
   */
  post(data: Buffer, dest: Destination, owner: SendFailureSink): void {
    const port = dest.port;
    if (dest.proto === 'udp' && !this.closing && isPort(port)) {
      const host = stripBrackets(dest.address);
      const fam = literalFamily(host);
      const t = fam === 0 ? undefined : this.udpTarget(host, fam);
      if (t !== undefined) {
        this.udpWrite(t, data, host, port, (err) => { if (err) owner.sendFailed(err); });
        return;
      }
    }
    this.send(data, dest).catch((err: Error) => owner.sendFailed(err));
  }

  private async sendTcp(buf: Buffer, dest: Destination): Promise<void> {
    let conn = dest.connectionId !== undefined ? this.conns.get(dest.connectionId) : undefined;
    if (conn === undefined || conn.closed) {
      const address = await this.resolveHost(stripBrackets(dest.address));
      conn = this.byKey.get(keyOf(address, dest.port));
      if (conn === undefined || conn.closed) conn = await this.connect(address, dest.port);
    }
    const c = conn;
    await new Promise<void>((resolve, reject) => {
      if (c.closed || c.socket.destroyed || !c.socket.writable) {
        reject(transportError(`tcp connection to ${formatHost(c.address)}:${c.port} is closed`));
        return;
      }
      c.socket.write(buf, (err) => (err ? reject(transportError(`tcp write to ${formatHost(c.address)}:${c.port} failed`, err)) : resolve()));
    });
  }

  private connect(address: string, port: number): Promise<Conn> {
    const key = keyOf(address, port);
    const pending = this.connecting.get(key);
    if (pending) return pending;
    const p = new Promise<Conn>((resolve, reject) => {
      const socket = net.connect({ host: address, port });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(transportError(`tcp connect to ${formatHost(address)}:${port} timed out`));
      }, this.opts.tcpConnectTimeoutMs ?? 3000);
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(transportError(`tcp connect to ${formatHost(address)}:${port} failed`, err));
      });
      socket.once('connect', () => {
        clearTimeout(timer);
        if (this.closing) { socket.destroy(); reject(transportError('transport closed')); return; }
        const conn = this.adopt(socket);
        // keyed by the address we dialled, so later sends to it reuse the connection
        if (conn.key !== key) this.byKey.set(key, conn);
        resolve(conn);
      });
    });
    this.connecting.set(key, p);
    const done = (): void => { this.connecting.delete(key); };
    p.then(done, done);
    return p;
  }

  /** Closes listeners and connections. */
  async close(): Promise<void> {
    this.closing = true;
    this.probe?.close();
    this.probe = undefined;
    this.probePort = -1;
    for (const c of this.conns.values()) c.socket.destroy();
    await Promise.all([
      ...this.udp.map((u) => new Promise<void>((r) => { try { u.socket.close(() => r()); } catch { r(); } })),
      ...this.tcp.map((t) => new Promise<void>((r) => t.server.close(() => r()))),
    ]);
    this.udp.length = 0;
    this.tcp.length = 0;
    this.conns.clear();
    this.byKey.clear();
  }
}

/**
 * RFC 3261 §18.2.1 / RFC 3581 §4: `received` when the sent-by host differs from the source address (always when
 * rport was asked for) and `rport=<source port>` when the client sent an empty rport.
 */
export function stampVia(req: SipRequest, source: MessageSource): void {
  const v = req.tryTopVia();
  if (v === null) return;
  const wantRport = v.rport === null;
  const differs = v.host.toLowerCase() !== source.address.toLowerCase();
  if (!wantRport && !differs) return;
  let value = `${v.protocol}/${v.transport} ${formatHost(v.host)}${v.port !== undefined ? `:${v.port}` : ''}`;
  for (const [k, val] of v.params) {
    if (k === 'received') continue;
    if (k === 'rport') { value += wantRport ? `;rport=${source.port}` : `;rport=${String(val)}`; continue; }
    value += val === null ? `;${k}` : `;${k}=${val}`;
  }
  value += `;received=${source.address}`;
  req.replaceTopVia(value);
}
