// The proxy core (RFC 3261 §16): the transaction user on top of the SIP core's transaction layer.
// Stateful forwarding with serial failover, Timer C answers, CANCEL propagation, loose-routed in-dialog
// requests, stateless relaying of 2xx retransmissions, and the actions stages may use (BYE both sides,
// OPTIONS probes). Policy lives in script.ts; this file offers the primitives the script calls (reply, drop,
// relayInDialog, forward) and runs the forwarding state. Retransmissions, hop-by-hop ACKs, Timer C's CANCEL
// and the §17 timers belong to src/sip/transaction.ts.
import { isIP } from 'node:net';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import {
  createRequest, createResponse, detached, formatVia, newBranch, newCallId, newTag, parseUri, REASONS,
  type ClientTransaction, type Destination, type MessageSource, type ServerTransaction, type SipParseError,
  type SipRequest, type SipResponse, type SipTransport, type SipUri, type TimeoutKind, type TransactionUser,
  type TransportProto, TransactionLayer,
} from '../sip/index.js';
import { factsOf } from './facts.js';
import type {
  Authenticated, CallEvent, DialogInfo, EndReason, HeaderList, ProxyActions, ProxyHooks, RequestFacts, Source, Target,
  TargetFailure,
} from './hooks.js';
import type { AdmissionControl } from './overload.js';
import { hopOfUri, isOurs, recordRouteFor, type Iface, type Identity, type RouteSigner } from './route.js';

export interface CoreConfig {
  t1Ms: number;
  t2Ms: number;
  t4Ms: number;
  /** Lifetime of finished transactions (TransactionTimers.lingerMs); undefined: the RFC's. */
  lingerMs?: number;
  inviteTimeoutMs: number;
  noResponseTimeoutMs: number;
  maxForwards: number;
  serverHeader: string;
  failoverCodes: ReadonlySet<number>;
  retryAfterSec: number;
  /** Retry-After on the 503 of the overload control. */
  overloadRetryAfterSec: number;
  /** Signs our Record-Route (see route.ts); undefined: unsigned. */
  signer: RouteSigner | undefined;
}

const KNOWN_METHODS = new Set(['INVITE', 'ACK', 'BYE', 'CANCEL', 'OPTIONS', 'REGISTER', 'INFO', 'UPDATE', 'PRACK',
  'MESSAGE', 'NOTIFY', 'SUBSCRIBE', 'REFER', 'PUBLISH']);

/** The methods this gateway relays; sent in Allow. */
export const ALLOW = 'INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, PRACK, NOTIFY, REFER, MESSAGE';

/** ProxyCore.state(). */
export interface ProxyState {
  serverTransactions: number;
  clientTransactions: number;
  /** Requests being forwarded and not yet answered upstream (or whose branch still awaits its final). */
  forwardings: number;
  /** Answered calls the proxy still has a snapshot of. */
  callsUp: number;
}

/** What authorize() granted: a release callback (call slot) and the maximum duration. */
export interface Authorization {
  release?: () => void;
  maxDurationSec?: number;
}

/** Why a request was dropped, as a bounded metric label (the free-text reason goes to the log). */
export type DropKind = 'screen' | 'auth' | 'no-transaction';

/** One incoming request as the script sees it. */
export interface Inbound {
  readonly req: SipRequest;
  readonly facts: RequestFacts;
  /** Null for ACK (never answered). */
  readonly st: ServerTransaction | null;
  /** The interface it arrived on. */
  readonly iface: Iface;
}

/** One hop a request can be sent to. */
interface Hop {
  target: Target | undefined;
  /** Resolved lazily (a target or next hop may be a host name). */
  dest: Destination | undefined;
  uri: SipUri | undefined;
  /** Transport to use when the URI does not say (double Record-Route). */
  proto: TransportProto;
  /** Rewrite the Request-URI to this (initial requests to a dispatcher box). */
  ruri: string | undefined;
}

interface Branch {
  ct: ClientTransaction | undefined;
  hop: Hop;
  rr: string[];
}

/** One stateful forwarding: a server transaction and its serial branches. */
interface Forwarding {
  st: ServerTransaction;
  base: SipRequest;
  inbound: Inbound;
  hops: Hop[];
  next: number;
  attempt: number;
  branch: Branch | undefined;
  /** Initial INVITE: Record-Route, failover, call events. */
  initial: boolean;
  auth: Authenticated | undefined;
  release: (() => void) | undefined;
  /** What authorize() allowed (events carry it to accounting and dialogs). */
  maxDurationSec: number | undefined;
  /** In-dialog requests: sent by the caller (from our Record-Route's ftag). */
  fromCaller: boolean;
  cancelled: boolean;
  /** A final answer went upstream (relayed or ours). */
  done: boolean;
  answered: boolean;
  startedAt: number;
  lastFailure: { status: number; reason: string; target: Target | undefined } | undefined;
}

/**
 * One call = Call-ID + the caller's tag: the caller picks the Call-ID, so two calls may share one, and keying by
 * Call-ID alone would let one call's BYE release the other's call slot.
 */
function callKey(callId: string, callerTag: string): string {
  return `${callId}\u0000${callerTag}`;
}

export class ProxyCore implements ProxyActions, TransactionUser {
  readonly layer: TransactionLayer;
  private readonly forwardings = new Map<ServerTransaction, Forwarding>();
  /** Answered calls still up: release callbacks from authorize, by callKey (Call-ID + caller tag). */
  private readonly releases = new Map<string, () => void>();
  /** Snapshots of answered calls still up (for `ended.dialog`), by callKey. */
  private readonly dialogs = new Map<string, DialogInfo>();
  /** Branches we gave up on without a final (no response, transport error), for 64*T1: a late 2xx is hung up. */
  private readonly abandoned = new Map<string, { req: SipRequest; dest: Destination; timer: NodeJS.Timeout }>();
  private readonly pending = new Set<{ timer: NodeJS.Timeout; ct: ClientTransaction | undefined; done: (s: number) => void }>();
  stopping = false;
  /** To-tags of our stateless answers start with this (per process), so their ACKs are recognised. */
  private readonly slPrefix = `sl${newTag().slice(0, 6)}-`;
  /** Overload control (overload.ts); undefined: every new INVITE is taken on. */
  admission: AdmissionControl | undefined;
  private script: (inb: Inbound) => Promise<void> = async () => undefined;

  constructor(
    readonly transport: SipTransport,
    readonly ifaces: Iface[],
    readonly identity: Identity,
    readonly cfg: CoreConfig,
    readonly hooks: ProxyHooks,
    readonly log: Logger,
    readonly metrics: Metrics | undefined,
  ) {
    // autoTrying off: the script sends 100 only once a request passed screening, so scanners learn nothing.
    this.layer = new TransactionLayer({ transport, timers: cfg, logger: log, metrics, autoTrying: false }, this);
  }

  /**
   * What the proxy holds right now: transactions (they linger 64*T1, or sip.lingerMs, after their final, holding
   * only bytes) and forwardings (only while a request is being answered).
   */
  state(): ProxyState {
    const t = this.layer.size;
    return { serverTransactions: t.server, clientTransactions: t.client, forwardings: this.forwardings.size, callsUp: this.dialogs.size };
  }

  /** Installs the routing script (policy for every new request). */
  setScript(script: (inb: Inbound) => Promise<void>): void {
    this.script = script;
  }

  ifaceFor(proto: TransportProto): Iface | undefined {
    return this.ifaces.find((i) => i.proto === proto);
  }

  // ------------------------------------------------------------------------------------------ TransactionUser

  onRequest(req: SipRequest, st: ServerTransaction | null): void {
    if (this.stopping) {
      st?.terminate(false);
      return;
    }
    this.metrics?.sipRequests.inc({ method: KNOWN_METHODS.has(req.method) ? req.method : 'other' });
    const src = req.source;
    const proto = src?.proto ?? 'udp';
    const iface = this.ifaces.find((i) => i.proto === proto && i.port === src?.localPort) ?? this.ifaceFor(proto)!;
    if (req.method === 'CANCEL' && st) {
      const inv = this.layer.matchInvite(req);
      // Only the caller may cancel its INVITE: same source address as the INVITE (branch ids can be guessable).
      if (inv && inv.source?.address === src?.address) {
        this.respond(st, createResponse(req, 200, { headers: this.serverHdr() }), 'local');
        this.cancelInvite(inv, req);
        this.emit({ type: 'transaction', facts: factsOf(req), status: 200, reason: 'OK', at: Date.now() });
        return;
      }
    }
    const inb: Inbound = { req, facts: factsOf(req), st, iface };
    this.script(inb).catch((e: unknown) => {
      this.log.error({ callId: inb.facts.callId, err: e instanceof Error ? e.message : String(e) }, 'routing script fault');
      if (st) this.reply(inb, 500, 'Server Internal Error');
    });
  }

  /** A response no client transaction wants: 2xx retransmissions to INVITE after Timer M are relayed by Via. */
  onStrayResponse(res: SipResponse): void {
    const via = res.tryTopVia();
    const cseq = res.tryCSeq();
    const gone = via?.branch !== undefined ? this.abandoned.get(via.branch) : undefined;
    if (gone && cseq?.method === 'INVITE' && res.status >= 200 && res.status < 300) {
      // A box answered after we failed over: the caller is on another branch (or got our answer). Hang it up.
      this.hangUpLate(gone.req, gone.dest, res);
      return;
    }
    if (via && cseq?.method === 'INVITE' && res.status >= 200 && res.status < 300
      && this.identity.hosts.has(via.host.toLowerCase()) && this.identity.ports.has(via.port ?? 5060)) {
      res.popVia();
      this.relayByVia(res);
      return;
    }
    this.metrics?.sipDropped.inc({ reason: 'no-transaction' });
  }

  /** Malformed input: answer what can be answered (400 "<what was wrong>", 505, 513), drop the rest. */
  onParseError(err: SipParseError, source: MessageSource): void {
    const req = err.message;
    if (!req || this.stopping) {
      this.metrics?.sipDropped.inc({ reason: err.kind === 'too-large' ? 'oversize' : 'malformed' });
      this.log.debug({ remote: `${source.address}:${source.port}`, reason: err.reason }, 'unanswerable message dropped');
      return;
    }
    this.log.info({ callId: req.getHeader('call-id'), remote: `${source.address}:${source.port}`, status: err.status, reason: err.reason }, 'malformed request answered');
    const res = createResponse(req, err.status, { reason: err.reason, headers: this.serverHdr() });
    this.metrics?.sipResponses.inc({ code: String(err.status), origin: 'local' });
    this.transport.sendResponse(res, source.connectionId).catch((e: unknown) => this.sendFailed(e, req.getHeader('call-id')));
  }

  private sendFailed(e: unknown, callId: string | undefined): void {
    this.log.debug({ callId, err: e instanceof Error ? e.message : String(e) }, 'send failed');
  }

  private relayByVia(res: SipResponse): void {
    this.metrics?.sipResponses.inc({ code: String(res.status), origin: 'relayed' });
    this.transport.sendResponse(res).catch((e: unknown) => this.sendFailed(e, res.getHeader('call-id')));
  }

  // ------------------------------------------------------------------------------------------ script primitives

  serverHdr(extra?: HeaderList): Array<readonly [string, string]> {
    const h: Array<readonly [string, string]> = extra ? [...extra] : [];
    if (this.cfg.serverHeader) h.push(['Server', this.cfg.serverHeader]);
    return h;
  }

  /** Answers a request locally: a final to a request never forwarded statelessly, anything else statefully. ACKs are never answered. */
  reply(inb: Inbound, status: number, reason?: string, headers?: HeaderList): void {
    const st = inb.st;
    if (!st) return;
    // A final answer to a request we never forwarded (sanity, screening, 407 challenge, refusal) is stateless, as
    // Kamailio's sl: one datagram per request received, no Timer G, nothing held for 32 s per unauthenticated INVITE.
    const stateless = status >= 200 && !this.forwardings.has(st);
    const res = createResponse(inb.req, status, { reason: reason ?? REASONS[status], headers: this.serverHdr(headers), toTag: stateless ? this.slTag() : undefined });
    if (status >= 200) {
      // calls are worth an info line; a flood of 405s to OPTIONS scanners is not
      const level = inb.req.method === 'INVITE' ? 'info' : 'debug';
      this.log[level]({ callId: inb.facts.callId, method: inb.req.method, status, reason: res.reason }, 'request answered locally');
    }
    if (stateless) this.respondStateless(st, res);
    else this.respond(st, res, 'local');
  }

  /** 100 Trying only if nothing else was sent within half of T1 (at most 200 ms, RFC 3261 §17.2.1). */
  tryingSoon(inb: Inbound): void {
    inb.st?.tryingAfter(Math.min(200, this.cfg.t1Ms / 2));
  }

  /** The ACK of one of our stateless non-2xx answers (its To-tag is ours): absorbed, as a transaction would. */
  isStatelessAck(req: SipRequest): boolean {
    return req.method === 'ACK' && (req.tryTo()?.tag?.startsWith(this.slPrefix) ?? false);
  }

  private slTag(): string {
    return this.slPrefix + newTag();
  }

  private respondStateless(st: ServerTransaction, res: SipResponse): void {
    if (st.respondStateless(res)) this.metrics?.sipResponses.inc({ code: String(res.status), origin: 'local' });
  }

  /**
   * Overload: a new INVITE answered 503 + Retry-After at once (overload.ts). Counted, not logged one by one: the
   * admission control logs when overload begins and ends.
   */
  shed(inb: Inbound): void {
    this.metrics?.sipOverloadRejected.inc();
    if (!inb.st) return;
    const res = createResponse(inb.req, 503, { reason: 'Service Unavailable', headers: this.serverHdr([['Retry-After', String(this.cfg.overloadRetryAfterSec)]]), toTag: this.slTag() });
    this.respondStateless(inb.st, res);
  }

  /** Says nothing (banned source, ACK nobody wants); the server transaction, if any, is forgotten. */
  drop(inb: Inbound, reason: string, kind: DropKind): void {
    this.metrics?.sipDropped.inc({ reason: kind });
    this.log.debug({ callId: inb.facts.callId, method: inb.req.method, reason }, 'request dropped');
    inb.st?.terminate(false);
  }

  private respond(st: ServerTransaction, res: SipResponse, origin: 'local' | 'relayed'): boolean {
    const ok = st.respond(res);
    if (ok) this.metrics?.sipResponses.inc({ code: String(res.status), origin });
    return ok;
  }

  /** Is this URI one of ours (Route, Request-URI)? */
  isMyself(uri: SipUri | null): boolean {
    return isOurs(uri, this.identity);
  }

  /** The copy all branches start from: Max-Forwards decremented (capped at sip.maxForwards). */
  private baseCopy(req: SipRequest): SipRequest {
    const base = req.clone();
    const mf = base.maxForwards;
    if (mf !== undefined && mf > this.cfg.maxForwards) base.setMaxForwards(this.cfg.maxForwards - 1);
    else base.decrementMaxForwards(this.cfg.maxForwards);
    return base;
  }

  /**
   * Relays an in-dialog request to the next hop found by loose routing (ACK statelessly, others statefully) and
   * reports it (`in-dialog`; `ended` once a BYE got its final answer). `ftag` tells the direction.
   */
  relayInDialog(inb: Inbound, nextHop: SipUri, outProto: TransportProto | undefined, ftag: string | undefined): void {
    const fromCaller = ftag === undefined ? true : inb.facts.fromTag === ftag;
    this.noteInDialog(inb, fromCaller);
    const hop: Hop = { target: undefined, dest: undefined, uri: nextHop, proto: outProto ?? inb.iface.proto, ruri: undefined };
    if (!inb.st) {
      // ACK for a 2xx: end to end, no transaction, but with our Via (RFC 3261 §16.6 step 8).
      const out = this.baseCopy(inb.req);
      void this.resolveHop(hop).then((dest) => {
        const local = this.transport.localAddress(dest.proto);
        if (!local) return;
        out.pushVia(formatVia(dest.proto, local.host, local.port, `;branch=${newBranch()}`));
        return this.layer.sendStateless(out, dest);
      }).catch((e: unknown) => this.sendFailed(e, inb.facts.callId));
      return;
    }
    this.startForwarding(inb, [hop], { initial: false, auth: undefined, authz: undefined, fromCaller });
  }

  /** Forwards an initial INVITE to the targets in order (serial forking with failover). */
  forward(inb: Inbound, targets: Target[], auth: Authenticated | undefined, authz: Authorization | undefined): void {
    const st = inb.st;
    if (!st || st.state !== 'proceeding' || this.stopping) {
      // CANCELled (or otherwise answered) while the script was waiting on a hook.
      authz?.release?.();
      return;
    }
    const ruri = inb.req.tryUri();
    const hops: Hop[] = targets.map((t) => ({ target: t, dest: undefined, uri: undefined, proto: t.proto, ruri: rewriteRuri(ruri, t) }));
    this.startForwarding(inb, hops, { initial: inb.req.method === 'INVITE', auth, authz, fromCaller: true });
  }

  private async resolveHop(hop: Hop): Promise<Destination> {
    if (hop.dest) return hop.dest;
    if (hop.target) {
      const t = hop.target;
      hop.dest = isIP(t.host) ? { proto: t.proto, address: t.host, port: t.port } : { ...(await this.transport.resolve(`sip:${t.host}:${t.port}`)), proto: t.proto };
      return hop.dest;
    }
    const uri = hop.uri!;
    const h = hopOfUri(uri, hop.proto);
    hop.dest = isIP(h.address) ? { proto: h.proto, address: h.address, port: h.port } : { ...(await this.transport.resolve(uri)), proto: h.proto };
    return hop.dest;
  }

  private startForwarding(inb: Inbound, hops: Hop[], o: { initial: boolean; auth: Authenticated | undefined; authz: Authorization | undefined; fromCaller: boolean }): void {
    const st = inb.st!;
    const f: Forwarding = {
      st, base: this.baseCopy(inb.req), inbound: inb, hops, next: 0, attempt: 0, branch: undefined,
      initial: o.initial, auth: o.auth, release: o.authz?.release, maxDurationSec: o.authz?.maxDurationSec,
      fromCaller: o.fromCaller, cancelled: false, done: false, answered: false, startedAt: Date.now(), lastFailure: undefined,
    };
    this.forwardings.set(st, f);
    st.onTerminated = () => { if (this.forwardings.get(st) === f) this.forwardings.delete(st); };
    if (f.initial) {
      this.emit({ type: 'start', facts: inb.facts, auth: f.auth, at: f.startedAt, maxDurationSec: f.maxDurationSec });
      this.metrics?.calls.inc({ event: 'started' });
      this.metrics?.callsActive.inc();
    }
    this.tryNext(f);
  }

  private tryNext(f: Forwarding): void {
    if (f.done) return;
    if (f.cancelled) {
      this.finish(f, 487, 'Request Terminated', undefined, true);
      return;
    }
    const hop = f.hops[f.next++];
    if (!hop) {
      if (f.initial || f.lastFailure === undefined) {
        this.finish(f, 503, 'Service Unavailable', [['Retry-After', String(this.cfg.retryAfterSec)]], false);
      } else {
        this.finish(f, f.lastFailure.status, f.lastFailure.reason, undefined, false);
      }
      return;
    }
    f.attempt++;
    const b: Branch = { ct: undefined, hop, rr: [] };
    f.branch = b;
    this.resolveHop(hop).then((dest) => this.sendBranch(f, b, dest), (e: unknown) => {
      if (f.branch !== b || f.done) return;
      this.branchFailed(f, hop, { kind: 'transport', message: e instanceof Error ? e.message : String(e) }, 503, 'Unresolvable');
    });
  }

  private sendBranch(f: Forwarding, b: Branch, dest: Destination): void {
    if (f.branch !== b || f.done || this.stopping) return;
    if (f.cancelled) {
      this.finish(f, 487, 'Request Terminated', undefined, true);
      return;
    }
    const { facts } = f.inbound;
    const local = this.transport.localAddress(dest.proto);
    if (!local) {
      this.branchFailed(f, b.hop, { kind: 'transport', message: `no ${dest.proto} listener` }, 503, 'No Listener');
      return;
    }
    const req = f.base.clone();
    if (b.hop.ruri !== undefined) req.setUri(b.hop.ruri);
    if (f.initial) {
      const sig = this.cfg.signer?.(facts.callId, facts.fromTag);
      b.rr = recordRouteFor(f.inbound.iface, { proto: dest.proto, host: local.host, port: local.port }, facts.fromTag, sig);
      for (let i = b.rr.length - 1; i >= 0; i--) req.prependRecordRoute(b.rr[i]!);
    }
    this.log.debug({ callId: facts.callId, method: req.method, dest, attempt: f.attempt }, 'forwarding');
    b.ct = this.layer.sendRequest(req, dest, {
      onResponse: (res) => this.onBranchResponse(f, b, res),
      onTimeout: (kind) => this.onBranchTimeout(f, b, kind),
      onTransportError: (err) => {
        if (f.branch !== b || f.done) return;
        this.abandon(b);
        this.branchFailed(f, b.hop, { kind: 'transport', message: err.message }, 503, 'Transport Error');
      },
    });
  }

  private onBranchResponse(f: Forwarding, b: Branch, res: SipResponse): void {
    if (f.branch !== b) return;
    const { facts } = f.inbound;
    const s = res.status;
    if (s < 200) {
      if (s === 100 || f.done) return; // 100 is hop by hop
      res.popVia();
      this.respond(f.st, res, 'relayed');
      return;
    }
    if (s < 300) {
      // 2xx always go upstream (RFC 3261 §16.7 step 10), retransmissions and late ones too.
      if (f.answered) {
        this.relay2xx(f.st, res);
        return;
      }
      res.popVia();
      if (!this.respond(f.st, res, 'relayed')) this.relayByVia(res);
      f.answered = true;
      const wasDone = f.done;
      f.done = true;
      if (f.initial) this.answered(f, b, res, wasDone);
      else this.inDialogOutcome(f, s, res.reason);
      this.settle(f);
      return;
    }
    if (f.done) {
      // already answered upstream (Timer C 408, CANCEL 487); the layer ACKed this final
      this.settle(f);
      return;
    }
    if (f.initial && !f.cancelled && this.cfg.failoverCodes.has(s)) {
      this.branchFailed(f, b.hop, { kind: 'status', status: s }, s, res.reason);
      return;
    }
    res.popVia();
    this.respond(f.st, res, 'relayed');
    f.done = true;
    this.log.info({ callId: facts.callId, status: s, reason: res.reason, method: f.inbound.req.method }, 'final response relayed');
    if (f.initial) this.failed(f, b.hop.target, s, res.reason, f.cancelled);
    else this.inDialogOutcome(f, s, res.reason);
    this.settle(f);
  }

  /** A 2xx retransmission (RFC 6026): upstream through the server transaction while it lingers, else by Via. */
  private relay2xx(st: ServerTransaction, res: SipResponse): void {
    if (res.status < 200 || res.status >= 300) return;
    res.popVia();
    if (!this.respond(st, res, 'relayed')) this.relayByVia(res);
  }

  /**
   * The forwarding has answered upstream and its branch has its final response: nothing needs it any more. Forget
   * it and leave the lingering transactions (64*T1) a slim 2xx relay, so the INVITE, its copies and the call's facts
   * are not kept alive for those 32 s. A branch still waiting for its final (a CANCEL in flight) keeps it.
   */
  private settle(f: Forwarding): void {
    if (!f.done) return;
    const ct = f.branch?.ct;
    if (ct !== undefined && ct.state !== 'accepted' && ct.state !== 'completed' && ct.state !== 'terminated') return;
    const st = f.st;
    if (this.forwardings.get(st) === f) this.forwardings.delete(st);
    st.onTerminated = undefined;
    if (ct !== undefined && ct.state === 'accepted') ct.rebind({ onResponse: (res) => this.relay2xx(st, res) });
  }

  private onBranchTimeout(f: Forwarding, b: Branch, kind: TimeoutKind): void {
    if (f.branch !== b || f.done) return;
    const { facts } = f.inbound;
    switch (kind) {
      case 'timer-c':
        // The callee rang too long: the layer CANCELs the branch; we answer 408 (no failover: someone was alerted).
        this.log.info({ callId: facts.callId, dest: b.hop.dest }, 'INVITE timeout (Timer C)');
        if (f.cancelled) this.finish(f, 487, 'Request Terminated', undefined, true);
        else this.finish(f, 408, 'Request Timeout', undefined, false);
        return;
      case 'cancel-timeout':
        this.finish(f, f.cancelled ? 487 : 408, f.cancelled ? 'Request Terminated' : 'Request Timeout', undefined, f.cancelled);
        return;
      default:
        // no response at all (fr_timer), Timer B or Timer F: the hop is dead → next one
        this.abandon(b);
        this.branchFailed(f, b.hop, { kind: 'timeout' }, 408, 'Request Timeout');
    }
  }

  /** Remembers an INVITE branch given up without a final response, so a late 2xx from it can be hung up. */
  private abandon(b: Branch): void {
    const ct = b.ct;
    if (!ct || !ct.isInvite || this.stopping) return;
    const timer = setTimeout(() => this.abandoned.delete(ct.branch), 64 * this.cfg.t1Ms);
    this.abandoned.set(ct.branch, { req: ct.request, dest: ct.destination, timer });
  }

  /** ACK and BYE for a 2xx nobody upstream will take (RFC 3261 §16.7 leaves it to us to end that dialog). */
  private hangUpLate(inv: SipRequest, dest: Destination, res: SipResponse): void {
    const callId = res.getHeader('call-id') ?? '';
    const target = res.contacts?.[0]?.uriRaw;
    const local = this.transport.localAddress(dest.proto);
    this.log.warn({ callId, dest }, 'late 2xx on an abandoned branch: ACK and BYE');
    if (!target || !local) return;
    // Route set towards the box: Record-Route entries above ours (proxies after us), in reverse.
    const ours = (v: string): boolean => this.isMyself(routeUri(v));
    const rr = res.headerValues('record-route');
    const idx = rr.findIndex(ours);
    const route = (idx > 0 ? rr.slice(0, idx) : []).reverse();
    const seq = inv.tryCSeq()?.seq ?? 1;
    const common = { uri: target, from: inv.getHeader('from') ?? '', to: res.getHeader('to') ?? '', callId, route, maxForwards: this.cfg.maxForwards };
    const ack = createRequest({ method: 'ACK', cseq: seq, ...common });
    ack.pushVia(formatVia(dest.proto, local.host, local.port, `;branch=${newBranch()}`));
    this.layer.sendStateless(ack, dest).catch((e: unknown) => this.sendFailed(e, callId));
    const bye = createRequest({ method: 'BYE', cseq: seq + 1, ...common, headers: [['Reason', 'SIP;cause=408;text="answered after failover"']] });
    this.layer.sendRequest(bye, dest, { onResponse: () => undefined }, { timerC: false });
  }

  /** One attempt failed: report, then try the next hop (initial requests) or answer. */
  private branchFailed(f: Forwarding, hop: Hop, failure: TargetFailure, status: number, reason: string): void {
    const { facts } = f.inbound;
    f.lastFailure = { status, reason, target: hop.target };
    this.log.info({ callId: facts.callId, dest: hop.dest, failure, attempt: f.attempt }, 'branch failed');
    if (hop.target && this.hooks.targetFailed) {
      try { this.hooks.targetFailed(hop.target, failure); } catch (e) { this.log.error({ err: String(e) }, 'targetFailed hook threw'); }
    }
    if (!f.initial) {
      const transport = failure.kind === 'transport';
      this.finish(f, transport ? 503 : status, transport ? 'Service Unavailable' : reason, undefined, false);
      return;
    }
    if (hop.target) {
      this.emit({ type: 'attempt-failed', facts, auth: f.auth, target: hop.target, status, reason, at: Date.now(), attempt: f.attempt });
    }
    this.tryNext(f);
  }

  /** Answers upstream with a locally generated final and ends the forwarding. */
  private finish(f: Forwarding, status: number, reason: string, headers: HeaderList | undefined, cancelled: boolean): void {
    if (f.done) return;
    f.done = true;
    this.reply(f.inbound, status, reason, headers);
    if (f.initial) this.failed(f, f.branch?.hop.target ?? f.lastFailure?.target, status, reason, cancelled);
    else this.inDialogOutcome(f, status, reason);
    this.settle(f);
  }

  private failed(f: Forwarding, target: Target | undefined, status: number, reason: string, cancelled: boolean): void {
    this.emit({ type: 'failed', facts: f.inbound.facts, auth: f.auth, target, status, reason, at: Date.now(), cancelled, attempt: f.attempt > 0 ? f.attempt : undefined });
    this.metrics?.calls.inc({ event: cancelled ? 'cancelled' : 'failed' });
    this.metrics?.callsActive.dec();
    const release = f.release;
    f.release = undefined;
    try { release?.(); } catch (e) { this.log.error({ err: String(e) }, 'release threw'); }
  }

  private answered(f: Forwarding, b: Branch, res: SipResponse, afterFailure: boolean): void {
    const now = Date.now();
    const { facts } = f.inbound;
    const target = b.hop.target!;
    const dialog = this.dialogSnapshot(f.inbound.req, res, b, f.startedAt, now);
    dialog.accountcode = f.auth?.accountcode ?? '';
    this.log.info({ callId: facts.callId, status: res.status, target: target.id, setupMs: now - f.startedAt }, 'call answered');
    if (afterFailure) this.metrics?.callsActive.inc(); // a 2xx that beat our own 408/487 upstream: the call is up
    this.emit({ type: 'answered', facts, auth: f.auth, target, status: res.status, reason: res.reason, at: now, dialog, maxDurationSec: f.maxDurationSec });
    this.dialogs.set(callKey(facts.callId, facts.fromTag), dialog);
    this.metrics?.calls.inc({ event: 'answered' });
    this.metrics?.callSetupSeconds.observe((now - f.startedAt) / 1000);
    if (f.release) this.releases.set(callKey(facts.callId, facts.fromTag), f.release);
    f.release = undefined;
  }

  /** A BYE got its final answer (relayed or ours): the call is over for accounting, dialogs and billing. */
  private inDialogOutcome(f: Forwarding, status: number, reason: string): void {
    const { req, facts } = f.inbound;
    if (req.method !== 'BYE' || status < 200) return;
    const key = callKey(facts.callId, f.fromCaller ? facts.fromTag : req.tryTo()?.tag ?? '');
    const dialog = this.dialogs.get(key);
    this.emit({
      type: 'ended', callId: facts.callId, fromTag: facts.fromTag, toTag: req.tryTo()?.tag ?? '',
      reason: f.fromCaller ? 'bye-caller' : 'bye-callee', at: Date.now(), status, statusReason: reason, dialog,
    });
    this.endCall(key);
  }

  private endCall(key: string): void {
    if (this.dialogs.delete(key)) this.metrics?.callsActive.dec();
    const release = this.releases.get(key);
    if (!release) return;
    this.releases.delete(key);
    try { release(); } catch (e) { this.log.error({ err: String(e) }, 'release threw'); }
  }

  /** The JSON-serialisable dialog snapshot, from the INVITE as received and the 2xx as received. */
  private dialogSnapshot(req: SipRequest, res: SipResponse, b: Branch, createdAt: number, answeredAt: number): DialogInfo {
    const src = req.source;
    const callerContactNa = req.contacts?.[0];
    const calleeContactNa = res.contacts?.[0];
    // Route sets: the INVITE's Record-Route entries (upstream proxies) lead to the caller; entries the 2xx has
    // above ours (downstream proxies) lead to the callee, in reverse order.
    const callerRouteSet = req.headerValues('record-route');
    const resRR = res.headerValues('record-route');
    const ourFirst = resRR.findIndex((v) => b.rr.includes(v));
    const calleeRouteSet = (ourFirst > 0 ? resRR.slice(0, ourFirst) : []).reverse();
    const hopVia = (routeSet: string[], contact: SipUri | null | undefined, fallback: Source): Source => {
      const uri = routeSet[0] !== undefined ? routeUri(routeSet[0]) : contact ?? null;
      if (!uri) return fallback;
      const h = hopOfUri(uri, fallback.proto);
      return { ip: h.address, port: h.port, proto: h.proto };
    };
    // The caller is reached where its INVITE came from over UDP (NAT-safe); over TCP at its Contact (a new
    // connection after a restart cannot reach the caller's ephemeral port).
    const srcHop: Source = { ip: src?.address ?? '', port: src?.port ?? 0, proto: src?.proto ?? 'udp' };
    const callerHop = callerRouteSet.length > 0 || srcHop.proto === 'tcp' ? hopVia(callerRouteSet, callerContactNa?.uri, srcHop) : srcHop;
    const dest = b.hop.dest!;
    const calleeHop = hopVia(calleeRouteSet, calleeContactNa?.uri, { ip: dest.address, port: dest.port, proto: dest.proto });
    // Detached copies: the snapshot lives as long as the call, and slices would keep both messages' header blocks.
    return {
      callId: detached(req.callId),
      callerTag: detached(req.tryFrom()?.tag ?? ''),
      calleeTag: detached(res.tryTo()?.tag ?? ''),
      fromHeader: detached(req.getHeader('from') ?? ''),
      toHeader: detached(res.getHeader('to') ?? ''),
      callerContact: detached(callerContactNa?.uriRaw ?? ''),
      calleeContact: detached(calleeContactNa?.uriRaw ?? ''),
      callerRouteSet: callerRouteSet.map(detached),
      calleeRouteSet: calleeRouteSet.map(detached),
      callerHop: { ...callerHop, ip: detached(callerHop.ip) },
      calleeHop: { ...calleeHop, ip: detached(calleeHop.ip) },
      callerCseq: req.tryCSeq()?.seq ?? 1,
      calleeCseq: 0,
      recordRoute: b.rr,
      accountcode: '',
      targetId: b.hop.target?.id ?? '',
      createdAt,
      answeredAt,
    };
  }

  /** In-dialog bookkeeping for stages (CSeqs for the dialog snapshot) and for our own snapshot copy. */
  private noteInDialog(inb: Inbound, fromCaller: boolean): void {
    const { facts } = inb;
    const toTag = inb.req.tryTo()?.tag ?? '';
    this.emit({ type: 'in-dialog', callId: facts.callId, fromTag: facts.fromTag, toTag, method: facts.method, cseq: facts.cseq, fromCaller, at: Date.now() });
    const d = this.dialogs.get(callKey(facts.callId, fromCaller ? facts.fromTag : toTag));
    if (d && facts.method !== 'ACK' && facts.method !== 'CANCEL') {
      if (fromCaller) d.callerCseq = Math.max(d.callerCseq, facts.cseq);
      else d.calleeCseq = Math.max(d.calleeCseq, facts.cseq);
    }
  }

  // ------------------------------------------------------------------------------------------ CANCEL

  private cancelInvite(inv: ServerTransaction, cancel: SipRequest): void {
    const f = this.forwardings.get(inv);
    this.log.info({ callId: cancel.getHeader('call-id') }, 'CANCEL received');
    if (!f) {
      // Still in the script (waiting on auth or routing): answer 487 now; forward() will see it and stop. An INVITE
      // already answered (its forwarding settled) is left alone: the CANCEL got its 200 and changes nothing.
      if (inv.state === 'proceeding') this.respond(inv, createResponse(inv.request, 487, { headers: this.serverHdr() }), 'local');
      return;
    }
    if (f.done || f.cancelled) return;
    f.cancelled = true;
    const ct = f.branch?.ct;
    if (!ct) {
      // between two attempts (or resolving): nothing downstream to cancel
      this.finish(f, 487, 'Request Terminated', undefined, true);
      return;
    }
    // The layer sends the CANCEL now if the branch had a provisional, else as soon as one arrives (§9.1); the
    // branch's 487 is then relayed. A branch that never answers ends on the no-response timer → 487 from us.
    ct.cancel(cancel.getHeader('reason'));
  }

  // ------------------------------------------------------------------------------------------ events

  emit(ev: CallEvent): void {
    if (!this.hooks.onCallEvent) return;
    try {
      this.hooks.onCallEvent(ev);
    } catch (e) {
      this.log.error({ err: e instanceof Error ? e.message : String(e), event: ev.type }, 'onCallEvent threw');
    }
  }

  // ------------------------------------------------------------------------------------------ ProxyActions

  /** BYE to both sides of a confirmed dialog, built from the snapshot alone (works after a restart). */
  async endDialog(d: DialogInfo, reason: EndReason): Promise<void> {
    this.log.info({ callId: d.callId, reason }, 'ending dialog');
    const why: HeaderList = [['Reason', `SIP;cause=200;text="${reason}"`]];
    const toCallee = this.originate({
      method: 'BYE', uri: d.calleeContact, from: d.fromHeader, to: d.toHeader, callId: d.callId,
      cseq: d.callerCseq + 1, route: d.calleeRouteSet, hop: d.calleeHop, headers: why,
    }, 64 * this.cfg.t1Ms);
    const toCaller = this.originate({
      method: 'BYE', uri: d.callerContact, from: d.toHeader, to: d.fromHeader, callId: d.callId,
      cseq: d.calleeCseq + 1, route: d.callerRouteSet, hop: d.callerHop, headers: why,
    }, 64 * this.cfg.t1Ms);
    // No `ended` here: the dialog stage that asked emits it once this promise settles (see NOTES-dialog.md).
    await Promise.all([toCallee, toCaller]);
    this.endCall(callKey(d.callId, d.callerTag));
  }

  /** OPTIONS to a target; the status, or 0 on timeout or transport error. */
  probe(target: Target, timeoutMs: number): Promise<number> {
    const local = this.transport.localAddress(target.proto);
    const host = local?.host ?? 'localhost';
    return this.originate({
      method: 'OPTIONS', uri: target.uri, from: `<sip:a2b-gateway@${host}>;tag=${newTag()}`, to: `<${target.uri}>`,
      callId: newCallId(host), cseq: 1, route: [], hop: { ip: target.host, port: target.port, proto: target.proto }, headers: [],
    }, timeoutMs);
  }

  private originate(o: { method: string; uri: string; from: string; to: string; callId: string; cseq: number; route: string[]; hop: Source; headers: HeaderList }, timeoutMs: number): Promise<number> {
    return new Promise<number>((resolve) => {
      if (this.stopping || !o.uri || !this.transport.localAddress(o.hop.proto)) {
        resolve(0);
        return;
      }
      const req = createRequest({
        method: o.method, uri: o.uri, from: o.from, to: o.to, callId: o.callId, cseq: o.cseq, route: o.route,
        maxForwards: this.cfg.maxForwards,
        headers: [...o.headers, ...(this.cfg.serverHeader ? [['User-Agent', this.cfg.serverHeader] as const] : [])],
      });
      const entry = { timer: undefined as unknown as NodeJS.Timeout, ct: undefined as ClientTransaction | undefined, done: (_s: number): void => undefined };
      let settled = false;
      entry.done = (status: number): void => {
        if (settled) return;
        settled = true;
        clearTimeout(entry.timer);
        this.pending.delete(entry);
        entry.ct?.terminate(false);
        resolve(status);
      };
      entry.timer = setTimeout(() => entry.done(0), timeoutMs);
      this.pending.add(entry);
      const dest: Destination = { proto: o.hop.proto, address: o.hop.ip, port: o.hop.port };
      const start = (d: Destination): void => {
        if (settled) return;
        entry.ct = this.layer.sendRequest(req, d, {
          onResponse: (res) => { if (res.status >= 200) entry.done(res.status); },
          onTimeout: () => entry.done(0),
          onTransportError: () => entry.done(0),
        }, { timerC: false });
      };
      if (isIP(dest.address)) start(dest);
      else this.transport.resolve(`sip:${dest.address}:${dest.port}`).then((d) => start({ ...d, proto: dest.proto }), () => entry.done(0));
    });
  }

  // ------------------------------------------------------------------------------------------ shutdown

  /** Answers every call still being set up (503, CANCEL downstream) and drops all transaction state and timers. */
  shutdown(): void {
    this.stopping = true;
    for (const f of this.forwardings.values()) {
      if (f.done) continue;
      f.branch?.ct?.cancel();
      this.finish(f, 503, 'Service Unavailable', [['Retry-After', String(this.cfg.retryAfterSec)]], false);
    }
    this.forwardings.clear();
    for (const p of [...this.pending]) p.done(0);
    for (const a of this.abandoned.values()) clearTimeout(a.timer);
    this.abandoned.clear();
  }

  /** Clears every transaction timer (after shutdown had a moment to flush its answers). */
  close(): void {
    this.layer.close();
  }
}

/** The Request-URI for a dispatcher target: the caller's user part at the box's address. */
function rewriteRuri(orig: SipUri | null, t: Target): string {
  const user = orig?.user;
  const host = t.host.includes(':') ? `[${t.host}]` : t.host;
  const transport = t.proto === 'tcp' ? ';transport=tcp' : '';
  return `sip:${user !== undefined ? `${user}@` : ''}${host}:${t.port}${transport}`;
}

function routeUri(v: string): SipUri | null {
  const lt = v.indexOf('<');
  const gt = v.indexOf('>', lt + 1);
  return parseUri(lt >= 0 && gt > lt ? v.slice(lt + 1, gt) : v.split(';')[0]!.trim());
}
