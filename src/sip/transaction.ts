// RFC 3261 §17 transactions (with the RFC 6026 "Accepted" states), for a stateful proxy.
// - Server transactions absorb request retransmissions (re-sending the last response), send 100 Trying for
//   INVITE (autoTrying), retransmit non-2xx finals over UDP (Timer G), absorb the ACK for them (Timers H, I), and
//   keep absorbing INVITE retransmissions after a 2xx (Timer L).
// - Client transactions push their own Via (new branch), retransmit over UDP (Timers A, E), time out (B, F and the
//   proxy's no-response timer), ACK non-2xx finals hop by hop (Timer D, K), pass every 2xx up (Timer M), run
//   Timer C after provisionals, and build and send CANCEL.
// Timers are plain setTimeout with static callbacks (see below), except the linger timers of the final states
// (D, H, I, J, K, L, M), which are coalesced per delay (coarse-timers.ts) and checked against the state when they
// fire instead of being cancelled; close() clears them all. Callbacks into the TU are
// guarded: a throwing TU does not break the layer. Transport failures are reported through callbacks, never thrown
// or left as rejected promises.
// Memory: a transaction keeps the RFC's lifetime (up to 64*T1 after its final response; `timers.lingerMs` shortens
// it, as Kamailio's wt_timer does) but, once final, only what
// that lingering needs: the response wire bytes and their destination (to answer retransmissions), the ACK bytes.
// The parsed messages and the TU's handlers are released at once: at a few hundred calls per second, holding them
// for 32 s kept hundreds of MB alive and the garbage collector busy (bench/RESULTS.md).
import { GwError } from '../errors.js';
import type { Logger } from '../log.js';
import { headerLine, SipRequest, type HeaderLine, type MessageSource, type SipMessage, type SipResponse } from './message.js';
import { MAGIC_COOKIE, detached, formatVia, type Via } from './headers.js';
import { newBranch } from './ids.js';
import { createResponse } from './build.js';
import { CoarseTimers } from './coarse-timers.js';
import type { SipParseError } from './parser.js';
import type { Destination, ReceiveHandler, SendFailureSink, SipMetricsLike } from './transport.js';

export interface TransactionTimers {
  t1Ms: number;
  t2Ms: number;
  t4Ms: number;
  /** Timer C: final-response wait after the last provisional of a forwarded INVITE. */
  inviteTimeoutMs: number;
  /** Wait for the first response (INVITE) / the final response (non-INVITE) before reporting a timeout (fr_timer). */
  noResponseTimeoutMs: number;
  /**
   * How long a finished transaction stays to absorb retransmissions: Timers L and M, and D and J (0 over TCP).
   * Unset: the RFC's values (64*T1; D 32 s). Kamailio's and OpenSIPS's equivalent (tm wt_timer) is 5 s.
   */
  lingerMs?: number;
}

/** What the transaction layer needs from the transport (SipTransport implements it). */
export interface TransportLike {
  send(data: Buffer | SipMessage, dest: Destination): Promise<void>;
  /** Sends bytes; a failure is reported to `owner.sendFailed`, asynchronously (no promise, no closure kept per transaction). */
  post(data: Buffer, dest: Destination, owner: SendFailureSink): void;
  /**
   * Where a response goes (RFC 3261 §18.2.2, RFC 3581), from its top Via and the connection the request came in on.
   * Throws GW_ERR_SIP_TRANSPORT when the Via gives no usable destination.
   */
  responseDestination(res: SipResponse, connectionId?: number): Destination;
  setHandler(h: ReceiveHandler): void;
  localAddress(proto: 'udp' | 'tcp', family?: 4 | 6): { host: string; port: number } | undefined;
}

/** The transaction user (the proxy core). */
export interface TransactionUser {
  /**
   * A request that created a server transaction (INVITE, CANCEL, BYE, OPTIONS, ...), or a request that belongs to
   * no transaction (`st` null): an ACK for a 2xx, or an ACK matching nothing. Forward those statelessly.
   * For CANCEL use `layer.matchInvite(req)` to find the INVITE server transaction it cancels.
   */
  onRequest(req: SipRequest, st: ServerTransaction | null): void;
  /** A response matching no client transaction (e.g. a 2xx retransmission after Timer M). */
  onStrayResponse?(res: SipResponse): void;
  /** A parse failure from the transport (answer it when `err.answerable`; count and drop otherwise). */
  onParseError?(err: SipParseError, source: MessageSource): void;
}

export type ServerState = 'trying' | 'proceeding' | 'completed' | 'confirmed' | 'accepted' | 'terminated';
export type ClientState = 'calling' | 'trying' | 'proceeding' | 'completed' | 'accepted' | 'terminated';

/** Why a client transaction gave up waiting. */
export type TimeoutKind =
  /** No response at all within noResponseTimeoutMs (INVITE), or no final response (non-INVITE): fail over. */
  | 'no-response'
  /** Timer B (INVITE) / Timer F (non-INVITE): 64*T1 without the response the state needed. */
  | 'timer-b' | 'timer-f'
  /** Timer C: inviteTimeoutMs after the last provisional. The layer then sends CANCEL itself; the TU answers 408. */
  | 'timer-c'
  /** No final response 64*T1 after CANCEL was sent; the transaction is terminated. */
  | 'cancel-timeout';

export interface ClientHandlers {
  /** Every provisional and the first final response; for INVITE also every 2xx (retransmissions included). */
  onResponse(res: SipResponse, ct: ClientTransaction): void;
  onTimeout?(kind: TimeoutKind, ct: ClientTransaction): void;
  /** The request (or a retransmission, ACK or CANCEL) could not be sent; the transaction is terminated. */
  onTransportError?(err: Error, ct: ClientTransaction): void;
  onTerminated?(ct: ClientTransaction): void;
}

export interface LayerOptions {
  transport: TransportLike;
  timers: TransactionTimers;
  logger: Logger;
  metrics?: SipMetricsLike;
  /**
   * 100 Trying for INVITE server transactions: true (default) sends it at once; 'delayed' sends it only if the TU has
   * not responded within 200 ms (RFC 3261 §17.2.1: quick rejections go out without a 100); false never.
   */
  autoTrying?: boolean | 'delayed';
  /**
   * Linger timers (D, H, I, J, K, L, M) started within this many ms share one Node timer and fire up to this much
   * late (default 10). 0: one timer each, on time.
   */
  lingerSlackMs?: number;
}

export interface SendOptions {
  /** Push a new Via with a fresh branch (default). 'keep': the request already carries our Via on top. */
  via?: 'push' | 'keep';
  /** Run Timer C (inviteTimeoutMs after each provisional) on an INVITE; default true. */
  timerC?: boolean;
}

const TIMER_D_MS = 32_000;
/** RFC 3261 §17.2.1: the server transaction sends 100 itself when the TU has not answered within 200 ms. */
const TRYING_DELAY_MS = 200;

function isReliable(proto: string): boolean { return proto !== 'udp'; }

const noop = (): void => undefined;
const DONE: ClientHandlers = { onResponse: noop };

function sentBy(v: Via): string {
  return `${v.host.toLowerCase()}:${v.port ?? (v.transport === 'TLS' ? 5061 : 5060)}`;
}

/** RFC 3261 §17.2.3 server-side key; `method` is the method the key is for (ACK/CANCEL matching use INVITE). */
function serverKey(req: SipRequest, v: Via, method: string): string {
  const b = v.branch;
  if (b !== undefined && b.startsWith(MAGIC_COOKIE)) return `${b}|${sentBy(v)}|${method}`;
  // RFC 2543 fallback: Request-URI, From tag, Call-ID, CSeq number, top Via
  const from = req.tryFrom();
  const cseq = req.tryCSeq();
  return `2543|${req.uriRaw}|${from?.tag ?? ''}|${req.getHeader('call-id') ?? ''}|${cseq?.seq ?? ''}|${sentBy(v)}|${b ?? ''}|${method}`;
}

type Timer = ReturnType<typeof setTimeout>;

export class TransactionLayer {
  private readonly servers = new Map<string, ServerTransaction>();
  private readonly clients = new Map<string, ClientTransaction>();
  readonly transport: TransportLike;
  readonly timers: TransactionTimers;
  readonly log: Logger;
  readonly metrics: SipMetricsLike | undefined;
  readonly autoTrying: boolean | 'delayed';
  private closed = false;
  private readonly lingerSlackMs: number;
  /** @internal Timers J, L and M. */
  readonly finishedMs: number;
  /** @internal Timer D. */
  readonly timerDMs: number;
  /** Linger timers by delay (64*T1, T4, Timer D: a handful of delays). */
  private readonly lingers = new Map<number, CoarseTimers<ServerTransaction | ClientTransaction>>();

  constructor(opts: LayerOptions, private readonly tu: TransactionUser) {
    this.transport = opts.transport;
    this.timers = opts.timers;
    this.log = opts.logger;
    this.metrics = opts.metrics;
    this.autoTrying = opts.autoTrying ?? true;
    this.lingerSlackMs = opts.lingerSlackMs ?? 10;
    this.finishedMs = opts.timers.lingerMs ?? 64 * opts.timers.t1Ms;
    this.timerDMs = opts.timers.lingerMs ?? TIMER_D_MS;
    this.transport.setHandler((m, s) => this.receive(m, s));
  }

  /** @internal `tx.lingerExpired()` in delayMs (up to lingerSlackMs later); not cancellable: it checks its state. */
  linger(delayMs: number, tx: ServerTransaction | ClientTransaction): void {
    let ct = this.lingers.get(delayMs);
    if (ct === undefined) {
      ct = new CoarseTimers(delayMs, this.lingerSlackMs, TransactionLayer.lingerExpired,
        (e) => this.log.error({ err: e instanceof Error ? e.message : String(e) }, 'linger timer failed'));
      this.lingers.set(delayMs, ct);
    }
    ct.add(tx);
  }

  private static lingerExpired(tx: ServerTransaction | ClientTransaction): void { tx.lingerExpired(); }

  /** Live transactions. */
  get size(): { server: number; client: number } { return { server: this.servers.size, client: this.clients.size }; }

  /** Entry point for everything the transport receives (installed as its handler). */
  receive(m: SipMessage | SipParseError, source: MessageSource): void {
    if (this.closed) return;
    if (!('isRequest' in m)) {
      this.guard(() => this.tu.onParseError?.(m, source));
      return;
    }
    if (m.isRequest()) this.onRequest(m);
    else this.onResponse(m as SipResponse);
  }

  private onRequest(req: SipRequest): void {
    const v = req.tryTopVia();
    if (v === null) return; // the parser guarantees one; belt and braces
    const method = req.method;
    if (method === 'ACK') {
      const st = this.servers.get(serverKey(req, v, 'INVITE'));
      if (st !== undefined && st.absorbAck()) return;
      this.guard(() => this.tu.onRequest(req, null));
      return;
    }
    const key = serverKey(req, v, method);
    const existing = this.servers.get(key);
    if (existing !== undefined) {
      this.metrics?.sipRetransmissions?.inc({ method });
      existing.retransmitted();
      return;
    }
    // Detached: a key built from the Via's branch slice would keep the request's header block for 64*T1.
    const st = new ServerTransaction(this, detached(key), req);
    this.servers.set(st.key, st);
    this.metrics?.sipTransactions?.inc({ kind: 'server' });
    if (st.isInvite && this.autoTrying === true) st.trying();
    else if (st.isInvite && this.autoTrying === 'delayed') st.tryingAfter(TRYING_DELAY_MS);
    this.guard(() => this.tu.onRequest(req, st));
  }

  private onResponse(res: SipResponse): void {
    const v = res.tryTopVia();
    const cseq = res.tryCSeq();
    const ct = v?.branch !== undefined && cseq !== null ? this.clients.get(`${v.branch}|${cseq.method}`) : undefined;
    if (ct === undefined) {
      this.guard(() => this.tu.onStrayResponse?.(res));
      return;
    }
    ct.receive(res);
  }

  /** The INVITE server transaction a CANCEL (or ACK) refers to, if it is still alive. */
  matchInvite(req: SipRequest): ServerTransaction | undefined {
    const v = req.tryTopVia();
    return v === null ? undefined : this.servers.get(serverKey(req, v, 'INVITE'));
  }

  /**
   * Starts a client transaction: pushes our Via (new branch, ;rport) unless `via: 'keep'`, sends the request to `dest`
   * and runs the timers. The request is owned by the transaction from now on (clone it first if you still need it).
   */
  sendRequest(req: SipRequest, dest: Destination, handlers: ClientHandlers, opts: SendOptions = {}): ClientTransaction {
    let branch: string;
    if (opts.via === 'keep') {
      branch = req.tryTopVia()?.branch ?? newBranch();
    } else {
      branch = newBranch();
      const fam = dest.address.indexOf(':') >= 0 ? 6 : 4;
      const local = this.transport.localAddress(dest.proto, fam);
      if (local === undefined) {
        // no listener for that transport: nothing can be sent; report it like any send failure (asynchronously)
        const ct = new ClientTransaction(this, branch, req, dest, handlers, false);
        queueMicrotask(() => ct.sendFailed(new GwError('GW_ERR_SIP_TRANSPORT', `no ${dest.proto} listener`)));
        return ct;
      }
      req.pushVia(formatVia(dest.proto, local.host, local.port, `;branch=${branch};rport`));
    }
    const ct = new ClientTransaction(this, branch, req, dest, handlers, opts.timerC ?? true);
    this.clients.set(ct.key, ct);
    this.metrics?.sipTransactions?.inc({ kind: 'client' });
    ct.start();
    return ct;
  }

  /** Sends without a transaction (ACK for 2xx, stateless forwarding). Rejects with GW_ERR_SIP_TRANSPORT. */
  sendStateless(msg: SipMessage, dest: Destination): Promise<void> {
    return this.transport.send(msg, dest);
  }

  /** @internal a response a transaction matched but cannot use */
  stray(res: SipResponse): void {
    this.guard(() => this.tu.onStrayResponse?.(res));
  }

  /** @internal */
  removeServer(st: ServerTransaction): void {
    if (this.servers.get(st.key) === st) {
      this.servers.delete(st.key);
      this.metrics?.sipTransactions?.dec({ kind: 'server' });
    }
  }

  /** @internal */
  removeClient(ct: ClientTransaction): void {
    if (this.clients.get(ct.key) === ct) {
      this.clients.delete(ct.key);
      this.metrics?.sipTransactions?.dec({ kind: 'client' });
    }
  }

  /** @internal runs a TU callback; a throwing TU is logged, not propagated into the receive path */
  guard(fn: () => void): void {
    try { fn(); } catch (e) {
      this.log.error({ err: e instanceof Error ? e.message : String(e) }, 'transaction user callback threw');
    }
  }

  /** Terminates every transaction and clears every timer (no callbacks). */
  close(): void {
    this.closed = true;
    for (const st of [...this.servers.values()]) st.terminate(false);
    for (const ct of [...this.clients.values()]) ct.terminate(false);
    for (const t of this.lingers.values()) t.close();
  }
}

// ------------------------------------------------------------------------------------------------ server

export class ServerTransaction {
  state: ServerState;
  readonly isInvite: boolean;
  readonly method: string;
  /** Where the request came from. */
  readonly source: MessageSource | undefined;
  /** Called once when the transaction ends. */
  onTerminated: ((st: ServerTransaction) => void) | undefined;
  /** A response could not be sent (the transaction is terminated). */
  onTransportError: ((err: Error, st: ServerTransaction) => void) | undefined;
  /** No ACK for a non-2xx final within 64*T1 (Timer H). */
  onAckTimeout: ((st: ServerTransaction) => void) | undefined;
  /** The request; released once a final response was sent. */
  private req: SipRequest | undefined;
  /** The last response sent, as sent (re-sent on retransmissions), and where it went. */
  private wire: Buffer | undefined;
  private dest: Destination | undefined;
  private responded = false;
  private timerG: Timer | undefined;
  /** A non-INVITE the TU never answers is freed after 64*T1 + T4 (cleared by the final response). */
  private unansweredTimer: Timer | undefined;
  private gInterval: number;
  private readonly reliable: boolean;

  constructor(private readonly layer: TransactionLayer, readonly key: string, request: SipRequest) {
    this.req = request;
    this.source = request.source;
    this.method = request.method;
    this.isInvite = request.method === 'INVITE';
    this.state = this.isInvite ? 'proceeding' : 'trying';
    this.reliable = isReliable(request.source?.proto ?? 'udp');
    this.gInterval = layer.timers.t1Ms;
    if (!this.isInvite) {
      // a non-INVITE the TU never answers: the client gave up after 64*T1 (Timer F), so free the state then
      this.unansweredTimer = setTimeout(ServerTransaction.unanswered, 64 * layer.timers.t1Ms + layer.timers.t4Ms, this);
    }
    this.onTerminated = undefined;
    this.onTransportError = undefined;
    this.onAckTimeout = undefined;
  }

  /** The request that created the transaction; only until a final response was sent (then it is released). */
  get request(): SipRequest {
    if (this.req === undefined) throw new Error(`${this.method} server transaction is ${this.state}: its request was released`);
    return this.req;
  }

  /** @internal sends 100 Trying (RFC 3261 §17.2.1). */
  trying(): void {
    if (this.respond(createResponse(this.request, 100))) this.layer.metrics?.sipResponses?.inc({ code: '100', origin: 'local' });
  }

  /** @internal sends 100 Trying after `ms` unless a response was sent by then. */
  tryingAfter(ms: number): void {
    this.timerG = setTimeout(ServerTransaction.delayedTrying, ms, this);
  }

  // Timer callbacks are static and get the transaction as an argument: an arrow created inside a method would
  // share that method's closure context and keep its locals (the messages) alive for the timer's whole delay.
  private static unanswered(st: ServerTransaction): void {
    if (st.state === 'trying' || st.state === 'proceeding') st.terminate(true);
  }

  private static delayedTrying(st: ServerTransaction): void {
    st.timerG = undefined;
    if (st.state === 'proceeding' && !st.responded) st.trying();
  }

  private static timerG(st: ServerTransaction): void { st.fireG(); }

  /** @internal the linger timer of the state it was started in: L (accepted), H / J (completed), I (confirmed). */
  lingerExpired(): void {
    switch (this.state) {
      case 'accepted': // Timer L
      case 'confirmed': // Timer I
        this.terminate(true);
        return;
      case 'completed':
        if (this.isInvite) this.layer.guard(() => this.onAckTimeout?.(this)); // Timer H: no ACK came
        this.terminate(true); // Timer J for non-INVITE
        return;
      default:
        return; // already terminated: an obsolete entry
    }
  }

  /**
   * Sends a response and moves the state machine: 1xx keeps it open, 2xx (INVITE) → accepted, other finals →
   * completed. Ignored (returns false) once a final response was sent, except further 2xx on an accepted INVITE.
   */
  respond(res: SipResponse): boolean {
    const s = res.status;
    if (this.state === 'terminated' || this.state === 'confirmed') return false;
    if (this.state === 'completed') return false;
    if (this.state === 'accepted' && !(s >= 200 && s < 300)) return false;
    if (!this.responded && this.timerG !== undefined) {
      clearTimeout(this.timerG); // a pending delayed 100 Trying
      this.timerG = undefined;
    }
    this.responded = true;
    const d = this.destinationOf(res);
    if (d === undefined) return true;
    // Kept for retransmissions until Timer J/L: a sliced address would keep the request's header block.
    this.dest = d.address.length < 13 ? d : { ...d, address: detached(d.address) };
    this.wire = res.toBuffer();
    this.transmit();
    if (s < 200) {
      if (!this.isInvite) this.state = 'proceeding';
      return true;
    }
    this.req = undefined;
    const t = this.layer.timers;
    if (this.isInvite) {
      if (s < 300) {
        // INVITE retransmissions are absorbed silently from now on (RFC 6026); further 2xx are sent as they come
        this.wire = undefined;
        if (this.state !== 'accepted') {
          this.state = 'accepted';
          this.layer.linger(this.layer.finishedMs, this); // Timer L
        }
      } else {
        this.state = 'completed';
        if (!this.reliable) this.timerG = setTimeout(ServerTransaction.timerG, this.gInterval, this);
        this.layer.linger(64 * t.t1Ms, this); // Timer H
      }
    } else {
      this.state = 'completed';
      clearTimeout(this.unansweredTimer);
      this.unansweredTimer = undefined;
      if (this.reliable) this.terminate(true); // Timer J = 0
      else this.layer.linger(this.layer.finishedMs, this); // Timer J
    }
    return true;
  }

  /**
   * Answers with a final response once, statelessly (RFC 3261 §8.2.7), and forgets the transaction: no Timer G
   * retransmissions (a spoofed source gets one datagram per request it sent, never ten) and no state held for
   * 64*T1. A retransmitted request is then a new request and gets a new answer; the ACK of a non-2xx finds no
   * transaction and is the TU's to recognise (by the To-tag it chose). False once a final was sent.
   */
  respondStateless(res: SipResponse): boolean {
    if (res.status < 200 || (this.state !== 'trying' && this.state !== 'proceeding')) return false;
    this.responded = true;
    const dest = this.destinationOf(res);
    if (dest === undefined) return true;
    this.layer.transport.post(res.toBuffer(), dest, this);
    this.terminate(false);
    return true;
  }

  /** Where a response goes (Via, rport, the connection it came on); undefined: reported as a send failure. */
  private destinationOf(res: SipResponse): Destination | undefined {
    try {
      return this.layer.transport.responseDestination(res, this.source?.connectionId);
    } catch (e) {
      this.sendFailed(e instanceof Error ? e : new Error(String(e)));
      return undefined;
    }
  }

  private fireG(): void {
    if (this.state !== 'completed') return;
    this.layer.metrics?.sipRetransmissions?.inc({ method: this.method });
    this.transmit();
    this.gInterval = Math.min(2 * this.gInterval, this.layer.timers.t2Ms);
    this.timerG = setTimeout(ServerTransaction.timerG, this.gInterval, this);
  }

  private transmit(): void {
    const wire = this.wire;
    const dest = this.dest;
    if (wire === undefined || dest === undefined) return;
    this.layer.transport.post(wire, dest, this);
  }

  /** @internal a response could not be sent: tell the TU, end the transaction */
  sendFailed(err: Error): void {
    if (this.state === 'terminated') return;
    this.layer.log.debug({ err: err.message, method: this.method }, 'response send failed');
    this.layer.guard(() => this.onTransportError?.(err, this));
    this.terminate(true);
  }

  /** @internal a retransmission of the request arrived */
  retransmitted(): void {
    if ((this.state === 'proceeding' || this.state === 'completed') && this.wire !== undefined) this.transmit();
  }

  /** @internal an ACK matched this transaction; true when absorbed (ACK for our non-2xx final). */
  absorbAck(): boolean {
    if (this.state === 'completed') {
      this.state = 'confirmed';
      clearTimeout(this.timerG); // Timer H finds the state changed when it fires
      this.timerG = undefined;
      this.wire = undefined;
      if (this.reliable) this.terminate(true); // Timer I = 0
      else this.layer.linger(this.layer.timers.t4Ms, this); // Timer I
      return true;
    }
    return this.state === 'confirmed';
  }

  /** Ends the transaction now (clears timers). */
  terminate(notify = true): void {
    if (this.state === 'terminated') return;
    this.state = 'terminated';
    clearTimeout(this.timerG);
    clearTimeout(this.unansweredTimer);
    this.timerG = this.unansweredTimer = undefined;
    this.req = undefined;
    this.wire = undefined;
    this.layer.removeServer(this);
    const cb = this.onTerminated;
    this.onTerminated = this.onTransportError = this.onAckTimeout = undefined;
    if (notify) this.layer.guard(() => cb?.(this));
  }
}

// ------------------------------------------------------------------------------------------------ client

export class ClientTransaction {
  state: ClientState;
  readonly isInvite: boolean;
  readonly method: string;
  readonly key: string;
  /** True once a provisional arrived (CANCEL is allowed from then on). */
  provisionalSeen = false;
  private wire: Buffer | undefined;
  private ackWire: Buffer | undefined;
  private retransTimer: Timer | undefined;
  private retransInterval: number;
  private timeoutTimer: Timer | undefined;
  private noResponseTimer: Timer | undefined;
  private timerC: Timer | undefined;
  /** Timer D / K over TCP (0: ends on the next turn of the loop); over UDP they are linger timers. */
  private endTimer: Timer | undefined;
  private cancelTimer: Timer | undefined;
  private cancelPending = false;
  private cancelSent = false;
  private cancelReason: string | undefined;
  private readonly reliable: boolean;

  /** The request sent; released once a final response arrived. */
  private req: SipRequest | undefined;

  constructor(private readonly layer: TransactionLayer, readonly branch: string, request: SipRequest,
    readonly destination: Destination, private handlers: ClientHandlers, private readonly useTimerC: boolean) {
    this.req = request;
    this.method = request.method;
    this.isInvite = request.method === 'INVITE';
    this.key = `${branch}|${this.method}`;
    this.state = this.isInvite ? 'calling' : 'trying';
    this.reliable = isReliable(destination.proto);
    this.retransInterval = layer.timers.t1Ms;
  }

  /** The request as sent; only until a final response arrived (then it is released). */
  get request(): SipRequest {
    if (this.req === undefined) throw new Error(`${this.method} client transaction is ${this.state}: its request was released`);
    return this.req;
  }

  /**
   * Replaces the TU's handlers (e.g. with a slim 2xx relay once the TU is done with the call), so that what the old
   * handlers captured is not kept alive for the rest of the transaction's lifetime.
   */
  rebind(handlers: ClientHandlers): void {
    this.handlers = handlers;
  }

  /** @internal */
  start(): void {
    const t = this.layer.timers;
    this.wire = this.request.toBuffer();
    this.send(this.wire);
    if (!this.reliable) this.retransTimer = setTimeout(ClientTransaction.retransmit, this.retransInterval, this);
    // Timer B / F
    this.timeoutTimer = setTimeout(ClientTransaction.timeout, 64 * t.t1Ms, this, this.isInvite ? 'timer-b' : 'timer-f');
    if (t.noResponseTimeoutMs < 64 * t.t1Ms) this.noResponseTimer = setTimeout(ClientTransaction.timeout, t.noResponseTimeoutMs, this, 'no-response');
  }

  private send(buf: Buffer): void {
    this.layer.transport.post(buf, this.destination, this);
  }

  /** @internal a send failed: tell the TU and end the transaction */
  sendFailed(err: Error): void {
    if (this.state === 'terminated') return;
    this.layer.log.debug({ err: err.message, method: this.method }, 'request send failed');
    this.layer.guard(() => this.handlers.onTransportError?.(err, this));
    this.terminate(true);
  }

  // Timer callbacks are static (see ServerTransaction): no closure context that could hold a message alive.
  private static retransmit(ct: ClientTransaction): void { ct.retransmit(); }

  private static timeout(ct: ClientTransaction, kind: TimeoutKind): void { ct.timeout(kind); }

  private static end(ct: ClientTransaction): void { ct.terminate(true); }

  /** @internal the linger timer of the state it was started in: M (accepted), D / K (completed). */
  lingerExpired(): void {
    if (this.state === 'accepted' || this.state === 'completed') this.terminate(true);
  }

  private static timerC(ct: ClientTransaction): void {
    if (ct.state !== 'proceeding') return;
    ct.layer.guard(() => ct.handlers.onTimeout?.('timer-c', ct));
    // RFC 3261 §16.8: a provisional was received, so the transaction is CANCELled (the TU answers 408)
    ct.cancel();
  }

  private static cancelTimeout(ct: ClientTransaction): void {
    if (ct.state !== 'calling' && ct.state !== 'proceeding') return;
    ct.layer.guard(() => ct.handlers.onTimeout?.('cancel-timeout', ct));
    ct.terminate(true);
  }

  private retransmit(): void {
    if (this.state !== 'calling' && this.state !== 'trying' && this.state !== 'proceeding') return;
    if (this.isInvite && this.state === 'proceeding') return;
    this.layer.metrics?.sipRetransmissions?.inc({ method: this.method });
    this.send(this.wire!);
    // Timer A doubles without bound; Timer E doubles up to T2 and stays at T2 once proceeding
    const t = this.layer.timers;
    this.retransInterval = this.isInvite ? this.retransInterval * 2
      : this.state === 'proceeding' ? t.t2Ms : Math.min(this.retransInterval * 2, t.t2Ms);
    this.retransTimer = setTimeout(ClientTransaction.retransmit, this.retransInterval, this);
  }

  private timeout(kind: TimeoutKind): void {
    if (this.state === 'terminated' || this.state === 'completed' || this.state === 'accepted') return;
    if (kind === 'no-response' && this.isInvite && this.state !== 'calling') return;
    if (kind === 'timer-b' && this.state !== 'calling') return;
    this.layer.guard(() => this.handlers.onTimeout?.(kind, this));
    this.terminate(true);
  }

  /** @internal a response matched this transaction */
  receive(res: SipResponse): void {
    const s = res.status;
    const t = this.layer.timers;
    switch (this.state) {
      case 'calling':
      case 'trying':
      case 'proceeding': {
        if (this.isInvite) {
          // INVITE: any response ends the no-response wait (Timer C takes over); non-INVITE waits for the final
          clearTimeout(this.noResponseTimer);
          this.noResponseTimer = undefined;
        }
        if (s < 200) {
          if (this.isInvite) {
            clearTimeout(this.retransTimer);
            clearTimeout(this.timeoutTimer);
            this.retransTimer = this.timeoutTimer = undefined;
            if (this.useTimerC && !this.cancelSent) {
              clearTimeout(this.timerC);
              this.timerC = setTimeout(ClientTransaction.timerC, t.inviteTimeoutMs, this);
            }
          } else if (!this.reliable && this.state === 'trying') {
            // Timer E continues at T2 in proceeding
            clearTimeout(this.retransTimer);
            this.retransInterval = t.t2Ms;
            this.retransTimer = setTimeout(ClientTransaction.retransmit, this.retransInterval, this);
          }
          this.state = 'proceeding';
          const first = !this.provisionalSeen;
          this.provisionalSeen = true;
          this.layer.guard(() => this.handlers.onResponse(res, this));
          if (first && this.cancelPending) this.sendCancel();
          return;
        }
        this.clearRunning();
        this.wire = undefined;
        if (this.isInvite && s < 300) {
          this.state = 'accepted';
          this.layer.linger(this.layer.finishedMs, this); // Timer M
        } else {
          this.state = 'completed';
          if (this.isInvite) {
            this.ackWire = this.buildAck(res).toBuffer();
            this.send(this.ackWire);
          }
          if (this.reliable) this.endTimer = setTimeout(ClientTransaction.end, 0, this); // Timer D / K = 0
          else this.layer.linger(this.isInvite ? this.layer.timerDMs : t.t4Ms, this); // Timer D / K
        }
        this.req = undefined;
        const h = this.handlers;
        // completed: nothing more goes to onResponse (retransmitted finals are absorbed, a late 2xx is a stray)
        if (this.state === 'completed') this.handlers = { onResponse: noop, onTerminated: h.onTerminated };
        this.layer.guard(() => h.onResponse(res, this));
        return;
      }
      case 'accepted':
        // every 2xx goes up: the proxy forwards 2xx retransmissions (RFC 6026)
        if (s >= 200 && s < 300) this.layer.guard(() => this.handlers.onResponse(res, this));
        return;
      case 'completed':
        if (this.isInvite && s >= 200 && s < 300) {
          // a 2xx after our non-2xx (a forking downstream): never swallow a 2xx, the TU relays it statelessly
          this.layer.stray(res);
          return;
        }
        // a retransmitted final: re-send the ACK (INVITE), absorb it
        this.layer.metrics?.sipRetransmissions?.inc({ method: this.method });
        if (this.ackWire !== undefined && s >= 300) this.send(this.ackWire);
        return;
      default:
        return;
    }
  }

  private clearRunning(): void {
    clearTimeout(this.retransTimer);
    clearTimeout(this.timeoutTimer);
    clearTimeout(this.noResponseTimer);
    clearTimeout(this.timerC);
    clearTimeout(this.cancelTimer);
    this.retransTimer = this.timeoutTimer = this.noResponseTimer = this.timerC = this.cancelTimer = undefined;
  }

  /** RFC 3261 §17.1.1.3: the ACK for a non-2xx final, built from the request we sent. */
  private buildAck(res: SipResponse): SipRequest {
    const req = this.request;
    const headers: HeaderLine[] = [];
    const top = req.headers.find((h) => h.lname === 'via');
    if (top) headers.push(headerLine('Via', req.tryTopVia()?.raw ?? top.value));
    headers.push(headerLine('Max-Forwards', '70'));
    for (const h of req.headers) if (h.lname === 'route') headers.push(headerLine('Route', h.value));
    headers.push(headerLine('From', req.getHeader('from') ?? ''));
    headers.push(headerLine('To', res.getHeader('to') ?? req.getHeader('to') ?? ''));
    headers.push(headerLine('Call-ID', req.getHeader('call-id') ?? ''));
    headers.push(headerLine('CSeq', `${req.tryCSeq()?.seq ?? 0} ACK`));
    return new SipRequest('ACK', req.uriRaw, headers);
  }

  /** RFC 3261 §9.1: the CANCEL for this INVITE (same Request-URI, top Via, From, To, Call-ID, CSeq number, Route). */
  buildCancel(reason?: string): SipRequest {
    const req = this.request;
    const headers: HeaderLine[] = [];
    headers.push(headerLine('Via', req.tryTopVia()?.raw ?? req.getHeader('via') ?? ''));
    headers.push(headerLine('Max-Forwards', '70'));
    for (const h of req.headers) if (h.lname === 'route') headers.push(headerLine('Route', h.value));
    headers.push(headerLine('From', req.getHeader('from') ?? ''));
    headers.push(headerLine('To', req.getHeader('to') ?? ''));
    headers.push(headerLine('Call-ID', req.getHeader('call-id') ?? ''));
    headers.push(headerLine('CSeq', `${req.tryCSeq()?.seq ?? 0} CANCEL`));
    if (reason !== undefined) headers.push(headerLine('Reason', reason));
    return new SipRequest('CANCEL', req.uriRaw, headers);
  }

  /**
   * Cancels this INVITE: sends CANCEL now if a provisional was received, else as soon as one arrives (§9.1).
   * If no final response arrives within 64*T1 after the CANCEL, onTimeout('cancel-timeout') and the transaction ends.
   * No-op for non-INVITE, after a final response, or when already cancelled. `reason`: optional Reason header value.
   */
  cancel(reason?: string): void {
    if (!this.isInvite || this.cancelPending || this.cancelSent) return;
    if (this.state !== 'calling' && this.state !== 'proceeding') return;
    this.cancelReason = reason;
    if (this.provisionalSeen) this.sendCancel();
    else this.cancelPending = true;
  }

  /** True once cancel() was called. */
  get cancelled(): boolean { return this.cancelPending || this.cancelSent; }

  private sendCancel(): void {
    if (this.cancelSent) return;
    this.cancelPending = false;
    this.cancelSent = true;
    clearTimeout(this.timerC);
    this.timerC = undefined;
    const cancel = this.buildCancel(this.cancelReason);
    // its own non-INVITE client transaction with the same branch (keyed by method), response swallowed
    this.layer.sendRequest(cancel, this.destination, { onResponse: () => undefined }, { via: 'keep' });
    this.cancelTimer = setTimeout(ClientTransaction.cancelTimeout, 64 * this.layer.timers.t1Ms, this);
  }

  /** Ends the transaction now (clears timers). */
  terminate(notify = true): void {
    if (this.state === 'terminated') return;
    this.state = 'terminated';
    this.clearRunning();
    clearTimeout(this.endTimer);
    this.endTimer = undefined;
    this.wire = this.ackWire = undefined;
    this.layer.removeClient(this);
    const h = this.handlers;
    this.handlers = DONE;
    if (notify) this.layer.guard(() => h.onTerminated?.(this));
  }
}
