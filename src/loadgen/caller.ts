// The load generator's caller: full calls (INVITE, provisional, 200, ACK, hold, BYE, 200) at a target
// rate, with digest authentication on demand, INVITE/BYE retransmission over UDP, and setup latency.
import { randomBytes } from 'node:crypto';
import { answerChallenge } from './digest.js';
import { cseqOf, h, hostPortOf, readLite, recordRoutes, tagOf, uriInside, type Lite } from './lite.js';
import { tcpClientEndpoint, udpEndpoint, type Endpoint, type Peer } from './net.js';

export interface CallerOptions {
  /** Where INVITEs go (the proxy, or the callee for the no-proxy ceiling). */
  target: Peer;
  proto: 'udp' | 'tcp';
  localHost: string;
  fromUser: string;
  dialled: string;
  auth?: { user: string; password: string };
  holdMs: number;
  /** A call not finished this long after its INVITE counts as failed. */
  callTimeoutMs: number;
}

interface Call {
  callId: string;
  fromTag: string;
  toTag: string;
  cseq: number;
  branch: string;
  state: 'inviting' | 'up' | 'byeing' | 'done';
  invite: Buffer;
  inviteAt: number;
  provisional: boolean;
  routeSet: string[];
  remoteTarget: string;
  authed: boolean;
  retrans?: NodeJS.Timeout;
  hold?: NodeJS.Timeout;
  deadline: NodeJS.Timeout;
  bye?: Buffer;
  setupMs?: number;
  dialled: string;
  auth: { user: string; password: string } | undefined;
  /** Extra header lines (CRLF-terminated) for this call's INVITEs. */
  extra: string;
  holdMs: number;
  finalStatus: number;
  done?: (r: CallResult) => void;
}

export interface CallResult {
  callId: string;
  /** Final status of the INVITE (after a digest retry), 0 when none arrived. */
  status: number;
  outcome: 'completed' | 'failed';
  reason: string;
  setupMs: number | undefined;
}

export interface CallOptions {
  dialled?: string;
  /** Credentials for this call (undefined: the caller's own; null: none). */
  auth?: { user: string; password: string } | null;
  /** Extra header lines for the INVITE, e.g. ['P-Accountcode: 123']. */
  headers?: string[];
  holdMs?: number;
}

export interface StepResult {
  rate: number;
  attempted: number;
  completed: number;
  failed: number;
  failures: Record<string, number>;
  seconds: number;
  cps: number;
  setupMs: { p50: number; p95: number; p99: number; max: number };
}

function pct(sorted: Float64Array, p: number): number {
  if (!sorted.length) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

export class Caller {
  private ep!: Endpoint;
  private calls = new Map<string, Call>();
  private self = '';
  private lat: number[] = [];
  private attempted = 0;
  private completed = 0;
  private failures: Record<string, number> = {};
  private seq = 0;
  private idPrefix = randomBytes(4).toString('hex');

  constructor(private readonly o: CallerOptions) {}

  async start(): Promise<void> {
    const onData = (b: Buffer): void => this.onMessage(b);
    this.ep = this.o.proto === 'udp' ? await udpEndpoint(this.o.localHost, 0, onData) : await tcpClientEndpoint(this.o.localHost, this.o.target, onData);
    this.self = `${this.o.localHost}:${this.ep.port}`;
  }

  async close(): Promise<void> {
    for (const c of this.calls.values()) this.clear(c);
    await this.ep.close();
  }

  get inFlight(): number { return this.calls.size; }

  private transport(): string { return this.o.proto === 'udp' ? 'UDP' : 'TCP'; }
  private ruri(dialled = this.o.dialled): string { return `sip:${dialled}@${this.o.target.host}:${this.o.target.port}${this.o.proto === 'tcp' ? ';transport=tcp' : ''}`; }

  private buildInvite(c: Call, authz?: string): Buffer {
    const sdp = 'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n';
    return Buffer.from(
      `INVITE ${this.ruri(c.dialled)} SIP/2.0\r\nVia: SIP/2.0/${this.transport()} ${this.self};branch=${c.branch};rport\r\nMax-Forwards: 70\r\n` +
      `From: <sip:${this.o.fromUser}@${this.o.target.host}>;tag=${c.fromTag}\r\nTo: <sip:${c.dialled}@${this.o.target.host}>\r\n` +
      `Call-ID: ${c.callId}\r\nCSeq: ${c.cseq} INVITE\r\n${c.extra}Contact: <sip:${this.o.fromUser}@${this.self}${this.o.proto === 'tcp' ? ';transport=tcp' : ''}>\r\n` +
      (authz ? `Proxy-Authorization: ${authz}\r\n` : '') + 'User-Agent: a2b-bench\r\n' +
      `Content-Type: application/sdp\r\nContent-Length: ${sdp.length}\r\n\r\n${sdp}`, 'latin1');
  }

  private inDialog(c: Call, method: 'ACK' | 'BYE', cseq: number): Buffer {
    const branch = `z9hG4bK${this.idPrefix}${(this.seq++).toString(36)}`;
    const routes = c.routeSet.length ? `Route: ${c.routeSet.join(', ')}\r\n` : '';
    return Buffer.from(
      `${method} ${c.remoteTarget} SIP/2.0\r\nVia: SIP/2.0/${this.transport()} ${this.self};branch=${branch};rport\r\nMax-Forwards: 70\r\n${routes}` +
      `From: <sip:${this.o.fromUser}@${this.o.target.host}>;tag=${c.fromTag}\r\nTo: <sip:${c.dialled}@${this.o.target.host}>;tag=${c.toTag}\r\n` +
      `Call-ID: ${c.callId}\r\nCSeq: ${cseq} ${method}\r\nContent-Length: 0\r\n\r\n`, 'latin1');
  }

  /** First hop of an in-dialog request: the first Route if any (loose routing), else the remote target. */
  private nextHop(c: Call): Peer {
    const hp = hostPortOf(c.routeSet.length ? uriInside(c.routeSet[0]!) : c.remoteTarget);
    return { host: hp.host, port: hp.port };
  }

  /** One call with its own options; resolves when it is over (BYE answered, or failed). */
  call(o: CallOptions = {}): Promise<CallResult> {
    return new Promise((resolve) => this.placeCall(o, resolve));
  }

  placeCall(o: CallOptions = {}, done?: (r: CallResult) => void): void {
    const n = this.seq++;
    const c: Call = {
      callId: `${this.idPrefix}-${n.toString(36)}@bench`, fromTag: n.toString(36) + this.idPrefix, toTag: '', cseq: 1,
      branch: `z9hG4bK${this.idPrefix}i${n.toString(36)}`, state: 'inviting', invite: Buffer.alloc(0), inviteAt: performance.now(),
      provisional: false, routeSet: [], remoteTarget: '', authed: false,
      deadline: setTimeout(() => this.fail(c, 'timeout'), this.o.callTimeoutMs),
      dialled: o.dialled ?? this.o.dialled,
      auth: o.auth === null ? undefined : (o.auth ?? this.o.auth),
      extra: (o.headers ?? []).map((l) => `${l}\r\n`).join(''),
      holdMs: o.holdMs ?? this.o.holdMs,
      finalStatus: 0,
      done,
    };
    c.invite = this.buildInvite(c);
    this.calls.set(c.callId, c);
    this.attempted++;
    this.ep.send(c.invite, this.o.target);
    this.armRetrans(c, () => c.invite, this.o.target, () => !c.provisional && c.state === 'inviting');
  }

  private armRetrans(c: Call, msg: () => Buffer, to: Peer, still: () => boolean): void {
    if (this.o.proto !== 'udp') return;
    let t = 500;
    const tick = (): void => {
      if (!still()) return;
      this.ep.send(msg(), to);
      t = Math.min(t * 2, 4000);
      c.retrans = setTimeout(tick, t);
    };
    clearTimeout(c.retrans);
    c.retrans = setTimeout(tick, t);
  }

  private onMessage(buf: Buffer): void {
    const m = readLite(buf);
    if (!m) return;
    const c = this.calls.get(h(m, 'call-id'));
    if (!c) return;
    if (m.request) return this.onRequest(c, m);
    const cs = cseqOf(m);
    if (cs.method === 'INVITE') this.onInviteResponse(c, m, cs.seq);
    else if (cs.method === 'BYE' && m.status >= 200 && c.state === 'byeing') {
      if (m.status < 300) this.finish(c); else this.fail(c, `bye-${m.status}`);
    }
  }

  private onRequest(c: Call, m: Lite): void {
    // A BYE from the far end (e.g. a max-duration teardown): answer it and count the call as ended.
    if (m.method === 'BYE') {
      const vias = (m.headers.get('via') ?? []).map((v) => `Via: ${v}\r\n`).join('');
      const r = `SIP/2.0 200 OK\r\n${vias}From: ${h(m, 'from')}\r\nTo: ${h(m, 'to')}\r\nCall-ID: ${c.callId}\r\nCSeq: ${h(m, 'cseq')}\r\nContent-Length: 0\r\n\r\n`;
      const top = /SIP\/2\.0\/\w+\s+([^;\s]+)/.exec(m.headers.get('via')?.[0] ?? '')?.[1] ?? '';
      const rport = /;rport=(\d+)/.exec(m.headers.get('via')?.[0] ?? '')?.[1];
      const hp = hostPortOf(`sip:${top}`);
      this.ep.send(Buffer.from(r, 'latin1'), { host: /received=([^;\s]+)/.exec(m.headers.get('via')?.[0] ?? '')?.[1] ?? hp.host, port: rport ? Number(rport) : hp.port });
      this.finish(c);
    }
  }

  private onInviteResponse(c: Call, m: Lite, seq: number): void {
    if (seq !== c.cseq) return;
    if (m.status < 200) { c.provisional = true; return; }
    c.finalStatus = m.status;
    if ((m.status === 407 || m.status === 401) && c.auth && !c.authed && c.state === 'inviting') {
      // ACK the challenge (same branch, hop by hop), then retry with credentials.
      const ack = Buffer.from(
        `ACK ${this.ruri(c.dialled)} SIP/2.0\r\nVia: SIP/2.0/${this.transport()} ${this.self};branch=${c.branch};rport\r\nMax-Forwards: 70\r\n` +
        `From: <sip:${this.o.fromUser}@${this.o.target.host}>;tag=${c.fromTag}\r\nTo: ${h(m, 'to')}\r\nCall-ID: ${c.callId}\r\nCSeq: ${c.cseq} ACK\r\nContent-Length: 0\r\n\r\n`, 'latin1');
      this.ep.send(ack, this.o.target);
      const ch = m.headers.get(m.status === 407 ? 'proxy-authenticate' : 'www-authenticate') ?? [];
      const authz = answerChallenge(ch, 'INVITE', this.ruri(c.dialled), c.auth.user, c.auth.password);
      if (!authz) return this.fail(c, 'no-usable-challenge');
      c.authed = true;
      c.cseq++;
      c.branch = `z9hG4bK${this.idPrefix}a${(this.seq++).toString(36)}`;
      c.provisional = false;
      c.invite = this.buildInvite(c, authz);
      this.ep.send(c.invite, this.o.target);
      this.armRetrans(c, () => c.invite, this.o.target, () => !c.provisional && c.state === 'inviting');
      return;
    }
    if (m.status >= 300) {
      if (c.state === 'inviting') {
        // ACK for a non-2xx final goes hop by hop with the INVITE's branch.
        const ack = Buffer.from(
          `ACK ${this.ruri(c.dialled)} SIP/2.0\r\nVia: SIP/2.0/${this.transport()} ${this.self};branch=${c.branch};rport\r\nMax-Forwards: 70\r\n` +
          `From: <sip:${this.o.fromUser}@${this.o.target.host}>;tag=${c.fromTag}\r\nTo: ${h(m, 'to')}\r\nCall-ID: ${c.callId}\r\nCSeq: ${c.cseq} ACK\r\nContent-Length: 0\r\n\r\n`, 'latin1');
        this.ep.send(ack, this.o.target);
        this.fail(c, `invite-${m.status}`);
      }
      return;
    }
    // 2xx: every retransmission gets an ACK; the first one sets up the dialog.
    if (c.state === 'inviting') {
      c.setupMs = performance.now() - c.inviteAt;
      this.lat.push(c.setupMs);
      c.toTag = tagOf(h(m, 'to'));
      c.routeSet = recordRoutes(m).reverse();
      c.remoteTarget = uriInside(h(m, 'contact'));
      c.state = 'up';
      clearTimeout(c.retrans);
      c.hold = setTimeout(() => this.sendBye(c), c.holdMs);
    }
    if (c.state === 'up' || c.state === 'byeing') this.ep.send(this.inDialog(c, 'ACK', c.cseq), this.nextHop(c));
  }

  private sendBye(c: Call): void {
    if (c.state !== 'up') return;
    c.state = 'byeing';
    c.bye = this.inDialog(c, 'BYE', c.cseq + 1);
    const hop = this.nextHop(c);
    this.ep.send(c.bye, hop);
    this.armRetrans(c, () => c.bye!, hop, () => c.state === 'byeing');
  }

  private clear(c: Call): void {
    clearTimeout(c.retrans);
    clearTimeout(c.hold);
    clearTimeout(c.deadline);
    c.state = 'done';
    this.calls.delete(c.callId);
  }

  private finish(c: Call): void {
    if (c.state === 'done') return;
    this.clear(c);
    this.completed++;
    c.done?.({ callId: c.callId, status: c.finalStatus, outcome: 'completed', reason: 'ok', setupMs: c.setupMs });
  }

  private fail(c: Call, why: string): void {
    if (c.state === 'done') return;
    this.clear(c);
    this.failures[why] = (this.failures[why] ?? 0) + 1;
    c.done?.({ callId: c.callId, status: c.finalStatus, outcome: 'failed', reason: why, setupMs: c.setupMs });
  }

  /** Places calls at `rate` per second for `seconds`, then waits for every call to end. */
  async runStep(rate: number, seconds: number): Promise<StepResult> {
    this.lat = [];
    this.attempted = 0;
    this.completed = 0;
    this.failures = {};
    const t0 = performance.now();
    const total = Math.round(rate * seconds);
    let placed = 0;
    await new Promise<void>((res) => {
      const tick = setInterval(() => {
        const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * rate));
        while (placed < due) { this.placeCall(); placed++; }
        if (placed >= total) { clearInterval(tick); res(); }
      }, 5);
    });
    const sendSeconds = (performance.now() - t0) / 1000;
    while (this.calls.size > 0) await new Promise((r) => setTimeout(r, 20));
    const sorted = Float64Array.from(this.lat).sort();
    const failed = Object.values(this.failures).reduce((a, b) => a + b, 0);
    return {
      rate, attempted: this.attempted, completed: this.completed, failed, failures: { ...this.failures },
      seconds: sendSeconds, cps: this.completed / sendSeconds,
      setupMs: { p50: pct(sorted, 50), p95: pct(sorted, 95), p99: pct(sorted, 99), max: sorted.length ? sorted[sorted.length - 1]! : 0 },
    };
  }
}
