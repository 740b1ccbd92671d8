// A small SIP user agent for end-to-end tests: the caller and the callee (or an Asterisk box) around the
// gateway, over real UDP and TCP sockets on loopback. It has its own tiny parser on purpose: a test double
// must not share the bugs of the stack it checks. It speaks enough RFC 3261 to be an honest peer:
// INVITE client (optional retransmission over UDP, ACK for non-2xx on the same branch, CANCEL), INVITE server
// (100/180/200 with 2xx retransmission until ACK, 487 on CANCEL), dialogs with route sets from Record-Route,
// in-dialog requests (ACK, BYE, re-INVITE, INFO, UPDATE ...) sent to the first Route (or strictly to the R-URI).
//
//   const callee = await SipUa.start({ name: 'asterisk', proto: 'tcp', behaviour: { kind: 'answer', ringMs: 20 } });
//   const caller = await SipUa.start({ name: 'alice' });          // both UDP and TCP sockets are always open
//   const call = caller.invite({ to: 'sip:100@127.0.0.1:5060', via: { host: '127.0.0.1', port: 5060, proto: 'udp' },
//                                headers: [['P-Accountcode', 'spoof']] });
//   await call.status(180); const ok = await call.final();        // every response: call.responses
//   call.ack(); await call.dialog!.request('BYE').final();        // or call.cancel(), call.retransmit()
//   (await callee.waitDialog(call.callId)).request('BYE');        // BYE from the callee side
//   callee.received / callee.requests('INVITE') / callee.waitRequest('ACK') / ua.waitFor(pred)
//   ua.request('OPTIONS', { to, via }) · ua.sendRaw(wireBytes, dest) for hostile input · ua.close()
// Behaviours (ua.behaviour may be changed between calls): answer (delayMs, ringMs, trying, body, crossCancel),
// reject (status, reason, delayMs, ringMs, headers), ring (180 then nothing until CANCEL), silent (answers nothing
// at all: a dead box). Non-INVITE requests are answered 200 (BYE without a dialog: 481).
import { createSocket, type Socket as UdpSocket, type RemoteInfo } from 'node:dgram';
import { createServer, connect, type Server, type Socket as TcpSocket } from 'node:net';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';

export type UaProto = 'udp' | 'tcp';

export interface HostPort {
  host: string;
  port: number;
  proto: UaProto;
}

const COMPACT: Record<string, string> = {
  i: 'call-id', m: 'contact', e: 'content-encoding', l: 'content-length', c: 'content-type', f: 'from',
  s: 'subject', k: 'supported', t: 'to', v: 'via', r: 'refer-to', o: 'event', u: 'allow-events', x: 'session-expires',
};

/** Lower-case full header name for a name as written on the wire (compact forms expanded). */
export function canonicalName(name: string): string {
  const n = name.trim().toLowerCase();
  return COMPACT[n] ?? n;
}

/** Splits a header value on commas that are outside quotes and angle brackets. */
export function splitCommas(value: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let quoted = false;
  let start = 0;
  for (let i = 0; i < value.length; i++) {
    const ch = value[i];
    if (quoted) {
      if (ch === '\\') i++;
      else if (ch === '"') quoted = false;
    } else if (ch === '"') quoted = true;
    else if (ch === '<') depth++;
    else if (ch === '>') depth = Math.max(0, depth - 1);
    else if (ch === ',' && depth === 0) {
      out.push(value.slice(start, i).trim());
      start = i + 1;
    }
  }
  out.push(value.slice(start).trim());
  return out.filter((s) => s.length > 0);
}

/** A message as the UA saw it. `headers` keeps wire order and wire names. */
let messageSeq = 0;

export class UaMessage {
  readonly isRequest: boolean;
  readonly method: string;
  readonly uri: string;
  readonly status: number;
  readonly reason: string;
  readonly headers: Array<[string, string]>;
  readonly body: string;
  readonly raw: string;
  readonly source: HostPort;
  readonly at: number;
  /** Order of creation across every UA in this process: `at` has 1 ms resolution, and a failover often takes less. */
  readonly seq: number;

  constructor(raw: string, source: HostPort) {
    this.raw = raw;
    this.source = source;
    this.at = Date.now();
    this.seq = ++messageSeq;
    const headEnd = raw.indexOf('\r\n\r\n');
    const head = headEnd >= 0 ? raw.slice(0, headEnd) : raw;
    this.body = headEnd >= 0 ? raw.slice(headEnd + 4) : '';
    const lines = head.split('\r\n');
    const start = lines[0] ?? '';
    if (start.startsWith('SIP/2.0 ')) {
      this.isRequest = false;
      this.method = '';
      this.uri = '';
      this.status = Number(start.slice(8, 11));
      this.reason = start.slice(12);
    } else {
      const parts = start.split(' ');
      this.isRequest = true;
      this.method = parts[0] ?? '';
      this.uri = parts[1] ?? '';
      this.status = 0;
      this.reason = '';
    }
    this.headers = [];
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i]!;
      if ((line.startsWith(' ') || line.startsWith('\t')) && this.headers.length > 0) {
        const last = this.headers[this.headers.length - 1]!;
        last[1] = `${last[1]} ${line.trim()}`;
        continue;
      }
      const colon = line.indexOf(':');
      if (colon <= 0) continue;
      this.headers.push([line.slice(0, colon).trim(), line.slice(colon + 1).trim()]);
    }
    for (const [k, v] of this.headers) {
      const n = canonicalName(k);
      const list = this.byName.get(n);
      if (list) list.push(v);
      else this.byName.set(n, [v]);
    }
  }

  /** Header values by canonical name, in wire order (built once: the UA also serves as a load-test peer). */
  private readonly byName = new Map<string, string[]>();

  /** First value of a header (compact forms understood), whole line. */
  header(name: string): string | undefined {
    return this.byName.get(canonicalName(name))?.[0];
  }

  /** Every header line with this name (compact forms understood), values not comma-split. */
  headerLines(name: string): string[] {
    return [...(this.byName.get(canonicalName(name)) ?? [])];
  }

  /** Every value of a header, comma lists split. */
  headerValues(name: string): string[] {
    return this.headerLines(name).flatMap(splitCommas);
  }

  get callId(): string { return this.header('call-id') ?? ''; }
  get cseq(): { seq: number; method: string } {
    const [seq, method] = (this.header('cseq') ?? '').split(/\s+/);
    return { seq: Number(seq), method: method ?? '' };
  }
  get topBranch(): string { return param(this.headerValues('via')[0] ?? '', 'branch') ?? ''; }
  get fromTag(): string { return param(this.header('from') ?? '', 'tag') ?? ''; }
  get toTag(): string { return param(this.header('to') ?? '', 'tag') ?? ''; }
}

/** A header parameter (outside the <...> part), e.g. tag or branch. */
export function param(value: string, name: string): string | undefined {
  const gt = value.lastIndexOf('>');
  const tail = gt >= 0 ? value.slice(gt + 1) : value;
  for (const p of tail.split(';').slice(1)) {
    const eq = p.indexOf('=');
    const k = (eq >= 0 ? p.slice(0, eq) : p).trim().toLowerCase();
    if (k === name.toLowerCase()) return eq >= 0 ? p.slice(eq + 1).trim() : '';
  }
  return undefined;
}

/** The URI inside a name-addr (`"x" <sip:a@b>;tag=1` → sip:a@b) or the addr-spec itself. */
export function uriOf(value: string): string {
  const lt = value.indexOf('<');
  if (lt >= 0) return value.slice(lt + 1, value.indexOf('>', lt));
  const semi = value.indexOf(';');
  return (semi >= 0 ? value.slice(0, semi) : value).trim();
}

/** Where a SIP URI points: host, port (5060 default) and transport parameter (udp default). */
export function hopOf(uri: string, fallbackProto: UaProto = 'udp'): HostPort {
  let rest = uri.replace(/^sips?:/i, '');
  const at = rest.indexOf('@');
  if (at >= 0) rest = rest.slice(at + 1);
  const [hostport, ...params] = rest.split(';');
  let host = hostport ?? '';
  let port = 5060;
  if (host.startsWith('[')) {
    const close = host.indexOf(']');
    const p = host.slice(close + 1).replace(/^:/, '');
    if (p) port = Number(p);
    host = host.slice(1, close);
  } else {
    const colon = host.lastIndexOf(':');
    if (colon >= 0) {
      port = Number(host.slice(colon + 1));
      host = host.slice(0, colon);
    }
  }
  let proto: UaProto = fallbackProto;
  for (const p of params) {
    const [k, v] = p.split('=');
    if (k?.toLowerCase() === 'transport' && v) proto = v.toLowerCase() === 'tcp' ? 'tcp' : 'udp';
  }
  return { host, port, proto };
}

const rnd = (n = 6): string => randomBytes(n).toString('hex');

/** How the UA answers an INVITE (and who it is when it does). */
export type Behaviour =
  /** 180 after delayMs (if ringMs is set), then 200 with SDP ringMs later. */
  | { kind: 'answer'; delayMs?: number; ringMs?: number; trying?: boolean; body?: string;
      /** Answer 200 to a CANCEL but still answer the INVITE with 200: the 2xx crossed the CANCEL on the wire. */
      crossCancel?: boolean }
  /** Final failure (486, 503, 404...) after delayMs, optionally after ringing. */
  | { kind: 'reject'; status: number; reason?: string; delayMs?: number; ringMs?: number; trying?: boolean; headers?: Array<[string, string]> }
  /** 180 (and optionally 100) and then nothing until CANCEL. */
  | { kind: 'ring'; delayMs?: number; trying?: boolean }
  /** No answer to anything (INVITE, OPTIONS, BYE...), not even 100: a dead or overloaded box. */
  | { kind: 'silent' };

export interface UaOptions {
  name?: string;
  /** Transport used for Contact and for requests the UA starts; both sockets are always open. */
  proto?: UaProto;
  host?: string;
  behaviour?: Behaviour;
  /** T1 for UDP retransmissions (ms). */
  t1Ms?: number;
  /** Retransmit requests over UDP (Timer A/E). Off by default to keep traces readable; on for loss tests. */
  retransmit?: boolean;
}

const SDP = (host: string): string =>
  `v=0\r\no=ua 1 1 IN IP4 ${host}\r\ns=-\r\nc=IN IP4 ${host}\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n`;

/** Client side of one request: every response, and the final one. */
export class UaTransaction {
  readonly responses: UaMessage[] = [];
  readonly request: string;
  readonly branch: string;
  readonly dest: HostPort;
  private waiters: Array<{ pred: (m: UaMessage) => boolean; resolve: (m: UaMessage) => void }> = [];
  timer: NodeJS.Timeout | undefined;

  constructor(request: string, branch: string, dest: HostPort) {
    this.request = request;
    this.branch = branch;
    this.dest = dest;
  }

  /** @internal */
  push(m: UaMessage): void {
    this.responses.push(m);
    this.waiters = this.waiters.filter((w) => {
      if (!w.pred(m)) return true;
      w.resolve(m);
      return false;
    });
  }

  /** The first response matching pred (already received or future). */
  wait(pred: (m: UaMessage) => boolean, timeoutMs = 5000): Promise<UaMessage> {
    const have = this.responses.find(pred);
    if (have) return Promise.resolve(have);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.resolve !== done);
        reject(new Error(`no matching response within ${timeoutMs} ms; got [${this.responses.map((r) => r.status).join(', ')}]`));
      }, timeoutMs);
      const done = (m: UaMessage): void => {
        clearTimeout(t);
        resolve(m);
      };
      this.waiters.push({ pred, resolve: done });
    });
  }

  final(timeoutMs = 5000): Promise<UaMessage> { return this.wait((m) => m.status >= 200, timeoutMs); }
  status(code: number, timeoutMs = 5000): Promise<UaMessage> { return this.wait((m) => m.status === code, timeoutMs); }
}

/** A dialog seen from this UA (either side). */
export class UaDialog {
  localCseq: number;
  remoteTarget: string;
  /** In the order this UA puts them as Route headers. */
  routeSet: string[];
  readonly ended: { by?: 'local' | 'remote' } = {};
  /** Behave like an RFC 2543 strict router: send to the Request-URI instead of the first Route. */
  strictRouting = false;

  constructor(
    private readonly ua: SipUa,
    readonly callId: string,
    readonly localTag: string,
    readonly remoteTag: string,
    readonly localUri: string,
    readonly remoteUri: string,
    remoteTarget: string,
    routeSet: string[],
    localCseq: number,
  ) {
    this.remoteTarget = remoteTarget;
    this.routeSet = routeSet;
    this.localCseq = localCseq;
  }

  /** Where in-dialog requests physically go: the first Route (loose routing) or the remote target. */
  nextHop(): HostPort {
    if (this.strictRouting) return hopOf(this.remoteTarget, this.ua.proto);
    return hopOf(this.routeSet.length > 0 ? uriOf(this.routeSet[0]!) : this.remoteTarget, this.ua.proto);
  }

  private build(method: string, cseq: number, branch: string, proto: UaProto, extra: Array<[string, string]>, body: string): string {
    const lines = [
      `${method} ${this.remoteTarget} SIP/2.0`,
      this.ua.via(proto, branch),
      'Max-Forwards: 70',
      `From: <${this.localUri}>;tag=${this.localTag}`,
      `To: <${this.remoteUri}>;tag=${this.remoteTag}`,
      `Call-ID: ${this.callId}`,
      `CSeq: ${cseq} ${method}`,
      ...this.routeSet.map((r) => `Route: ${r}`),
      `Contact: <${this.ua.contactUri(proto)}>`,
      ...extra.map(([k, v]) => `${k}: ${v}`),
    ];
    if (body) lines.push('Content-Type: application/sdp');
    lines.push(`Content-Length: ${Buffer.byteLength(body)}`, '', body);
    return lines.join('\r\n');
  }

  /** Sends an in-dialog request (BYE, INFO, re-INVITE, UPDATE...) and returns its client transaction. */
  request(method: string, opts: { headers?: Array<[string, string]>; body?: string } = {}): UaTransaction {
    const cseq = ++this.localCseq;
    const hop = this.nextHop();
    const branch = `z9hG4bK${rnd()}`;
    const body = opts.body ?? (method === 'INVITE' ? SDP(this.ua.host) : '');
    const text = this.build(method, cseq, branch, hop.proto, opts.headers ?? [], body);
    if (method === 'BYE') this.ended.by = 'local';
    return this.ua.sendRequest(text, branch, hop, method === 'INVITE');
  }

  /** ACK for a 2xx: its own branch, end to end, CSeq of the INVITE. */
  ack(inviteCseq: number, body = ''): void {
    const hop = this.nextHop();
    const text = this.build('ACK', inviteCseq, `z9hG4bK${rnd()}`, hop.proto, [], body);
    this.ua.sendRaw(text, hop);
  }
}

/** An INVITE this UA sent (caller side). */
export class UaCall extends UaTransaction {
  dialog: UaDialog | undefined;
  readonly callId: string;
  readonly cseq: number;
  private acked = false;

  constructor(private readonly ua: SipUa, request: string, branch: string, dest: HostPort, callId: string, cseq: number) {
    super(request, branch, dest);
    this.callId = callId;
    this.cseq = cseq;
  }

  /** Sends the very same INVITE bytes again (a retransmission, same branch). */
  retransmit(): void { this.ua.sendRaw(this.request, this.dest); }

  /** CANCEL for this INVITE: same branch, same R-URI, same hop. */
  cancel(): UaTransaction {
    const req = new UaMessage(this.request, this.dest);
    const lines = [
      `CANCEL ${req.uri} SIP/2.0`,
      `Via: ${req.headerValues('via')[0]}`,
      'Max-Forwards: 70',
      `From: ${req.header('from')}`,
      `To: ${req.header('to')}`,
      `Call-ID: ${this.callId}`,
      `CSeq: ${this.cseq} CANCEL`,
      ...req.headerLines('route').map((r) => `Route: ${r}`),
      'Content-Length: 0',
      '',
      '',
    ];
    const tx = new UaTransaction(lines.join('\r\n'), `${this.branch}|CANCEL`, this.dest);
    this.ua.registerCancel(this.branch, tx);
    this.ua.sendRaw(tx.request, this.dest);
    return tx;
  }

  /** ACK for the 2xx (end to end, via the route set). */
  ack(): void {
    if (!this.dialog) throw new Error('no dialog: the INVITE was not answered with 2xx');
    this.acked = true;
    this.dialog.ack(this.cseq);
  }

  get wasAcked(): boolean { return this.acked; }
}

interface ServerInvite {
  msg: UaMessage;
  toTag: string;
  final: string | undefined;
  finalStatus: number;
  timers: NodeJS.Timeout[];
  retrans: NodeJS.Timeout | undefined;
  acked: boolean;
  from: HostPort;
}

export class SipUa {
  readonly name: string;
  readonly proto: UaProto;
  readonly host: string;
  behaviour: Behaviour;
  /** Every request received (including retransmissions, ACKs and CANCELs), in arrival order. */
  readonly received: UaMessage[] = [];
  /** Every response received, in arrival order. */
  readonly responses: UaMessage[] = [];
  /** Dialogs this UA is part of (as caller after 2xx, as callee after sending 2xx). */
  readonly dialogs: UaDialog[] = [];
  /** Raw datagrams/frames that did not parse as SIP. */
  readonly garbage: string[] = [];

  private udp!: UdpSocket;
  private tcp!: Server;
  private udpPort = 0;
  private tcpPort = 0;
  private readonly conns = new Map<string, TcpSocket>();
  private readonly clientTx = new Map<string, UaTransaction>();
  private readonly serverInvites = new Map<string, ServerInvite>();
  /** The same server INVITEs by Call-ID and CSeq number (ACK matching), and dialogs by Call-ID. */
  private readonly invitesByCseq = new Map<string, ServerInvite>();
  private readonly dialogsById = new Map<string, UaDialog>();
  private waiters: Array<{ pred: (m: UaMessage) => boolean; resolve: (m: UaMessage) => void }> = [];
  private readonly t1: number;
  private readonly retransmitRequests: boolean;
  private closed = false;
  private seq = 1;

  private constructor(opts: UaOptions) {
    this.name = opts.name ?? 'ua';
    this.proto = opts.proto ?? 'udp';
    this.host = opts.host ?? '127.0.0.1';
    this.behaviour = opts.behaviour ?? { kind: 'answer', ringMs: 0 };
    this.t1 = opts.t1Ms ?? 500;
    this.retransmitRequests = opts.retransmit ?? false;
  }

  static async start(opts: UaOptions = {}): Promise<SipUa> {
    const ua = new SipUa(opts);
    await ua.listen();
    return ua;
  }

  private async listen(): Promise<void> {
    this.udp = createSocket(this.host.includes(':') ? 'udp6' : 'udp4');
    this.udp.on('message', (buf: Buffer, rinfo: RemoteInfo) => {
      this.onText(buf.toString('latin1'), { host: rinfo.address, port: rinfo.port, proto: 'udp' }, undefined);
    });
    this.udp.on('error', () => { /* loopback test peer: errors surface as missing responses */ });
    await new Promise<void>((resolve) => this.udp.bind(0, this.host, resolve));
    this.udpPort = this.udp.address().port;
    this.tcp = createServer((sock) => this.adopt(sock));
    await new Promise<void>((resolve) => this.tcp.listen(0, this.host, resolve));
    this.tcpPort = (this.tcp.address() as AddressInfo).port;
  }

  private adopt(sock: TcpSocket, key?: string): void {
    const remote: HostPort = { host: sock.remoteAddress ?? '', port: sock.remotePort ?? 0, proto: 'tcp' };
    const k = key ?? `${remote.host}:${remote.port}`;
    this.conns.set(k, sock);
    let buf = Buffer.alloc(0);
    sock.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      for (;;) {
        while (buf.length >= 2 && buf[0] === 13 && buf[1] === 10) buf = buf.subarray(2);
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buf.subarray(0, end).toString('latin1');
        const m = /^(?:content-length|l)[ \t]*:[ \t]*(\d+)/im.exec(head);
        const len = m ? Number(m[1]) : 0;
        if (buf.length < end + 4 + len) return;
        const text = buf.subarray(0, end + 4 + len).toString('latin1');
        buf = buf.subarray(end + 4 + len);
        this.onText(text, remote, sock);
      }
    });
    sock.on('error', () => { /* peer reset: nothing to do in a test peer */ });
    sock.on('close', () => { if (this.conns.get(k) === sock) this.conns.delete(k); });
  }

  /** The UA's own address for a transport. */
  address(proto: UaProto = this.proto): HostPort {
    return { host: this.host, port: proto === 'udp' ? this.udpPort : this.tcpPort, proto };
  }

  private hostport(proto: UaProto): string {
    const h = this.host.includes(':') ? `[${this.host}]` : this.host;
    return `${h}:${proto === 'udp' ? this.udpPort : this.tcpPort}`;
  }

  /** A SIP URI reaching this UA, e.g. as a dispatcher target: sip:127.0.0.1:40000[;transport=tcp]. */
  uri(user?: string, proto: UaProto = this.proto): string {
    return `sip:${user ? `${user}@` : ''}${this.hostport(proto)}${proto === 'tcp' ? ';transport=tcp' : ''}`;
  }

  contactUri(proto: UaProto = this.proto): string { return this.uri(this.name, proto); }

  via(proto: UaProto, branch: string): string {
    return `Via: SIP/2.0/${proto.toUpperCase()} ${this.hostport(proto)};branch=${branch};rport`;
  }

  // ---- sending -------------------------------------------------------------------------------

  /** Sends bytes as they are (hostile or hand-written messages). TCP: reuses or opens a connection. */
  sendRaw(text: string | Buffer, dest: HostPort): void {
    if (this.closed) return;
    const buf = typeof text === 'string' ? Buffer.from(text, 'latin1') : text;
    if (dest.proto === 'udp') {
      this.udp.send(buf, dest.port, dest.host);
      return;
    }
    const key = `${dest.host}:${dest.port}`;
    let sock = this.conns.get(key);
    if (!sock || sock.destroyed) {
      sock = connect({ host: dest.host, port: dest.port });
      this.adopt(sock, key);
    }
    sock.write(buf);
  }

  /** @internal Sends a request and tracks its responses by branch. */
  sendRequest(text: string, branch: string, dest: HostPort, invite: boolean, tx?: UaTransaction): UaTransaction {
    const t = tx ?? new UaTransaction(text, branch, dest);
    this.clientTx.set(branch, t);
    this.sendRaw(text, dest);
    if (this.retransmitRequests && dest.proto === 'udp') {
      let interval = this.t1;
      const again = (): void => {
        if (this.closed || t.responses.some((r) => (invite ? r.status >= 100 : r.status >= 200))) return;
        this.sendRaw(text, dest);
        interval = invite ? interval * 2 : Math.min(interval * 2, 4000);
        if (interval <= 64 * this.t1) t.timer = setTimeout(again, interval);
      };
      t.timer = setTimeout(again, interval);
    }
    return t;
  }

  /** @internal */
  registerCancel(inviteBranch: string, tx: UaTransaction): void { this.clientTx.set(`${inviteBranch}|CANCEL`, tx); }

  private nextCallId(): string { return `${rnd(8)}@${this.name}`; }

  /**
   * Starts a call: INVITE to `to` (the Request-URI) through `via` (the gateway's address).
   * `headers` are added verbatim (spoofed P-Accountcode, preloaded Route...); `maxForwards` overrides 70.
   */
  invite(opts: { to: string; via: HostPort; from?: string; headers?: Array<[string, string]>; body?: string; maxForwards?: number; callId?: string }): UaCall {
    const callId = opts.callId ?? this.nextCallId();
    const cseq = this.seq++;
    const branch = `z9hG4bK${rnd()}`;
    const fromTag = rnd(4);
    const from = opts.from ?? `sip:${this.name}@${this.host}`;
    const body = opts.body ?? SDP(this.host);
    const proto = opts.via.proto;
    const text = [
      `INVITE ${opts.to} SIP/2.0`,
      this.via(proto, branch),
      `Max-Forwards: ${opts.maxForwards ?? 70}`,
      `From: <${from}>;tag=${fromTag}`,
      `To: <${opts.to}>`,
      `Call-ID: ${callId}`,
      `CSeq: ${cseq} INVITE`,
      `Contact: <${this.contactUri(proto)}>`,
      ...((opts.headers ?? []).some(([k]) => k.toLowerCase() === 'user-agent') ? [] : ['User-Agent: sip-ua-test']),
      ...(opts.headers ?? []).map(([k, v]) => `${k}: ${v}`),
      'Content-Type: application/sdp',
      `Content-Length: ${Buffer.byteLength(body)}`,
      '',
      body,
    ].join('\r\n');
    const call = new UaCall(this, text, branch, opts.via, callId, cseq);
    this.sendRequest(text, branch, opts.via, true, call);
    return call;
  }

  /** An out-of-dialog non-INVITE request (OPTIONS, MESSAGE, REGISTER...) through `via`. */
  request(method: string, opts: { to: string; via: HostPort; headers?: Array<[string, string]>; body?: string; maxForwards?: number }): UaTransaction {
    const branch = `z9hG4bK${rnd()}`;
    const body = opts.body ?? '';
    const text = [
      `${method} ${opts.to} SIP/2.0`,
      this.via(opts.via.proto, branch),
      `Max-Forwards: ${opts.maxForwards ?? 70}`,
      `From: <sip:${this.name}@${this.host}>;tag=${rnd(4)}`,
      `To: <${opts.to}>`,
      `Call-ID: ${this.nextCallId()}`,
      `CSeq: ${this.seq++} ${method}`,
      ...(opts.headers ?? []).map(([k, v]) => `${k}: ${v}`),
      `Content-Length: ${Buffer.byteLength(body)}`,
      '',
      body,
    ].join('\r\n');
    return this.sendRequest(text, branch, opts.via, false);
  }

  // ---- receiving -----------------------------------------------------------------------------

  /** Resolves with the first received message (request or response) matching pred, past or future. */
  waitFor(pred: (m: UaMessage) => boolean, timeoutMs = 5000): Promise<UaMessage> {
    const have = this.received.find(pred) ?? this.responses.find(pred);
    if (have) return Promise.resolve(have);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.resolve !== done);
        reject(new Error(`${this.name}: nothing matching within ${timeoutMs} ms; requests seen: [${this.received.map((r) => r.method).join(', ')}]`));
      }, timeoutMs);
      const done = (m: UaMessage): void => {
        clearTimeout(t);
        resolve(m);
      };
      this.waiters.push({ pred, resolve: done });
    });
  }

  /** The first request with this method (past or future). */
  waitRequest(method: string, timeoutMs = 5000): Promise<UaMessage> {
    return this.waitFor((m) => m.isRequest && m.method === method, timeoutMs);
  }

  /** Requests received with this method. */
  requests(method: string): UaMessage[] { return this.received.filter((m) => m.method === method); }

  /** The dialog of a Call-ID once it exists (past or future). */
  async waitDialog(callId?: string, timeoutMs = 5000): Promise<UaDialog> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const d = callId === undefined ? this.dialogs[0] : this.dialogsById.get(callId);
      if (d) return d;
      if (Date.now() > deadline) throw new Error(`${this.name}: no dialog${callId ? ` for ${callId}` : ''} within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  private addDialog(d: UaDialog): void {
    this.dialogs.push(d);
    if (!this.dialogsById.has(d.callId)) this.dialogsById.set(d.callId, d);
  }

  private onText(text: string, source: HostPort, sock: TcpSocket | undefined): void {
    if (this.closed) return;
    if (!/^(SIP\/2\.0 \d{3}[^\r\n]*|[A-Za-z]+ \S+ SIP\/2\.0)\r\n/.test(text)) {
      if (text.trim().length > 0) this.garbage.push(text);
      return;
    }
    const m = new UaMessage(text, source);
    if (m.isRequest) this.received.push(m);
    else this.responses.push(m);
    this.waiters = this.waiters.filter((w) => {
      if (!w.pred(m)) return true;
      w.resolve(m);
      return false;
    });
    if (m.isRequest) this.onRequest(m, source, sock);
    else this.onResponse(m);
  }

  private onResponse(m: UaMessage): void {
    const method = m.cseq.method;
    const key = method === 'CANCEL' ? `${m.topBranch}|CANCEL` : m.topBranch;
    const tx = this.clientTx.get(key);
    if (!tx) return;
    tx.push(m);
    if (tx instanceof UaCall && method === 'INVITE') {
      if (m.status >= 300) {
        // ACK for a non-2xx final: hop by hop, same branch, To with the response's tag (RFC 3261 §17.1.1.3).
        const req = new UaMessage(tx.request, tx.dest);
        const ack = [
          `ACK ${req.uri} SIP/2.0`,
          `Via: ${req.headerValues('via')[0]}`,
          'Max-Forwards: 70',
          `From: ${req.header('from')}`,
          `To: ${m.header('to')}`,
          `Call-ID: ${tx.callId}`,
          `CSeq: ${tx.cseq} ACK`,
          ...req.headerLines('route').map((r) => `Route: ${r}`),
          'Content-Length: 0',
          '',
          '',
        ].join('\r\n');
        this.sendRaw(ack, tx.dest);
      } else if (m.status >= 200 && !tx.dialog) {
        const req = new UaMessage(tx.request, tx.dest);
        const routeSet = m.headerValues('record-route').reverse();
        const contact = uriOf(m.headerValues('contact')[0] ?? '');
        const d = new UaDialog(this, tx.callId, req.fromTag, m.toTag, uriOf(req.header('from') ?? ''), uriOf(req.header('to') ?? ''), contact, routeSet, tx.cseq);
        tx.dialog = d;
        this.addDialog(d);
      } else if (m.status >= 200 && tx.dialog && tx.wasAcked) {
        tx.dialog.ack(tx.cseq); // 2xx retransmission: our ACK was lost, send it again
      }
    }
  }

  private respond(req: UaMessage, status: number, reason: string, source: HostPort, sock: TcpSocket | undefined, opts: { toTag?: string; body?: string; headers?: Array<[string, string]> } = {}): string {
    let to = req.header('to') ?? '';
    if (opts.toTag && !param(to, 'tag')) to = `${to};tag=${opts.toTag}`;
    const body = opts.body ?? '';
    const lines = [
      `SIP/2.0 ${status} ${reason}`,
      ...req.headerLines('via').map((v) => `Via: ${v}`),
      ...(status > 100 && status < 300 ? req.headerLines('record-route').map((r) => `Record-Route: ${r}`) : []),
      `From: ${req.header('from') ?? ''}`,
      `To: ${to}`,
      `Call-ID: ${req.callId}`,
      `CSeq: ${req.header('cseq') ?? ''}`,
    ];
    if (status > 100 && status < 300 && req.method === 'INVITE') lines.push(`Contact: <${this.contactUri(source.proto)}>`);
    for (const [k, v] of opts.headers ?? []) lines.push(`${k}: ${v}`);
    if (body) lines.push('Content-Type: application/sdp');
    lines.push(`Content-Length: ${Buffer.byteLength(body)}`, '', body);
    const text = lines.join('\r\n');
    this.reply(text, source, sock);
    return text;
  }

  private reply(text: string, source: HostPort, sock: TcpSocket | undefined): void {
    if (this.closed) return;
    if (sock && !sock.destroyed) sock.write(text);
    else this.sendRaw(text, source);
  }

  private onRequest(m: UaMessage, source: HostPort, sock: TcpSocket | undefined): void {
    if (this.behaviour.kind === 'silent') return; // a dead box: recorded, never answered
    const branch = m.topBranch;
    switch (m.method) {
      case 'INVITE': {
        const existing = this.serverInvites.get(branch);
        if (existing) {
          // A retransmission: repeat the last final, if any (provisionals are not repeated here).
          if (existing.final && existing.finalStatus >= 200) this.reply(existing.final, source, sock);
          return;
        }
        if (m.toTag) {
          // re-INVITE inside a dialog: accept it.
          this.respond(m, 200, 'OK', source, sock, { body: SDP(this.host) });
          const d = this.dialogsById.get(m.callId);
          if (d) {
            const c = m.headerValues('contact')[0];
            if (c) d.remoteTarget = uriOf(c);
          }
          return;
        }
        this.onInitialInvite(m, source, sock);
        return;
      }
      case 'ACK': {
        const si = this.invitesByCseq.get(`${m.callId}|${m.cseq.seq}`);
        if (si) {
          si.acked = true;
          if (si.retrans) clearTimeout(si.retrans);
        }
        return;
      }
      case 'CANCEL': {
        const si = this.serverInvites.get(branch);
        if (!si) {
          this.respond(m, 481, 'Call/Transaction Does Not Exist', source, sock);
          return;
        }
        this.respond(m, 200, 'OK', source, sock, { toTag: si.toTag });
        if (this.behaviour.kind === 'answer' && this.behaviour.crossCancel) return;
        if (si.finalStatus < 200) {
          for (const t of si.timers) clearTimeout(t);
          this.finalInvite(si, 487, 'Request Terminated', source, sock);
        }
        return;
      }
      case 'BYE': {
        const d = this.dialogsById.get(m.callId);
        if (d) d.ended.by = 'remote';
        this.respond(m, d ? 200 : 481, d ? 'OK' : 'Call/Transaction Does Not Exist', source, sock);
        return;
      }
      default:
        this.respond(m, 200, 'OK', source, sock);
    }
  }

  private onInitialInvite(m: UaMessage, source: HostPort, sock: TcpSocket | undefined): void {
    const si: ServerInvite = { msg: m, toTag: rnd(4), final: undefined, finalStatus: 0, timers: [], retrans: undefined, acked: false, from: source };
    this.serverInvites.set(m.topBranch, si);
    this.invitesByCseq.set(`${m.callId}|${m.cseq.seq}`, si);
    const b = this.behaviour;
    if (b.kind === 'silent') return;
    if (b.trying) this.respond(m, 100, 'Trying', source, sock);
    const later = (ms: number, fn: () => void): void => {
      if (ms <= 0) fn();
      else si.timers.push(setTimeout(fn, ms));
    };
    const ringThen = (ringMs: number | undefined, fn: () => void): void => {
      if (ringMs === undefined) return fn();
      this.respond(m, 180, 'Ringing', source, sock, { toTag: si.toTag });
      later(ringMs, fn);
    };
    later(b.delayMs ?? 0, () => {
      if (si.finalStatus >= 200) return;
      if (b.kind === 'ring') {
        this.respond(m, 180, 'Ringing', source, sock, { toTag: si.toTag });
      } else if (b.kind === 'reject') {
        ringThen(b.ringMs, () => this.finalInvite(si, b.status, b.reason ?? 'Rejected', source, sock, b.headers));
      } else {
        ringThen(b.ringMs, () => {
          if (si.finalStatus >= 200) return;
          this.finalInvite(si, 200, 'OK', source, sock, undefined, b.body ?? SDP(this.host));
          const routeSet = m.headerValues('record-route');
          const contact = uriOf(m.headerValues('contact')[0] ?? '');
          this.addDialog(new UaDialog(this, m.callId, si.toTag, m.fromTag, uriOf(m.header('to') ?? ''), uriOf(m.header('from') ?? ''), contact, routeSet, 0));
        });
      }
    });
  }

  private finalInvite(si: ServerInvite, status: number, reason: string, source: HostPort, sock: TcpSocket | undefined, headers?: Array<[string, string]>, body?: string): void {
    si.finalStatus = status;
    si.final = this.respond(si.msg, status, reason, source, sock, { toTag: si.toTag, headers, body });
    if (source.proto !== 'udp') return;
    // Over UDP the final response is retransmitted until the ACK comes (2xx: UAS core; non-2xx: Timer G).
    let interval = this.t1;
    const again = (): void => {
      if (this.closed || si.acked || !si.final) return;
      this.reply(si.final, source, undefined);
      interval = Math.min(interval * 2, 4000);
      if (interval <= 32 * this.t1) si.retrans = setTimeout(again, interval);
    };
    si.retrans = setTimeout(again, interval);
  }

  /** Stops every timer and closes the sockets. */
  async close(): Promise<void> {
    this.closed = true;
    for (const tx of this.clientTx.values()) if (tx.timer) clearTimeout(tx.timer);
    for (const si of this.serverInvites.values()) {
      for (const t of si.timers) clearTimeout(t);
      if (si.retrans) clearTimeout(si.retrans);
    }
    for (const s of this.conns.values()) s.destroy();
    this.conns.clear();
    await new Promise<void>((resolve) => this.udp.close(() => resolve()));
    await new Promise<void>((resolve) => this.tcp.close(() => resolve()));
  }
}
