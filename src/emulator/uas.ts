// The SIP side of an emulated Asterisk box: a user agent server on the project's SIP stack (src/sip) that answers
// calls from the gateway the way the dialplan (dialplan/extensions-pjsip.conf) does: no valid P-Accountcode → 403
// (Hangup(21)), else ring, answer (or busy / no answer / fail), hang up with BYE after the talk time or take the
// caller's BYE. It reports each finished call to its owner, which posts the Cdr and writes cc_call.
import {
  createRequest, createResponse, newTag, parseUri, SipTransport, TransactionLayer,
  type ListenSpec, type ServerTransaction, type SipRequest, type TransportProto,
} from '../sip/index.js';
import { createServer, type AddressInfo } from 'node:net';
import { ACCOUNTCODE_HEADER, CALLREF_HEADER } from '../callref.js';
import type { Logger } from '../log.js';

export type UasBehaviour =
  /** 180, then 200 after ringMs; BYE after talkMs (null: wait for the caller's BYE). failedAttempts: trunk attempts
   *  that fail (busy / chanunavail) before the one that answers, inside the same call (A2Billing retries). */
  | { kind: 'answer'; ringMs?: number; talkMs?: number | null; failedAttempts?: Array<'busy' | 'chanunavail'> }
  /** 180, then 486 Busy Here after ringMs. */
  | { kind: 'busy'; ringMs?: number }
  /** 180, then 480 after ringMs (the trunk never answered). */
  | { kind: 'noanswer'; ringMs?: number }
  /** A failure status (default 480) after ringMs: the destination is unavailable. */
  | { kind: 'fail'; status?: number; ringMs?: number }
  /** 503 at once, before the dialplan runs: the box is overloaded (the gateway should fail over). */
  | { kind: 'overloaded' };

export type CallOutcome = 'answered' | 'busy' | 'noanswer' | 'failed' | 'cancelled' | 'refused' | 'overloaded';

export interface UasCall {
  /** 1-based call number on this box (the channel counter). */
  n: number;
  callId: string;
  accountCode: string;
  callref: string | null;
  fromUser: string;
  toUser: string;
  outcome: CallOutcome;
  status: number;
  startedAt: number;
  answeredAt: number | null;
  endedAt: number;
  endedBy: 'callee' | 'caller' | null;
  failedAttempts: Array<'busy' | 'chanunavail'>;
}

export interface UasOptions {
  host?: string;
  port?: number;
  protos?: TransportProto[];
  log: Logger;
  behaviour: (call: { toUser: string; accountCode: string; callId: string }) => UasBehaviour;
  onCallEnd: (call: UasCall) => void;
  t1Ms?: number;
}

/** A port free for TCP on host right now (UDP is checked by the bind that follows). */
function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const port = (srv.address() as AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/** The dialplan's REGEX for a valid account code (test/unit/dialplan.test.ts keeps the two equal). */
export const ACCOUNTCODE_RE = /^[0-9A-Za-z_.-]{1,20}$/;

interface Live {
  call: UasCall;
  st: ServerTransaction;
  req: SipRequest;
  toTag: string;
  timers: NodeJS.Timeout[];
  retrans: NodeJS.Timeout | undefined;
  acked: boolean;
  done: boolean;
}

function userOf(uriOrNameAddr: string): string {
  const m = /sips?:([^@;>]+)@/i.exec(uriOrNameAddr);
  return m ? m[1]! : '';
}

export class EmulatedUas {
  private transport!: SipTransport;
  private layer!: TransactionLayer;
  private readonly live = new Map<string, Live>();
  private n = 0;
  private readonly t1: number;

  constructor(private readonly o: UasOptions) {
    this.t1 = o.t1Ms ?? 500;
  }

  private build(port: number): void {
    const host = this.o.host ?? '127.0.0.1';
    const listen: ListenSpec[] = (this.o.protos ?? ['udp', 'tcp']).map((proto) => ({ proto, host, port }));
    this.transport = new SipTransport({ listen, maxMessageSize: 65535, tcpIdleTimeoutMs: 60_000, logger: this.o.log });
    this.layer = new TransactionLayer({
      transport: this.transport, logger: this.o.log,
      timers: { t1Ms: this.t1, t2Ms: 4000, t4Ms: 5000, inviteTimeoutMs: 180_000, noResponseTimeoutMs: 4000 },
    }, { onRequest: (req, st) => this.onRequest(req, st) });
  }

  /**
   * Binds every transport on ONE port, like Asterisk's 5060 (so a dispatcher URI differs only by ;transport).
   * With port 0, a free port is probed first and the bind retried if another process takes it meanwhile.
   */
  async start(): Promise<Array<{ proto: TransportProto; host: string; port: number }>> {
    const host = this.o.host ?? '127.0.0.1';
    for (let attempt = 0; ; attempt++) {
      const port = this.o.port ? this.o.port : await freePort(host);
      this.build(port);
      try {
        return await this.transport.start();
      } catch (e) {
        this.layer.close();
        if (this.o.port || attempt >= 9) throw e;
      }
    }
  }

  listeners(): Array<{ proto: TransportProto; host: string; port: number }> {
    return this.transport.listeners();
  }

  get activeCalls(): number {
    return this.live.size;
  }

  async stop(): Promise<void> {
    if (!this.transport) return;
    for (const l of this.live.values()) this.clear(l);
    this.live.clear();
    this.layer.close();
    await this.transport.close();
  }

  private clear(l: Live): void {
    for (const t of l.timers) clearTimeout(t);
    l.timers = [];
    clearTimeout(l.retrans);
  }

  private onRequest(req: SipRequest, st: ServerTransaction | null): void {
    const method = req.method;
    if (method === 'ACK') {
      const l = this.live.get(req.callId);
      if (l) { l.acked = true; clearTimeout(l.retrans); }
      return;
    }
    if (!st) return;
    if (method === 'INVITE') {
      if (req.to.tag) { st.respond(createResponse(req, 481)); return; } // no re-INVITE support: not needed
      this.onInvite(req, st);
    } else if (method === 'CANCEL') {
      st.respond(createResponse(req, 200));
      const inv = this.layer.matchInvite(req);
      const l = this.live.get(req.callId);
      if (inv && l && !l.done && l.call.answeredAt === null) {
        inv.respond(createResponse(l.req, 487, { toTag: l.toTag }));
        this.finish(l, 'cancelled', 487, 'caller');
      }
    } else if (method === 'BYE') {
      const l = this.live.get(req.callId);
      if (!l || l.done) { st.respond(createResponse(req, 481)); return; }
      st.respond(createResponse(req, 200));
      this.finish(l, 'answered', 200, 'caller');
    } else if (method === 'OPTIONS') {
      st.respond(createResponse(req, 200, { headers: [['Allow', 'INVITE, ACK, CANCEL, BYE, OPTIONS']] }));
    } else {
      st.respond(createResponse(req, 405, { headers: [['Allow', 'INVITE, ACK, CANCEL, BYE, OPTIONS']] }));
    }
  }

  private onInvite(req: SipRequest, st: ServerTransaction): void {
    const now = Date.now();
    const accountCode = req.getHeader(ACCOUNTCODE_HEADER)?.trim() ?? '';
    const callref = req.getHeader(CALLREF_HEADER)?.trim() ?? null;
    const toUser = req.uri.user ?? userOf(req.uriRaw);
    const call: UasCall = {
      n: 0, callId: req.callId, accountCode, callref, fromUser: req.from.uri?.user ?? '', toUser, outcome: 'refused', status: 0,
      startedAt: now, answeredAt: null, endedAt: now, endedBy: null, failedAttempts: [],
    };
    const b = this.o.behaviour({ toUser, accountCode, callId: req.callId });
    if (b.kind === 'overloaded') {
      st.respond(createResponse(req, 503, { reason: 'Service Unavailable' }));
      this.o.onCallEnd({ ...call, outcome: 'overloaded', status: 503 });
      return;
    }
    call.n = ++this.n; // a channel exists from here on (the dialplan runs)
    const toTag = newTag();
    const l: Live = { call, st, req, toTag, timers: [], retrans: undefined, acked: false, done: false };
    if (!ACCOUNTCODE_RE.test(accountCode)) {
      // extensions-pjsip.conf: no-accountcode → Hangup(21) → 403 Forbidden.
      st.respond(createResponse(req, 403, { toTag, reason: 'Forbidden' }));
      this.finish(l, 'refused', 403, 'callee');
      return;
    }
    this.live.set(req.callId, l);
    st.respond(createResponse(req, 180, { toTag }));
    const ringMs = b.ringMs ?? 0;
    l.timers.push(setTimeout(() => {
      if (l.done) return;
      switch (b.kind) {
        case 'answer': {
          call.failedAttempts = b.failedAttempts ?? [];
          this.answer(l, b.talkMs === undefined ? 1000 : b.talkMs);
          return;
        }
        case 'busy':
          st.respond(createResponse(req, 486, { toTag }));
          this.finish(l, 'busy', 486, 'callee');
          return;
        case 'noanswer':
          st.respond(createResponse(req, 480, { toTag, reason: 'Temporarily Unavailable' }));
          this.finish(l, 'noanswer', 480, 'callee');
          return;
        case 'fail': {
          const status = b.status ?? 480;
          st.respond(createResponse(req, status, { toTag }));
          this.finish(l, 'failed', status, 'callee');
        }
      }
    }, ringMs));
  }

  private answer(l: Live, talkMs: number | null): void {
    const src = l.req.source!;
    const local = this.transport.localAddress(src.proto) ?? { host: '127.0.0.1', port: 5060 };
    const contact = `<sip:asterisk@${local.host}:${local.port};transport=${src.proto}>`;
    const sdp = `v=0\r\no=asterisk 1 1 IN IP4 ${local.host}\r\ns=Asterisk\r\nc=IN IP4 ${local.host}\r\nt=0 0\r\nm=audio 10000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n`;
    const headers: Array<[string, string]> = [['Contact', contact]];
    for (const rr of l.req.header('record-route')) headers.push(['Record-Route', rr]);
    const ok = createResponse(l.req, 200, { toTag: l.toTag, headers, body: sdp, contentType: 'application/sdp' });
    l.call.answeredAt = Date.now();
    l.st.respond(ok);
    if (src.proto === 'udp') {
      // RFC 3261 13.3.1.4: the UAS core retransmits the 2xx until the ACK arrives (T1 doubling to T2, 64*T1 total).
      let wait = this.t1;
      let spent = 0;
      const again = (): void => {
        if (l.acked || l.done) return;
        spent += wait;
        if (spent > 64 * this.t1) return;
        l.st.respond(ok);
        wait = Math.min(wait * 2, 4000);
        l.retrans = setTimeout(again, wait);
      };
      l.retrans = setTimeout(again, wait);
    }
    if (talkMs !== null) l.timers.push(setTimeout(() => this.sendBye(l), talkMs));
  }

  private sendBye(l: Live): void {
    if (l.done) return;
    const req = l.req;
    // As UAS: remote target = the INVITE's Contact, route set = its Record-Route in order; From/To swapped.
    const contacts = req.contacts ?? [];
    const target = contacts[0]?.uriRaw ?? req.from.uriRaw;
    const routes = (req.recordRoutes ?? []).map((r) => r.raw);
    const fromHdr = `${req.getHeader('to')};tag=${l.toTag}`;
    const bye = createRequest({
      method: 'BYE', uri: target, from: fromHdr, to: req.getHeader('from')!, callId: req.callId, cseq: 1,
      route: routes.length > 0 ? routes : undefined,
    });
    const hop = routes.length > 0 ? (req.recordRoutes ?? [])[0]!.uriRaw : target;
    const uri = parseUri(hop);
    this.finish(l, 'answered', 200, 'callee');
    if (!uri) return;
    this.transport.resolve(uri).then((dest) => {
      this.layer.sendRequest(bye, dest, { onResponse: () => undefined, onTimeout: () => undefined, onTransportError: () => undefined });
    }, (e: unknown) => this.o.log.warn({ err: String(e), callId: req.callId }, 'emulator: cannot resolve BYE target'));
  }

  private finish(l: Live, outcome: CallOutcome, status: number, endedBy: 'callee' | 'caller'): void {
    if (l.done) return;
    l.done = true;
    this.clear(l);
    this.live.delete(l.call.callId);
    // The 2xx retransmission stops with the dialog; an unACKed 200 no longer matters once we hung up.
    this.o.onCallEnd({ ...l.call, outcome, status, endedAt: Date.now(), endedBy });
  }
}
