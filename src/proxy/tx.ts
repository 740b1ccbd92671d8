// Proxy-side transactions (RFC 3261 §17, with RFC 6026's Accepted state), shaped for a stateful proxy:
// server transactions absorb request retransmissions and retransmit the last response (Timer G/H over
// UDP, 64*T1 linger), client transactions retransmit over UDP (Timer A/E), report the first response of
// each kind, ACK non-2xx finals hop by hop on the INVITE's branch and give up after Timer B/F.
// The policy timers of a proxy (fr_timer, Timer C) live in core.ts; this file only knows RFC 3261 §17.
import type { Logger } from '../log.js';
import { isGwError } from '../errors.js';
import { createRequest, type SipRequest, type SipResponse, type TransportProto, type Via } from '../sip/index.js';
import type { Destination, ProxyNet } from './net.js';

export interface TxTimers {
  t1Ms: number;
  t2Ms: number;
  t4Ms: number;
}

/** Matching key of a request's server transaction (RFC 3261 §17.2.3); ACK maps to its INVITE. */
export function serverKey(req: SipRequest): string | null {
  const via = req.tryTopVia();
  if (!via) return null;
  const method = req.method === 'ACK' ? 'INVITE' : req.method;
  const sentBy = `${via.host}:${via.port ?? ''}`;
  if (via.branch && via.branch.startsWith('z9hG4bK')) return `${via.branch}|${sentBy}|${method}`;
  // RFC 2543 peers: no magic cookie. Best effort: Call-ID, CSeq number, From tag and the Via as sent.
  const cseq = req.tryCSeq();
  const from = req.tryFrom();
  return `2543|${req.getHeader('call-id') ?? ''}|${cseq?.seq ?? ''}|${from?.tag ?? ''}|${via.raw}|${method}`;
}

/** Where responses to a request go (RFC 3261 §18.2.2 with RFC 3581 rport): same TCP connection, else received/rport. */
export function responseDestination(req: SipRequest): Destination | null {
  const src = req.source;
  const via = req.tryTopVia();
  if (!src || !via) return null;
  if (src.proto === 'tcp') return { proto: 'tcp', address: src.address, port: src.port, connectionId: src.connectionId };
  if (via.rport !== undefined) return { proto: 'udp', address: src.address, port: src.port };
  return { proto: 'udp', address: src.address, port: via.port ?? 5060 };
}

/** Where a response goes once our Via is popped: the next Via's received/rport, else its sent-by. */
export function viaDestination(via: Via): Destination {
  const proto: TransportProto = via.transport === 'TCP' ? 'tcp' : 'udp';
  const address = via.received ?? via.host;
  const port = typeof via.rport === 'number' ? via.rport : (via.port ?? 5060);
  return { proto, address, port };
}

export class TxLayer {
  readonly servers = new Map<string, ServerTx>();
  readonly clients = new Map<string, ClientTx>();

  constructor(readonly net: ProxyNet, readonly timers: TxTimers, readonly log: Logger) {}

  /** Sends and logs transport failures instead of throwing (responses have no one to fail over to). */
  sendQuiet(buf: Buffer, dest: Destination, callId: string): void {
    this.net.send(buf, dest).catch((e: unknown) => {
      this.log.debug({ callId, dest, err: isGwError(e) ? e.message : String(e) }, 'send failed');
    });
  }

  close(): void {
    for (const s of this.servers.values()) s.destroy();
    for (const c of this.clients.values()) c.destroy();
    this.servers.clear();
    this.clients.clear();
  }
}

/** Our side of a request someone sent us. */
export class ServerTx {
  readonly isInvite: boolean;
  readonly dest: Destination | null;
  lastResponse: Buffer | undefined;
  status = 0;
  acked = false;
  private timer: NodeJS.Timeout | undefined;
  private linger: NodeJS.Timeout | undefined;
  private destroyed = false;
  /** Called when an INVITE's non-2xx final was never ACKed (Timer H) or the transaction ends. */
  onEnd: (() => void) | undefined;

  constructor(private readonly layer: TxLayer, readonly key: string, readonly req: SipRequest, readonly callId: string) {
    this.isInvite = req.method === 'INVITE';
    this.dest = responseDestination(req);
    layer.servers.set(key, this);
    // A transaction nobody answers must not live forever (the core always answers; this is a safety net).
    this.linger = setTimeout(() => this.destroy(), Math.max(64 * layer.timers.t1Ms, 180_000) + 5_000);
  }

  /** Sends a response statefully; finals arm the retransmission/linger timers. */
  respond(res: SipResponse): void {
    if (this.destroyed || this.status >= 200) return;
    const buf = res.toBuffer();
    this.lastResponse = buf;
    this.status = res.status;
    if (this.dest) this.layer.sendQuiet(buf, this.dest, this.callId);
    if (res.status < 200) return;
    const { t1Ms, t2Ms, t4Ms } = this.layer.timers;
    this.clearTimers();
    const udp = this.dest?.proto === 'udp';
    if (this.isInvite && res.status >= 300) {
      // Completed: Timer G retransmits over UDP until the ACK; Timer H gives up.
      if (udp) {
        let interval = t1Ms;
        const again = (): void => {
          if (this.acked || this.destroyed || !this.lastResponse || !this.dest) return;
          this.layer.sendQuiet(this.lastResponse, this.dest, this.callId);
          interval = Math.min(interval * 2, t2Ms);
          this.timer = setTimeout(again, interval);
        };
        this.timer = setTimeout(again, interval);
      }
      this.linger = setTimeout(() => this.destroy(), 64 * t1Ms);
    } else if (this.isInvite) {
      // Accepted (RFC 6026): absorb INVITE retransmissions for 64*T1; 2xx retransmissions come from downstream.
      this.linger = setTimeout(() => this.destroy(), 64 * t1Ms);
    } else {
      // Non-INVITE Completed: Timer J (64*T1 over UDP, 0 over TCP; we keep T4 to absorb stragglers).
      this.linger = setTimeout(() => this.destroy(), udp ? 64 * t1Ms : t4Ms);
    }
  }

  /** A retransmission of the request arrived: repeat the last response (provisional or final). */
  retransmitted(): void {
    if (this.lastResponse && this.dest && !(this.isInvite && this.status >= 200 && this.status < 300)) {
      this.layer.sendQuiet(this.lastResponse, this.dest, this.callId);
    }
  }

  /** The ACK for our non-2xx final: stop retransmitting, linger T4 (Timer I) to absorb ACK copies. */
  ack(): void {
    if (this.acked) return;
    this.acked = true;
    this.clearTimers();
    this.linger = setTimeout(() => this.destroy(), this.dest?.proto === 'udp' ? this.layer.timers.t4Ms : 0);
  }

  private clearTimers(): void {
    if (this.timer) clearTimeout(this.timer);
    if (this.linger) clearTimeout(this.linger);
    this.timer = undefined;
    this.linger = undefined;
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.clearTimers();
    if (this.layer.servers.get(this.key) === this) this.layer.servers.delete(this.key);
    const end = this.onEnd;
    this.onEnd = undefined;
    end?.();
  }
}

export interface ClientTxHandlers {
  /** Every response except retransmissions of a final (those go to onRetransmittedFinal). */
  onResponse(res: SipResponse): void;
  /** Timer B/F: nothing final arrived. */
  onTimeout(): void;
  onTransportError(message: string): void;
  /** A 2xx to INVITE arriving again (the UAS did not get the ACK yet): relayed statelessly by the core. */
  onRetransmittedFinal?(res: SipResponse): void;
}

/** Our side of a request we forward or originate. */
export class ClientTx {
  readonly isInvite: boolean;
  readonly buf: Buffer;
  status = 0;
  private timer: NodeJS.Timeout | undefined;
  private deadline: NodeJS.Timeout | undefined;
  private linger: NodeJS.Timeout | undefined;
  private destroyed = false;
  private ackBuf: Buffer | undefined;

  constructor(
    private readonly layer: TxLayer,
    readonly branch: string,
    /** The request as sent (our Via on top). */
    readonly req: SipRequest,
    readonly dest: Destination,
    readonly callId: string,
    private readonly h: ClientTxHandlers,
  ) {
    this.isInvite = req.method === 'INVITE';
    this.buf = req.toBuffer();
    layer.clients.set(branch, this);
  }

  start(): void {
    const { t1Ms, t2Ms } = this.layer.timers;
    this.layer.net.send(this.buf, this.dest).catch((e: unknown) => this.transportError(e));
    if (this.dest.proto === 'udp') {
      let interval = t1Ms;
      const again = (): void => {
        if (this.destroyed || (this.isInvite ? this.status >= 100 : this.status >= 200)) return;
        this.layer.net.send(this.buf, this.dest).catch((e: unknown) => this.transportError(e));
        interval = this.isInvite ? interval * 2 : Math.min(interval * 2, t2Ms);
        this.timer = setTimeout(again, interval);
      };
      this.timer = setTimeout(again, interval);
    }
    this.deadline = setTimeout(() => {
      if (this.destroyed || this.status >= 200) return;
      this.destroy();
      this.h.onTimeout();
    }, 64 * t1Ms);
  }

  private transportError(e: unknown): void {
    if (this.destroyed || this.status >= 200) return;
    this.destroy();
    this.h.onTransportError(e instanceof Error ? e.message : String(e));
  }

  /** A response whose top Via branch is ours. */
  receive(res: SipResponse): void {
    if (this.destroyed) return;
    if (this.status >= 200) {
      // Retransmitted final: re-ACK a non-2xx, hand a 2xx to the core for stateless relaying.
      if (this.isInvite && res.status >= 300 && this.ackBuf) this.layer.sendQuiet(this.ackBuf, this.dest, this.callId);
      else if (this.isInvite && res.status >= 200 && res.status < 300) this.h.onRetransmittedFinal?.(res);
      return;
    }
    const prev = this.status;
    this.status = Math.max(this.status, res.status);
    if (res.status < 200) {
      if (prev < 100 && this.isInvite) {
        // Proceeding: no more retransmissions, and Timer B no longer applies (the core runs Timer C).
        if (this.timer) clearTimeout(this.timer);
        if (this.deadline) clearTimeout(this.deadline);
        this.timer = undefined;
        this.deadline = undefined;
      }
      this.h.onResponse(res);
      return;
    }
    this.clearTimers();
    if (this.isInvite && res.status >= 300) {
      this.ackBuf = this.buildAck(res).toBuffer();
      this.layer.sendQuiet(this.ackBuf, this.dest, this.callId);
    }
    // Completed/Accepted: linger to absorb retransmitted finals (Timer D / K / RFC 6026 Timer M).
    const udp = this.dest.proto === 'udp';
    this.linger = setTimeout(() => this.destroy(), udp || (this.isInvite && res.status < 300) ? 64 * this.layer.timers.t1Ms : 0);
    this.h.onResponse(res);
  }

  /** ACK for a non-2xx final: same R-URI, our Via only (same branch), To from the response, CSeq n ACK. */
  private buildAck(res: SipResponse): SipRequest {
    const req = this.req;
    return createRequest({
      method: 'ACK',
      uri: req.uriRaw,
      via: [req.headerValues('via')[0] ?? ''],
      from: req.getHeader('from') ?? '',
      to: res.getHeader('to') ?? req.getHeader('to') ?? '',
      callId: this.callId,
      cseq: req.tryCSeq()?.seq ?? 1,
      route: req.headerValues('route'),
    });
  }

  /** CANCEL for this INVITE (RFC 3261 §9.1): same R-URI, Via (branch), From, To, Call-ID, CSeq number and Route. */
  buildCancel(): SipRequest {
    const req = this.req;
    return createRequest({
      method: 'CANCEL',
      uri: req.uriRaw,
      via: [req.headerValues('via')[0] ?? ''],
      from: req.getHeader('from') ?? '',
      to: req.getHeader('to') ?? '',
      callId: this.callId,
      cseq: req.tryCSeq()?.seq ?? 1,
      route: req.headerValues('route'),
    });
  }

  get alive(): boolean { return !this.destroyed; }

  private clearTimers(): void {
    if (this.timer) clearTimeout(this.timer);
    if (this.deadline) clearTimeout(this.deadline);
    if (this.linger) clearTimeout(this.linger);
    this.timer = undefined;
    this.deadline = undefined;
    this.linger = undefined;
  }

  /** Stops timers and forgets the transaction (late responses then go the stateless way). */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.clearTimers();
    if (this.layer.clients.get(this.branch) === this) this.layer.clients.delete(this.branch);
  }
}
