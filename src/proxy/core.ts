// The proxy core (RFC 3261 §16): transaction-stateful forwarding with serial failover, Timer C, CANCEL,
// hop-by-hop ACK for non-2xx, loose-routed in-dialog requests, stateless relaying of 2xx retransmissions,
// and the actions stages may use (BYE both sides, OPTIONS probes). Policy lives in script.ts; this file
// only offers the primitives the script calls (reply, drop, relay, forward) and runs the state machines.
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import {
  createRequest, createResponse, formatVia, newBranch, parseUri, newCallId, newTag, REASONS,
  type SipMessage, type SipParseError, type SipRequest, type SipResponse, type SipUri, type TransportProto, type Via,
} from '../sip/index.js';
import { factsOf } from './facts.js';
import type {
  Authenticated, CallEvent, DialogInfo, EndReason, HeaderList, ProxyActions, ProxyHooks, RequestFacts, Source, Target,
  TargetFailure,
} from './hooks.js';
import type { Destination, ProxyNet } from './net.js';
import { hopOfUri, isOurs, recordRouteFor, type Iface, type Identity } from './route.js';
import { ClientTx, ServerTx, serverKey, responseDestination, TxLayer, viaDestination, type TxTimers } from './tx.js';

export interface CoreConfig extends TxTimers {
  inviteTimeoutMs: number;
  noResponseTimeoutMs: number;
  maxForwards: number;
  serverHeader: string;
  failoverCodes: ReadonlySet<number>;
  retryAfterSec: number;
}

const KNOWN_METHODS = new Set(['INVITE', 'ACK', 'BYE', 'CANCEL', 'OPTIONS', 'REGISTER', 'INFO', 'UPDATE', 'PRACK',
  'MESSAGE', 'NOTIFY', 'SUBSCRIBE', 'REFER', 'PUBLISH']);

/** The methods this gateway relays; sent in Allow. */
export const ALLOW = 'INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, PRACK, NOTIFY, REFER, MESSAGE';

/** One incoming request as the script sees it. */
export interface Inbound {
  readonly req: SipRequest;
  readonly facts: RequestFacts;
  /** Undefined for ACK (never answered). */
  readonly st: ServerTx | undefined;
  readonly iface: Iface;
}

/** One hop a request can be sent to. */
interface Hop {
  target: Target | undefined;
  dest: Destination;
  /** Rewrite the Request-URI to the target (initial requests to a dispatcher box). */
  ruri: string | undefined;
}

interface Branch {
  tx: ClientTx;
  hop: Hop;
  rr: string[];
  provisional: boolean;
  cancelSent: boolean;
  fr: NodeJS.Timeout | undefined;
  timerC: NodeJS.Timeout | undefined;
}

/** One stateful forwarding: a server transaction and its serial branches. */
interface Forwarding {
  st: ServerTx;
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
  cancelled: boolean;
  done: boolean;
  startedAt: number;
  lastFailure: { status: number; reason: string; target: Target | undefined } | undefined;
}

export class ProxyCore implements ProxyActions {
  readonly layer: TxLayer;
  private readonly forwardings = new Map<ServerTx, Forwarding>();
  /** Answered calls still in progress: release callbacks from authorize, by Call-ID. */
  private readonly releases = new Map<string, () => void>();
  private readonly probes = new Set<NodeJS.Timeout>();
  stopping = false;

  constructor(
    readonly net: ProxyNet,
    readonly ifaces: Iface[],
    readonly identity: Identity,
    readonly cfg: CoreConfig,
    readonly hooks: ProxyHooks,
    readonly log: Logger,
    readonly metrics: Metrics | undefined,
    /** The routing script: policy for every request that is not a retransmission, ACK of ours or matched CANCEL. */
    private readonly script: (inb: Inbound) => Promise<void>,
  ) {
    this.layer = new TxLayer(net, cfg, log);
  }

  ifaceFor(proto: TransportProto): Iface | undefined {
    return this.ifaces.find((i) => i.proto === proto);
  }

  // ------------------------------------------------------------------------------------------ receive path

  /** Entry point from the transport. Never throws. */
  receive(msg: SipMessage | null, err: SipParseError | null, source: { proto: TransportProto; address: string; port: number }): void {
    try {
      if (this.stopping) return;
      if (msg === null) {
        this.onParseError(err, source);
        return;
      }
      if (msg.isRequest()) this.onRequest(msg);
      else this.onResponse(msg as SipResponse);
    } catch (e) {
      this.log.error({ err: e instanceof Error ? e.message : String(e), stack: e instanceof Error ? e.stack : undefined }, 'receive path fault');
    }
  }

  private onParseError(err: SipParseError | null, source: { proto: TransportProto; address: string; port: number }): void {
    if (!err) return;
    const req = err.message;
    if (!req) {
      this.metrics?.sipDropped.inc({ reason: err.kind === 'too-large' ? 'oversize' : 'malformed' });
      this.log.debug({ source, reason: err.reason }, 'unanswerable message dropped');
      return;
    }
    this.log.info({ callId: req.getHeader('call-id'), source, status: err.status, reason: err.reason }, 'malformed request answered');
    this.replyStateless(req, err.status, err.reason);
  }

  private onRequest(req: SipRequest): void {
    this.metrics?.sipRequests.inc({ method: KNOWN_METHODS.has(req.method) ? req.method : 'other' });
    const src = req.source!;
    const iface = this.ifaces.find((i) => i.proto === src.proto && i.port === src.localPort) ?? this.ifaceFor(src.proto)!;
    const key = serverKey(req);
    if (key === null) return;
    const existing = this.layer.servers.get(key);

    if (req.method === 'ACK') {
      if (existing && existing.status >= 300) {
        existing.ack(); // ACK for our non-2xx: absorbed here, the hop after us got its own
        return;
      }
      this.runScript({ req, facts: factsOf(req), st: undefined, iface });
      return;
    }
    if (existing) {
      this.metrics?.sipRetransmissions.inc({ method: req.method });
      existing.retransmitted();
      return;
    }
    if (req.method === 'CANCEL') {
      const inviteKey = key.replace(/\|CANCEL$/, '|INVITE');
      const inv = this.layer.servers.get(inviteKey);
      if (inv) {
        const st = new ServerTx(this.layer, key, req, req.callId);
        this.send(st, createResponse(req, 200, { headers: this.serverHdr() }), 'local');
        this.cancelInvite(inv, req);
        this.hooks.onCallEvent && this.emit({ type: 'transaction', facts: factsOf(req), status: 200, reason: 'OK', at: Date.now() });
        return;
      }
    }
    const st = new ServerTx(this.layer, key, req, req.callId);
    this.runScript({ req, facts: factsOf(req), st, iface });
  }

  private runScript(inb: Inbound): void {
    this.script(inb).catch((e: unknown) => {
      this.log.error({ callId: inb.facts.callId, err: e instanceof Error ? e.message : String(e) }, 'routing script fault');
      if (inb.st && inb.st.status < 200) this.reply(inb, 500, 'Server Internal Error');
    });
  }

  private onResponse(res: SipResponse): void {
    const via = res.tryTopVia();
    if (!via || !via.branch) {
      this.metrics?.sipDropped.inc({ reason: 'malformed' });
      return;
    }
    // A CANCEL shares its INVITE's branch; its client transaction is keyed apart.
    const cseq = res.tryCSeq();
    const ct = this.layer.clients.get(cseq?.method === 'CANCEL' ? `${via.branch}|CANCEL` : via.branch);
    if (ct) {
      ct.receive(res);
      return;
    }
    // No transaction: a 2xx to INVITE retransmitted after our transaction ended is relayed by Via.
    if (cseq?.method === 'INVITE' && res.status >= 200 && res.status < 300 && this.viaIsOurs(via)) {
      this.relayStateless(res);
      return;
    }
    this.metrics?.sipDropped.inc({ reason: 'no-transaction' });
  }

  private viaIsOurs(via: Via): boolean {
    return this.identity.hosts.has(via.host.toLowerCase()) && this.identity.ports.has(via.port ?? 5060);
  }

  private relayStateless(res: SipResponse): void {
    res.popVia();
    const next = res.tryTopVia();
    if (!next) return;
    this.metrics?.sipResponses.inc({ code: String(res.status), origin: 'relayed' });
    this.layer.sendQuiet(res.toBuffer(), viaDestination(next), res.getHeader('call-id') ?? '');
  }

  // ------------------------------------------------------------------------------------------ script primitives

  serverHdr(extra?: HeaderList): Array<readonly [string, string]> {
    const h: Array<readonly [string, string]> = extra ? [...extra] : [];
    if (this.cfg.serverHeader) h.push(['Server', this.cfg.serverHeader]);
    return h;
  }

  /** Answers a request locally (statefully when it has a server transaction). */
  reply(inb: Inbound, status: number, reason?: string, headers?: HeaderList): void {
    if (!inb.st) return; // ACK: never answered
    const res = createResponse(inb.req, status, { reason: reason ?? REASONS[status], headers: this.serverHdr(headers) });
    if (status >= 200) this.log.info({ callId: inb.facts.callId, method: inb.req.method, status, reason: res.reason }, 'request answered locally');
    this.send(inb.st, res, 'local');
  }

  /** Says nothing (banned source, ACK nobody wants); the server transaction, if any, is forgotten. */
  drop(inb: Inbound, reason: string): void {
    this.metrics?.sipDropped.inc({ reason: reason.split(' ')[0]!.toLowerCase() });
    this.log.debug({ callId: inb.facts.callId, method: inb.req.method, reason }, 'request dropped');
    inb.st?.destroy();
  }

  private replyStateless(req: SipRequest, status: number, reason: string): void {
    const dest = responseDestination(req);
    if (!dest) return;
    const res = createResponse(req, status, { reason, headers: this.serverHdr() });
    this.metrics?.sipResponses.inc({ code: String(status), origin: 'local' });
    this.layer.sendQuiet(res.toBuffer(), dest, req.getHeader('call-id') ?? '');
  }

  private send(st: ServerTx, res: SipResponse, origin: 'local' | 'relayed'): void {
    if (st.status >= 200) return;
    this.metrics?.sipResponses.inc({ code: String(res.status), origin });
    st.respond(res);
  }

  /** Is this URI one of ours (Route, Request-URI)? */
  isMyself(uri: SipUri | null): boolean {
    return isOurs(uri, this.identity);
  }

  /** Adds received/rport to the top Via from the packet's source (RFC 3261 §18.2.1, RFC 3581). */
  private stampVia(req: SipRequest): void {
    const via = req.tryTopVia();
    const src = req.source;
    if (!via || !src) return;
    const needReceived = via.host !== src.address;
    const needRport = via.rport === null || (src.proto === 'tcp' && via.rport === undefined);
    if (!needReceived && !needRport) return;
    let params = '';
    for (const [k, v] of via.params) {
      if (k === 'received' || k === 'rport') continue;
      params += v === null ? `;${k}` : `;${k}=${v}`;
    }
    if (needReceived || via.received !== undefined) params += `;received=${src.address}`;
    if (needRport) params += `;rport=${src.port}`;
    else if (via.rport !== undefined) params += `;rport=${via.rport}`;
    req.replaceTopVia(formatVia(via.transport, via.host, via.port, params));
  }

  /** Prepares the copy of a request that all branches start from: Via stamped, Max-Forwards decremented. */
  private baseCopy(req: SipRequest): SipRequest {
    const base = req.clone();
    this.stampVia(base);
    const mf = base.maxForwards;
    if (mf !== undefined && mf > this.cfg.maxForwards) base.setMaxForwards(this.cfg.maxForwards - 1);
    else base.decrementMaxForwards(this.cfg.maxForwards);
    return base;
  }

  /** Relays an in-dialog request to the next hop found by loose routing (ACK statelessly, others statefully). */
  relayInDialog(inb: Inbound, nextHop: SipUri, outProto: TransportProto | undefined): void {
    const fallback = outProto ?? inb.iface.proto;
    const h = hopOfUri(nextHop, fallback);
    const hop: Hop = { target: undefined, dest: { proto: h.proto, address: h.address, port: h.port }, ruri: undefined };
    if (!inb.st) {
      // ACK for a 2xx: end to end, no transaction.
      const out = this.baseCopy(inb.req);
      const iface = this.ifaceFor(h.proto);
      if (!iface) return;
      out.pushVia(formatVia(iface.proto, iface.host, iface.port, `;branch=${newBranch()};rport`));
      this.layer.sendQuiet(out.toBuffer(), hop.dest, inb.facts.callId);
      return;
    }
    this.startForwarding(inb, [hop], { initial: false, auth: undefined, release: undefined });
  }

  /** Forwards an initial INVITE to the targets in order (serial forking with failover). */
  forward(inb: Inbound, targets: Target[], auth: Authenticated | undefined, release: (() => void) | undefined): void {
    if (!inb.st || inb.st.status >= 200) {
      // CANCELled (or answered) while the script was waiting on a hook.
      release?.();
      return;
    }
    const hops: Hop[] = targets.map((t) => ({
      target: t,
      dest: { proto: t.proto, address: t.host, port: t.port },
      ruri: rewriteRuri(inb.req.tryUri(), t),
    }));
    this.startForwarding(inb, hops, { initial: inb.req.method === 'INVITE', auth, release });
  }

  private startForwarding(inb: Inbound, hops: Hop[], o: { initial: boolean; auth: Authenticated | undefined; release: (() => void) | undefined }): void {
    const st = inb.st!;
    const f: Forwarding = {
      st, base: this.baseCopy(inb.req), inbound: inb, hops, next: 0, attempt: 0, branch: undefined,
      initial: o.initial, auth: o.auth, release: o.release, cancelled: false, done: false, startedAt: Date.now(),
      lastFailure: undefined,
    };
    this.forwardings.set(st, f);
    st.onEnd = () => this.forwardings.delete(st);
    if (f.initial) {
      this.emit({ type: 'start', facts: inb.facts, auth: f.auth, at: f.startedAt });
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
    const { facts } = f.inbound;
    const outIface = this.ifaceFor(hop.dest.proto);
    if (!outIface) {
      this.branchFailed(f, hop, { kind: 'transport', message: `no ${hop.dest.proto} listener` }, 503, 'No Listener');
      return;
    }
    const req = f.base.clone();
    if (hop.ruri !== undefined) req.setUri(hop.ruri);
    let rr: string[] = [];
    if (f.initial) {
      rr = recordRouteFor(f.inbound.iface, outIface, facts.fromTag);
      for (let i = rr.length - 1; i >= 0; i--) req.prependRecordRoute(rr[i]!);
    }
    const branchId = newBranch();
    req.pushVia(formatVia(outIface.proto, outIface.host, outIface.port, `;branch=${branchId};rport`));
    const b: Branch = { tx: undefined as unknown as ClientTx, hop, rr, provisional: false, cancelSent: false, fr: undefined, timerC: undefined };
    b.tx = new ClientTx(this.layer, branchId, req, hop.dest, facts.callId, {
      onResponse: (res) => this.onBranchResponse(f, b, res),
      onTimeout: () => this.onBranchTimeout(f, b),
      onTransportError: (message) => {
        if (f.branch !== b || f.done) return;
        this.clearBranchTimers(b);
        this.branchFailed(f, hop, { kind: 'transport', message }, 503, 'Transport Error');
      },
      onRetransmittedFinal: (res) => this.relayStateless(res),
    });
    f.branch = b;
    this.log.debug({ callId: facts.callId, method: req.method, dest: hop.dest, attempt: f.attempt }, 'forwarding');
    if (req.method === 'INVITE') {
      // fr_timer: no response at all from this hop → fail over.
      b.fr = setTimeout(() => {
        if (f.branch !== b || f.done || b.provisional) return;
        b.tx.destroy();
        this.branchFailed(f, hop, { kind: 'timeout' }, 408, 'Request Timeout');
      }, this.cfg.noResponseTimeoutMs);
    }
    b.tx.start();
  }

  private clearBranchTimers(b: Branch): void {
    if (b.fr) clearTimeout(b.fr);
    if (b.timerC) clearTimeout(b.timerC);
    b.fr = undefined;
    b.timerC = undefined;
  }

  private onBranchResponse(f: Forwarding, b: Branch, res: SipResponse): void {
    if (f.branch !== b) return;
    const { facts } = f.inbound;
    if (res.status < 200) {
      if (b.fr) { clearTimeout(b.fr); b.fr = undefined; }
      b.provisional = true;
      if (b.tx.isInvite) {
        // Timer C (fr_inv_timer): restarted by every provisional.
        if (b.timerC) clearTimeout(b.timerC);
        b.timerC = setTimeout(() => this.onTimerC(f, b), this.cfg.inviteTimeoutMs);
      }
      if (f.cancelled && !b.cancelSent) this.cancelBranch(b);
      if (res.status === 100 || f.done) return; // 100 is hop by hop
      res.popVia();
      this.send(f.st, res, 'relayed');
      return;
    }
    this.clearBranchTimers(b);
    if (res.status < 300) {
      res.popVia();
      if (f.done) {
        // A 2xx after we already answered upstream (CANCEL race, Timer C): 2xx always go through (RFC 3261 §16.7).
        this.relayStatelessPopped(res);
        return;
      }
      this.send(f.st, res, 'relayed');
      f.done = true;
      if (f.initial) this.answered(f, b, res);
      else this.inDialogOutcome(f, res.status);
      return;
    }
    if (f.done) return; // already answered (Timer C 408 or CANCEL 487); the branch's final was ACKed by the tx layer
    if (f.initial && !f.cancelled && this.cfg.failoverCodes.has(res.status)) {
      this.branchFailed(f, b.hop, { kind: 'status', status: res.status }, res.status, res.reason);
      return;
    }
    res.popVia();
    this.send(f.st, res, 'relayed');
    f.done = true;
    if (f.initial) this.failed(f, b.hop.target, res.status, res.reason, f.cancelled);
    else this.inDialogOutcome(f, res.status);
  }

  private relayStatelessPopped(res: SipResponse): void {
    const next = res.tryTopVia();
    if (!next) return;
    this.metrics?.sipResponses.inc({ code: String(res.status), origin: 'relayed' });
    this.layer.sendQuiet(res.toBuffer(), viaDestination(next), res.getHeader('call-id') ?? '');
  }

  private onBranchTimeout(f: Forwarding, b: Branch): void {
    if (f.branch !== b || f.done) return;
    this.clearBranchTimers(b);
    this.branchFailed(f, b.hop, { kind: 'timeout' }, 408, 'Request Timeout');
  }

  /** Timer C: the callee rang too long. Cancel the branch and answer 408; no failover (someone was alerted). */
  private onTimerC(f: Forwarding, b: Branch): void {
    if (f.branch !== b || f.done) return;
    b.timerC = undefined;
    this.log.info({ callId: f.inbound.facts.callId, dest: b.hop.dest }, 'INVITE timeout (Timer C): cancelling branch');
    if (!b.cancelSent) this.cancelBranch(b);
    if (f.cancelled) {
      this.finish(f, 487, 'Request Terminated', undefined, true);
      return;
    }
    if (b.hop.target) this.hooks.targetFailed?.(b.hop.target, { kind: 'timeout' });
    this.finish(f, 408, 'Request Timeout', undefined, false);
  }

  /** One attempt failed: report, then try the next hop (initial requests) or answer. */
  private branchFailed(f: Forwarding, hop: Hop, failure: TargetFailure, status: number, reason: string): void {
    const { facts } = f.inbound;
    f.lastFailure = { status, reason, target: hop.target };
    this.log.info({ callId: facts.callId, dest: hop.dest, failure, attempt: f.attempt }, 'branch failed');
    if (hop.target) {
      try { this.hooks.targetFailed?.(hop.target, failure); } catch (e) { this.log.error({ err: String(e) }, 'targetFailed hook threw'); }
    }
    if (!f.initial) {
      this.finish(f, failure.kind === 'transport' ? 503 : status, failure.kind === 'transport' ? 'Service Unavailable' : reason, undefined, false);
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
    if (f.branch) this.clearBranchTimers(f.branch);
    this.reply(f.inbound, status, reason, headers);
    if (f.initial) this.failed(f, f.branch?.hop.target ?? f.lastFailure?.target, status, reason, cancelled);
    else this.inDialogOutcome(f, status);
  }

  private failed(f: Forwarding, target: Target | undefined, status: number, reason: string, cancelled: boolean): void {
    this.emit({ type: 'failed', facts: f.inbound.facts, auth: f.auth, target, status, reason, at: Date.now(), cancelled });
    this.metrics?.calls.inc({ event: cancelled ? 'cancelled' : 'failed' });
    this.metrics?.callsActive.dec();
    try { f.release?.(); } catch (e) { this.log.error({ err: String(e) }, 'release threw'); }
  }

  private answered(f: Forwarding, b: Branch, res: SipResponse): void {
    const now = Date.now();
    const req = f.inbound.req;
    const { facts } = f.inbound;
    const target = b.hop.target!;
    const dialog = this.dialogSnapshot(req, res, b, f.startedAt, now);
    dialog.accountcode = f.auth?.accountcode ?? '';
    this.log.info({ callId: facts.callId, status: res.status, target: target.id, setupMs: now - f.startedAt }, 'call answered');
    this.emit({ type: 'answered', facts, auth: f.auth, target, status: res.status, reason: res.reason, at: now, dialog });
    this.metrics?.calls.inc({ event: 'answered' });
    this.metrics?.callSetupSeconds.observe((now - f.startedAt) / 1000);
    if (f.release) this.releases.set(facts.callId, f.release);
  }

  private inDialogOutcome(f: Forwarding, status: number): void {
    const { req, facts } = f.inbound;
    if (req.method === 'BYE' && status >= 200) this.endCall(facts.callId);
  }

  private endCall(callId: string): void {
    const release = this.releases.get(callId);
    if (release) {
      this.releases.delete(callId);
      this.metrics?.callsActive.dec();
      try { release(); } catch (e) { this.log.error({ err: String(e) }, 'release threw'); }
    }
  }

  /** Builds the JSON-serialisable dialog snapshot from the INVITE as received and the 2xx as received. */
  private dialogSnapshot(req: SipRequest, res: SipResponse, b: Branch, createdAt: number, answeredAt: number): DialogInfo {
    const src = req.source!;
    const callerContactNa = req.contacts?.[0];
    const calleeContactNa = res.contacts?.[0];
    const callerContact = callerContactNa?.uriRaw ?? '';
    const calleeContact = calleeContactNa?.uriRaw ?? '';
    // Route sets: the INVITE's Record-Route entries (upstream proxies) lead to the caller; entries the 2xx
    // has above ours (downstream proxies) lead to the callee, in reverse order.
    const callerRouteSet = req.headerValues('record-route');
    const resRR = res.headerValues('record-route');
    const ourFirst = resRR.findIndex((v) => b.rr.includes(v));
    const calleeRouteSet = (ourFirst > 0 ? resRR.slice(0, ourFirst) : []).reverse();
    const hopOf = (routeSet: string[], contact: SipUri | null | undefined, fallback: Source): Source => {
      const first = routeSet[0];
      const uri = first !== undefined ? parseRouteUri(first) : contact ?? null;
      if (!uri) return fallback;
      const h = hopOfUri(uri, fallback.proto);
      return { ip: h.address, port: h.port, proto: h.proto };
    };
    const srcHop: Source = { ip: src.address, port: src.port, proto: src.proto };
    const callerHop = callerRouteSet.length > 0 || src.proto === 'tcp' ? hopOf(callerRouteSet, callerContactNa?.uri, srcHop) : srcHop;
    const targetHop: Source = { ip: b.hop.dest.address, port: b.hop.dest.port, proto: b.hop.dest.proto };
    const calleeHop = hopOf(calleeRouteSet, calleeContactNa?.uri, targetHop);
    return {
      callId: req.callId,
      callerTag: req.tryFrom()?.tag ?? '',
      calleeTag: res.tryTo()?.tag ?? '',
      fromHeader: req.getHeader('from') ?? '',
      toHeader: res.getHeader('to') ?? '',
      callerContact,
      calleeContact,
      callerRouteSet,
      calleeRouteSet,
      callerHop,
      calleeHop,
      callerCseq: req.tryCSeq()?.seq ?? 1,
      calleeCseq: 0,
      recordRoute: b.rr,
      accountcode: '',
      targetId: b.hop.target?.id ?? '',
      createdAt,
      answeredAt,
    };
  }

  /** In-dialog bookkeeping for stages (and the end of a call on BYE). */
  noteInDialog(inb: Inbound, ftag: string | undefined): void {
    const { facts } = inb;
    const toTag = inb.req.tryTo()?.tag ?? '';
    const fromCaller = ftag === undefined ? true : facts.fromTag === ftag;
    const at = Date.now();
    this.emit({ type: 'in-dialog', callId: facts.callId, fromTag: facts.fromTag, toTag, method: facts.method, cseq: facts.cseq, fromCaller, at });
    if (facts.method === 'BYE') {
      this.emit({ type: 'ended', callId: facts.callId, fromTag: facts.fromTag, toTag, reason: fromCaller ? 'bye-caller' : 'bye-callee', at });
    }
  }

  // ------------------------------------------------------------------------------------------ CANCEL

  private cancelInvite(inv: ServerTx, cancel: SipRequest): void {
    const f = this.forwardings.get(inv);
    this.log.info({ callId: cancel.callId }, 'CANCEL received');
    if (!f) {
      // Still in the script (waiting on auth or routing) or not forwarded: answer 487 now.
      if (inv.status < 200) {
        this.metrics?.sipResponses.inc({ code: '487', origin: 'local' });
        inv.respond(createResponse(inv.req, 487, { headers: this.serverHdr() }));
      }
      return;
    }
    if (f.done || f.cancelled) return;
    f.cancelled = true;
    const b = f.branch;
    if (!b || !b.tx.alive) {
      this.finish(f, 487, 'Request Terminated', undefined, true);
      return;
    }
    if (b.provisional) {
      // The 487 from downstream will be relayed; Timer C still guards a hop that never answers it.
      this.cancelBranch(b);
      return;
    }
    // No provisional yet: a CANCEL may not be sent (RFC 3261 §9.1); it goes out when one arrives.
    if (b.fr) { clearTimeout(b.fr); b.fr = undefined; }
    this.finish(f, 487, 'Request Terminated', undefined, true);
  }

  private cancelBranch(b: Branch): void {
    if (b.cancelSent || !b.provisional) return;
    b.cancelSent = true;
    const cancel = b.tx.buildCancel();
    const ct = new ClientTx(this.layer, `${b.tx.branch}|CANCEL`, cancel, b.hop.dest, b.tx.callId, {
      onResponse: () => undefined,
      onTimeout: () => undefined,
      onTransportError: () => undefined,
    });
    ct.start();
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
    const toCallee = this.originate({
      method: 'BYE', uri: d.calleeContact, from: d.fromHeader, to: d.toHeader, callId: d.callId,
      cseq: d.callerCseq + 1, route: d.calleeRouteSet, hop: d.calleeHop, headers: [['Reason', `SIP;cause=200;text="${reason}"`]],
    }, 64 * this.cfg.t1Ms);
    const toCaller = this.originate({
      method: 'BYE', uri: d.callerContact, from: d.toHeader, to: d.fromHeader, callId: d.callId,
      cseq: d.calleeCseq + 1, route: d.callerRouteSet, hop: d.callerHop, headers: [['Reason', `SIP;cause=200;text="${reason}"`]],
    }, 64 * this.cfg.t1Ms);
    this.emit({ type: 'ended', callId: d.callId, fromTag: d.callerTag, toTag: d.calleeTag, reason, at: Date.now() });
    await Promise.all([toCallee, toCaller]);
    this.endCall(d.callId);
  }

  /** OPTIONS to a target; the status, or 0 on timeout or transport error. */
  probe(target: Target, timeoutMs: number): Promise<number> {
    const iface = this.ifaceFor(target.proto);
    const host = iface?.host ?? 'localhost';
    return this.originate({
      method: 'OPTIONS', uri: target.uri, from: `<sip:a2b-gateway@${host}>;tag=${newTag()}`, to: `<${target.uri}>`,
      callId: newCallId(host), cseq: 1, route: [], hop: { ip: target.host, port: target.port, proto: target.proto }, headers: [],
    }, timeoutMs);
  }

  private originate(o: { method: string; uri: string; from: string; to: string; callId: string; cseq: number; route: string[]; hop: Source; headers: HeaderList }, timeoutMs: number): Promise<number> {
    return new Promise<number>((resolve) => {
      const iface = this.ifaceFor(o.hop.proto);
      if (!iface || this.stopping || !o.uri) {
        resolve(0);
        return;
      }
      const branch = newBranch();
      const req = createRequest({
        method: o.method, uri: o.uri, via: [formatVia(iface.proto, iface.host, iface.port, `;branch=${branch};rport`)],
        from: o.from, to: o.to, callId: o.callId, cseq: o.cseq, route: o.route, maxForwards: this.cfg.maxForwards,
        headers: [...o.headers, ...(this.cfg.serverHeader ? [['User-Agent', this.cfg.serverHeader] as const] : [])],
      });
      let settled = false;
      const done = (status: number): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.probes.delete(timer);
        ct.destroy();
        resolve(status);
      };
      const timer = setTimeout(() => done(0), timeoutMs);
      this.probes.add(timer);
      const ct = new ClientTx(this.layer, branch, req, { proto: o.hop.proto, address: o.hop.ip, port: o.hop.port }, o.callId, {
        onResponse: (res) => { if (res.status >= 200) done(res.status); },
        onTimeout: () => done(0),
        onTransportError: () => done(0),
      });
      ct.start();
    });
  }

  // ------------------------------------------------------------------------------------------ shutdown

  /** Answers every call still being set up (503) and drops all transaction state and timers. */
  shutdown(): void {
    this.stopping = true;
    for (const f of this.forwardings.values()) {
      if (f.done) continue;
      if (f.branch) {
        this.clearBranchTimers(f.branch);
        if (f.branch.provisional && !f.branch.cancelSent) this.cancelBranch(f.branch);
      }
      this.finish(f, 503, 'Service Unavailable', [['Retry-After', String(this.cfg.retryAfterSec)]], false);
    }
    this.forwardings.clear();
    for (const t of this.probes) clearTimeout(t);
    this.probes.clear();
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

function parseRouteUri(v: string): SipUri | null {
  const lt = v.indexOf('<');
  const gt = v.indexOf('>', lt + 1);
  const raw = lt >= 0 && gt > lt ? v.slice(lt + 1, gt) : v.split(';')[0]!.trim();
  return parseUri(raw);
}
