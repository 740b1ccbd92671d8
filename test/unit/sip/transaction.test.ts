// Transaction state machines under fake timers. The transport here is an in-memory recorder (a unit test of
// the state machine); test/unit/sip/stack.test.ts runs the same layer over real sockets.
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { silentLogger } from '../../../src/log.js';
import {
  createResponse, parseOrThrow, TransactionLayer,
  type ClientTransaction, type Destination, type MessageSource, type ReceiveHandler, type ServerTransaction,
  type SipMessage, type SipParseError, type SipRequest, type SipResponse, type TimeoutKind, type TransactionTimers, type TransportLike, type SendFailureSink,
} from '../../../src/sip/index.js';

const T1 = 500;
const T2 = 4000;
const T4 = 5000;
const TIMERS = { t1Ms: T1, t2Ms: T2, t4Ms: T4, inviteTimeoutMs: 180_000, noResponseTimeoutMs: 60_000 };

interface Sent { buf: Buffer; msg: SipMessage; dest: Destination | 'via'; at: number }

class MemoryTransport implements TransportLike {
  sent: Sent[] = [];
  failSends = false;
  handler: ReceiveHandler = () => undefined;
  setHandler(h: ReceiveHandler): void { this.handler = h; }
  localAddress(proto: 'udp' | 'tcp'): { host: string; port: number } { return { host: '192.0.2.1', port: proto === 'udp' ? 5060 : 5061 }; }
  send(data: Buffer | SipMessage, dest: Destination): Promise<void> {
    const buf = Buffer.isBuffer(data) ? data : data.toBuffer();
    if (this.failSends) return Promise.reject(new Error('connection refused'));
    this.sent.push({ buf, msg: parseOrThrow(buf), dest, at: Date.now() });
    return Promise.resolve();
  }
  post(data: Buffer, dest: Destination, owner: SendFailureSink): void { this.send(data, dest).catch((e: Error) => owner.sendFailed(e)); }
  responseDestination(res: SipResponse): Destination {
    const v = res.tryTopVia();
    if (v === null) throw new Error('no Via');
    // As the UDP transport does: the sent-by host (a slice of the response's Via value).
    return { proto: 'udp', address: v.received ?? v.host, port: v.port ?? 5060 };
  }
  take(): Sent[] { const s = this.sent; this.sent = []; return s; }
  statuses(): Array<number | string> {
    return this.take().map((s) => (s.msg.isRequest() ? s.msg.method : (s.msg as SipResponse).status));
  }
}

/** The request each client transaction was given (the transaction releases it once a final response arrives). */
const sentReq = new WeakMap<ClientTransaction, SipRequest>();
function reqOf(ct: ClientTransaction): SipRequest { return sentReq.get(ct)!; }

class Recorder {
  requests: Array<{ req: SipRequest; st: ServerTransaction | null }> = [];
  stray: SipResponse[] = [];
  parseErrors: SipParseError[] = [];
  onRequest(req: SipRequest, st: ServerTransaction | null): void { this.requests.push({ req, st }); }
  onStrayResponse(res: SipResponse): void { this.stray.push(res); }
  onParseError(err: SipParseError): void { this.parseErrors.push(err); }
}

const UDP_SRC: MessageSource = { proto: 'udp', address: '198.51.100.7', port: 5060, localAddress: '192.0.2.1', localPort: 5060 };
const TCP_SRC: MessageSource = { ...UDP_SRC, proto: 'tcp', connectionId: 1 };

function request(method: string, opts: { branch?: string; cseq?: number; toTag?: string; cseqMethod?: string } = {}): string {
  const branch = opts.branch ?? 'z9hG4bKclient1';
  return [
    `${method} sip:bob@192.0.2.1 SIP/2.0`,
    `Via: SIP/2.0/UDP 198.51.100.7:5060${branch ? `;branch=${branch}` : ''}`,
    'Max-Forwards: 70',
    `To: <sip:bob@192.0.2.1>${opts.toTag ? `;tag=${opts.toTag}` : ''}`,
    'From: <sip:alice@198.51.100.7>;tag=a1',
    'Call-ID: call-1@198.51.100.7',
    `CSeq: ${opts.cseq ?? 1} ${opts.cseqMethod ?? method}`,
    'Content-Length: 0', '', '',
  ].join('\r\n');
}

let transport: MemoryTransport;
let tu: Recorder;
let layer: TransactionLayer;

function inject(text: string | Buffer, source: MessageSource = UDP_SRC): void {
  const m = parseOrThrow(text);
  m.source = source;
  transport.handler(m, source);
}

// Linger timers on time (slack 0): these tests pin the RFC's timer values; coalescing has its own tests below.
function makeLayer(opts: { autoTrying?: boolean | 'delayed'; timers?: Partial<TransactionTimers>; lingerSlackMs?: number } = {}): void {
  transport = new MemoryTransport();
  tu = new Recorder();
  layer = new TransactionLayer({ transport, timers: { ...TIMERS, ...opts.timers }, logger: silentLogger(), autoTrying: opts.autoTrying, lingerSlackMs: opts.lingerSlackMs ?? 0 }, tu);
}

beforeEach(() => { vi.useFakeTimers(); makeLayer(); });
afterEach(() => { layer.close(); vi.useRealTimers(); });

describe('what a lingering transaction keeps', () => {
  it('not the header block of its request (the key and destination are detached copies, not slices)', () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const pad = `X-Pad: ${'p'.repeat(3000)}`;
    // A 15-character source address: long enough that V8 would slice it from the Via rather than copy it.
    const src: MessageSource = { ...UDP_SRC, address: '198.151.100.107' };
    const n = 2000;
    gc();
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < n; i++) {
      const text = request('INVITE', { branch: `z9hG4bK-lingering-${i}-0123456789` })
        .replace('Via: SIP/2.0/UDP 198.51.100.7:5060', 'Via: SIP/2.0/UDP 198.151.100.107:5060')
        .replace('Content-Length: 0', `${pad}\r\nContent-Length: 0`);
      inject(text, src);
      const st = tu.requests.pop()!.st!;
      st.respond(createResponse(st.request, 200, { toTag: `t${i}` }));
      transport.sent = [];
    }
    expect(layer.size.server).toBe(n); // all still lingering (Timer L, 64*T1)
    gc();
    const perTransaction = (process.memoryUsage().heapUsed - before) / n;
    // The header block alone is over 3 KB; what stays is the transaction, its (fake) timer and the detached key.
    expect(perTransaction).toBeLessThan(2500);
  });

  it('no Node timer of its own when linger timers are coalesced (real timers, the default slack)', () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    vi.useRealTimers();
    const perTransaction = (slack: number): number => {
      layer.close();
      makeLayer({ lingerSlackMs: slack });
      const n = 3000;
      gc();
      const before = process.memoryUsage().heapUsed;
      for (let i = 0; i < n; i++) {
        inject(request('INVITE', { branch: `z9hG4bK-linger-${slack}-${i}` }));
        const st = tu.requests.pop()!.st!;
        st.respond(createResponse(st.request, 200, { toTag: `t${i}` }));
        transport.sent = [];
      }
      expect(layer.size.server).toBe(n);
      gc();
      const per = (process.memoryUsage().heapUsed - before) / n;
      layer.close();
      return per;
    };
    // A Node Timeout (with its argument array and timer-list bookkeeping) against a bucket slot of 8 bytes.
    // Up to three tries: a heap figure taken while other test files run in parallel is noisy now and then.
    let best = -Infinity;
    for (let k = 0; k < 3 && best <= 400; k++) best = Math.max(best, perTransaction(0) - perTransaction(10));
    expect(best).toBeGreaterThan(400); // measured: ~1330 against ~630 bytes
  });
});

describe('INVITE server transaction', () => {
  it('sends 100 Trying at once, absorbs retransmissions and re-sends the last provisional', () => {
    inject(request('INVITE'));
    expect(tu.requests).toHaveLength(1);
    const st = tu.requests[0]!.st!;
    expect(st.state).toBe('proceeding');
    expect(transport.statuses()).toEqual([100]);
    st.respond(createResponse(st.request, 180, { toTag: 'b1' }));
    expect(transport.statuses()).toEqual([180]);
    inject(request('INVITE'));
    expect(tu.requests).toHaveLength(1);
    expect(transport.statuses()).toEqual([180]);
  });

  it("with autoTrying 'delayed' sends 100 only when the TU has not answered within 200 ms", () => {
    makeLayer({ autoTrying: 'delayed' });
    inject(request('INVITE'));
    const quick = tu.requests[0]!.st!;
    vi.advanceTimersByTime(150);
    quick.respond(createResponse(quick.request, 403, { toTag: 'x' }));
    vi.advanceTimersByTime(100);
    expect(transport.statuses()).toEqual([403]);
    inject(request('INVITE', { branch: 'z9hG4bKslow' }));
    vi.advanceTimersByTime(199);
    expect(transport.sent).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(transport.statuses()).toEqual([100]);
  });

  it('with autoTrying off sends nothing by itself and absorbs retransmissions silently', () => {
    makeLayer({ autoTrying: false });
    inject(request('INVITE'));
    inject(request('INVITE'));
    expect(tu.requests).toHaveLength(1);
    expect(transport.sent).toEqual([]);
  });

  it('retransmits a non-2xx final on Timer G (T1 doubling to T2) until the ACK, then absorbs ACKs until Timer I', () => {
    inject(request('INVITE'));
    const st = tu.requests[0]!.st!;
    transport.take();
    st.respond(createResponse(st.request, 486, { toTag: 'b1' }));
    expect(st.state).toBe('completed');
    const times: number[] = [];
    const t0 = Date.now();
    for (let i = 0; i < 5; i++) {
      vi.advanceTimersToNextTimer();
      times.push(Date.now() - t0);
    }
    // initial send + 5 retransmissions at T1, 3T1, 7T1, 7T1+T2, 7T1+2T2
    expect(times).toEqual([500, 1500, 3500, 7500, 11500]);
    expect(transport.statuses()).toEqual([486, 486, 486, 486, 486, 486]);
    inject(request('ACK', { toTag: 'b1', cseqMethod: 'ACK' }));
    expect(st.state).toBe('confirmed');
    expect(tu.requests).toHaveLength(1); // ACK absorbed
    inject(request('ACK', { toTag: 'b1', cseqMethod: 'ACK' }));
    expect(tu.requests).toHaveLength(1);
    vi.advanceTimersByTime(T4 - 1);
    expect(st.state).toBe('confirmed');
    vi.advanceTimersByTime(1);
    expect(st.state).toBe('terminated');
    expect(transport.sent).toEqual([]);
    expect(layer.size.server).toBe(0);
  });

  it('a stateless final (RFC 3261 §8.2.7): sent once, never retransmitted, the transaction forgotten at once', () => {
    makeLayer({ autoTrying: false }); // as the proxy runs it: the TU decides about 100 Trying
    inject(request('INVITE'));
    const st = tu.requests[0]!.st!;
    st.tryingAfter(100); // a pending delayed 100 is cancelled by the answer
    expect(st.respondStateless(createResponse(st.request, 407, { toTag: 'sl-1' }))).toBe(true);
    expect(st.state).toBe('terminated');
    expect(layer.size.server).toBe(0);
    vi.advanceTimersByTime(64 * T1);
    expect(transport.statuses()).toEqual([407]); // no 100, no Timer G: one datagram per request
    // The retransmitted INVITE is a new request (and gets its own answer from the TU); the ACK reaches the TU.
    inject(request('INVITE'));
    expect(tu.requests).toHaveLength(2);
    inject(request('ACK', { toTag: 'sl-1', cseqMethod: 'ACK' }));
    expect(tu.requests).toHaveLength(3);
    expect(tu.requests[2]!.st).toBeNull();
    // Only for a transaction that has not answered yet, and only finals.
    const st2 = tu.requests[1]!.st!;
    expect(st2.respondStateless(createResponse(st2.request, 180))).toBe(false);
    const late = createResponse(st2.request, 407, { toTag: 'sl-2' });
    st2.respond(createResponse(st2.request, 486, { toTag: 'b2' }));
    expect(st2.respondStateless(late)).toBe(false);
  });

  it('a delayed 100 Trying goes out only when nothing was sent by then', () => {
    makeLayer({ autoTrying: false }); // as the proxy runs it: the TU decides about 100 Trying
    inject(request('INVITE'));
    const st = tu.requests[0]!.st!;
    st.tryingAfter(100);
    vi.advanceTimersByTime(99);
    expect(transport.sent).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(transport.statuses()).toEqual([100]);
    inject(request('INVITE', { branch: 'z9hG4bKclient2', cseq: 2 }));
    const st2 = tu.requests[1]!.st!;
    st2.tryingAfter(100);
    st2.respond(createResponse(st2.request, 180, { toTag: 'b2' }));
    vi.advanceTimersByTime(200);
    expect(transport.statuses()).toEqual([180]);
  });

  it('re-sends the final response when the INVITE is retransmitted in Completed', () => {
    inject(request('INVITE'));
    const st = tu.requests[0]!.st!;
    st.respond(createResponse(st.request, 404, { toTag: 'b1' }));
    transport.take();
    inject(request('INVITE'));
    expect(transport.statuses()).toEqual([404]);
  });

  it('gives up on the ACK after Timer H (64*T1)', () => {
    inject(request('INVITE'));
    const st = tu.requests[0]!.st!;
    const ackTimeout = vi.fn();
    const terminated = vi.fn();
    st.onAckTimeout = ackTimeout;
    st.onTerminated = terminated;
    st.respond(createResponse(st.request, 503, { toTag: 'b1' }));
    vi.advanceTimersByTime(64 * T1 - 1);
    expect(ackTimeout).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(ackTimeout).toHaveBeenCalledOnce();
    expect(terminated).toHaveBeenCalledOnce();
    expect(st.state).toBe('terminated');
  });

  it('over TCP: no Timer G, and the ACK ends the transaction at once (Timer I = 0)', () => {
    inject(request('INVITE'), TCP_SRC);
    const st = tu.requests[0]!.st!;
    transport.take();
    st.respond(createResponse(st.request, 486, { toTag: 'b1' }));
    vi.advanceTimersByTime(10 * T1);
    expect(transport.statuses()).toEqual([486]);
    inject(request('ACK', { toTag: 'b1', cseqMethod: 'ACK' }), TCP_SRC);
    expect(st.state).toBe('terminated');
  });

  it('after a 2xx is Accepted: absorbs INVITE retransmissions, sends further 2xx, ends on Timer L; the 2xx ACK goes to the TU', () => {
    inject(request('INVITE'));
    const st = tu.requests[0]!.st!;
    transport.take();
    const req = st.request;
    st.respond(createResponse(req, 200, { toTag: 'b1' }));
    expect(st.state).toBe('accepted');
    expect(() => st.request).toThrow(/released/); // Timer L keeps the key, not the INVITE
    inject(request('INVITE'));
    expect(transport.statuses()).toEqual([200]);
    expect(st.respond(createResponse(req, 200, { toTag: 'b1' }))).toBe(true);
    expect(st.respond(createResponse(req, 486, { toTag: 'b1' }))).toBe(false);
    expect(transport.statuses()).toEqual([200]);
    inject(request('ACK', { branch: 'z9hG4bKack2xx', toTag: 'b1', cseqMethod: 'ACK' }));
    expect(tu.requests.map((r) => [r.req.method, r.st])).toEqual([['INVITE', st], ['ACK', null]]);
    vi.advanceTimersByTime(64 * T1);
    expect(st.state).toBe('terminated');
  });

  it('a CANCEL gets its own transaction and matches the INVITE transaction', () => {
    inject(request('INVITE'));
    const inv = tu.requests[0]!.st!;
    inject(request('CANCEL'));
    const { req, st } = tu.requests[1]!;
    expect(st).not.toBe(inv);
    expect(st!.method).toBe('CANCEL');
    expect(layer.matchInvite(req)).toBe(inv);
    inject(request('CANCEL', { branch: 'z9hG4bKother' }));
    expect(layer.matchInvite(tu.requests[2]!.req)).toBeUndefined();
  });

  it('matches RFC 2543 requests (no magic cookie) by Call-ID, CSeq, From tag, Request-URI and Via', () => {
    inject(request('INVITE', { branch: '' }));
    const st = tu.requests[0]!.st!;
    inject(request('INVITE', { branch: '' }));
    expect(tu.requests).toHaveLength(1);
    st.respond(createResponse(st.request, 486, { toTag: 'b1' }));
    inject(request('ACK', { branch: '', toTag: 'b1', cseqMethod: 'ACK' }));
    expect(st.state).toBe('confirmed');
    inject(request('INVITE', { branch: '', cseq: 2 }));
    expect(tu.requests).toHaveLength(2);
  });

  it('a send failure terminates the transaction and tells the TU', async () => {
    inject(request('INVITE'));
    const st = tu.requests[0]!.st!;
    const err = vi.fn();
    st.onTransportError = err;
    transport.failSends = true;
    st.respond(createResponse(st.request, 180, { toTag: 'b1' }));
    await vi.advanceTimersByTimeAsync(0);
    expect(err).toHaveBeenCalledOnce();
    expect(st.state).toBe('terminated');
  });
});

describe('non-INVITE server transaction', () => {
  it('Trying absorbs silently, Proceeding re-sends the provisional, Completed re-sends the final until Timer J', () => {
    inject(request('BYE'));
    const st = tu.requests[0]!.st!;
    expect(st.state).toBe('trying');
    expect(transport.sent).toEqual([]);
    inject(request('BYE'));
    expect(transport.sent).toEqual([]);
    st.respond(createResponse(st.request, 100));
    expect(st.state).toBe('proceeding');
    inject(request('BYE'));
    expect(transport.statuses()).toEqual([100, 100]);
    st.respond(createResponse(st.request, 200));
    expect(st.state).toBe('completed');
    inject(request('BYE'));
    expect(transport.statuses()).toEqual([200, 200]);
    expect(tu.requests).toHaveLength(1);
    vi.advanceTimersByTime(64 * T1 - 1);
    expect(st.state).toBe('completed');
    vi.advanceTimersByTime(1);
    expect(st.state).toBe('terminated');
    inject(request('BYE'));
    expect(tu.requests).toHaveLength(2); // a new transaction once the old one is gone
  });

  it('over TCP ends as soon as the final is sent (Timer J = 0)', () => {
    inject(request('OPTIONS'), TCP_SRC);
    const st = tu.requests[0]!.st!;
    st.respond(createResponse(st.request, 200));
    expect(st.state).toBe('terminated');
  });
});

describe('INVITE client transaction', () => {
  const dest: Destination = { proto: 'udp', address: '203.0.113.5', port: 5060 };

  function send(opts: { dest?: Destination; timerC?: boolean } = {}) {
    const events: Array<[string, unknown]> = [];
    const req = parseOrThrow(request('INVITE')) as SipRequest;
    const ct = layer.sendRequest(req, opts.dest ?? dest, {
      onResponse: (r) => events.push(['response', r.status]),
      onTimeout: (k: TimeoutKind) => events.push(['timeout', k]),
      onTransportError: (e) => events.push(['transport', e.message]),
      onTerminated: () => events.push(['terminated', null]),
    }, { timerC: opts.timerC });
    sentReq.set(ct, req);
    return { ct, events };
  }

  function reply(ct: ClientTransaction, status: number, toTag = 'b1'): void {
    const res = createResponse(reqOf(ct), status, { toTag });
    inject(res.toBuffer(), { ...UDP_SRC, address: '203.0.113.5' });
  }

  it('pushes its own Via with a fresh branch and rport, and retransmits on Timer A until Timer B', () => {
    const { ct, events } = send();
    const first = transport.take()[0]!;
    expect(first.dest).toEqual(dest);
    const vias = (first.msg as SipRequest).vias;
    expect(vias).toHaveLength(2);
    expect(vias[0]).toMatchObject({ transport: 'UDP', host: '192.0.2.1', port: 5060, rport: null, branch: ct.branch });
    expect(ct.branch).toMatch(/^z9hG4bK/);
    const t0 = Date.now();
    const at: number[] = [];
    while (ct.state === 'calling') { vi.advanceTimersToNextTimer(); at.push(Date.now() - t0); }
    // A at T1, 3T1, 7T1, 15T1, 31T1, 63T1; B at 64T1
    expect(at).toEqual([500, 1500, 3500, 7500, 15500, 31500, 32000]);
    expect(transport.statuses()).toEqual(['INVITE', 'INVITE', 'INVITE', 'INVITE', 'INVITE', 'INVITE']);
    expect(events).toEqual([['timeout', 'timer-b'], ['terminated', null]]);
  });

  it('reports no-response (failover) before Timer B when noResponseTimeoutMs is shorter', () => {
    makeLayer({ timers: { noResponseTimeoutMs: 4000 } });
    const { ct, events } = send();
    vi.advanceTimersByTime(3999);
    expect(events).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(events).toEqual([['timeout', 'no-response'], ['terminated', null]]);
    expect(ct.state).toBe('terminated');
  });

  it('a provisional stops Timer A and B; Timer C fires inviteTimeoutMs after the LAST provisional and CANCELs', () => {
    makeLayer({ timers: { inviteTimeoutMs: 40_000, noResponseTimeoutMs: 4000 } });
    const { ct, events } = send();
    transport.take();
    vi.advanceTimersByTime(1000);
    reply(ct, 180);
    expect(ct.state).toBe('proceeding');
    transport.take(); // the Timer A retransmission at T1, before the 180
    vi.advanceTimersByTime(64 * T1);
    expect(transport.statuses()).toEqual([]); // no retransmissions, no Timer B, no no-response
    vi.advanceTimersByTime(40_000 - 64 * T1 - 1);
    reply(ct, 183); // restarts Timer C
    vi.advanceTimersByTime(39_999);
    expect(events).toEqual([['response', 180], ['response', 183]]);
    vi.advanceTimersByTime(1);
    expect(events[2]).toEqual(['timeout', 'timer-c']);
    const cancel = transport.take().map((s) => s.msg as SipRequest);
    expect(cancel.map((m) => m.method)).toEqual(['CANCEL']);
    expect(cancel[0]!.topVia?.branch).toBe(ct.branch);
    expect(cancel[0]!.cseq).toEqual({ seq: 1, method: 'CANCEL' });
    expect(cancel[0]!.uriRaw).toBe(ct.request.uriRaw);
    // the INVITE ends with 487 (ACKed) or after 64*T1 without a final
    vi.advanceTimersByTime(64 * T1);
    expect(events.slice(3)).toEqual([['timeout', 'cancel-timeout'], ['terminated', null]]);
  });

  it('ACKs a non-2xx final hop by hop, absorbs its retransmissions (re-ACKing) and ends on Timer D', () => {
    const { ct, events } = send();
    transport.take();
    reply(ct, 486);
    const ack = transport.take().map((s) => s.msg as SipRequest);
    expect(ack).toHaveLength(1);
    expect(ack[0]).toMatchObject({ method: 'ACK', uriRaw: reqOf(ct).uriRaw });
    expect(() => ct.request).toThrow(/released/); // only the ACK bytes linger for Timer D
    expect(ack[0]!.topVia?.branch).toBe(ct.branch);
    expect(ack[0]!.vias).toHaveLength(1);
    expect(ack[0]!.to.tag).toBe('b1');
    expect(ack[0]!.cseq).toEqual({ seq: 1, method: 'ACK' });
    reply(ct, 486);
    expect(transport.statuses()).toEqual(['ACK']);
    expect(events).toEqual([['response', 486]]);
    expect(ct.state).toBe('completed');
    reply(ct, 200, 'other-fork'); // a 2xx is never swallowed
    expect(tu.stray.map((r) => r.status)).toEqual([200]);
    vi.advanceTimersByTime(32_000);
    expect(ct.state).toBe('terminated');
  });

  it('over TCP: no retransmissions, and Completed ends at once (Timer D = 0)', () => {
    const { ct } = send({ dest: { proto: 'tcp', address: '203.0.113.5', port: 5060 } });
    expect((transport.take()[0]!.msg as SipRequest).topVia).toMatchObject({ transport: 'TCP', port: 5061 });
    vi.advanceTimersByTime(10 * T1);
    expect(transport.sent).toEqual([]);
    reply(ct, 500);
    vi.advanceTimersByTime(0);
    expect(ct.state).toBe('terminated');
  });

  it('passes every 2xx up while Accepted (Timer M), then 2xx become stray', () => {
    const { ct, events } = send();
    reply(ct, 200);
    reply(ct, 200);
    expect(ct.state).toBe('accepted');
    expect(events).toEqual([['response', 200], ['response', 200]]);
    vi.advanceTimersByTime(64 * T1);
    expect(ct.state).toBe('terminated');
    reply(ct, 200);
    expect(tu.stray).toHaveLength(1);
  });

  it('lingerMs (Kamailio\'s wt_timer) shortens Timers D, J, L and M; Timers H and K keep their values', () => {
    makeLayer({ timers: { lingerMs: 3000 } }); // under T4 (5 s), so Timer K shows apart
    const accepted = send().ct;
    reply(accepted, 200);
    const completed = send().ct;
    reply(completed, 486);
    inject(request('BYE', { branch: 'z9hG4bKbye' }));
    const bye = tu.requests.at(-1)!.st!;
    bye.respond(createResponse(bye.request, 200));
    inject(request('INVITE', { branch: 'z9hG4bKinv200' }));
    const inv200 = tu.requests.at(-1)!.st!;
    inv200.respond(createResponse(inv200.request, 200, { toTag: 'b2' }));
    inject(request('INVITE', { branch: 'z9hG4bKinv486' }));
    const inv486 = tu.requests.at(-1)!.st!;
    inv486.respond(createResponse(inv486.request, 486, { toTag: 'b3' }));
    const options = layer.sendRequest(parseOrThrow(request('OPTIONS', { branch: '' })) as SipRequest, dest, {
      onResponse: () => undefined, onTimeout: () => undefined, onTransportError: () => undefined,
    });
    inject(createResponse(parseOrThrow(transport.sent.at(-1)!.buf) as SipRequest, 200).toBuffer(), { ...UDP_SRC, address: '203.0.113.5' });
    expect(options.state).toBe('completed');
    const all = [accepted, completed, bye, inv200, inv486, options];
    expect(all.map((t) => t.state)).toEqual(['accepted', 'completed', 'completed', 'accepted', 'completed', 'completed']);
    vi.advanceTimersByTime(2999);
    expect(all.map((t) => t.state)).toEqual(['accepted', 'completed', 'completed', 'accepted', 'completed', 'completed']);
    vi.advanceTimersByTime(1);
    // M, D, J, L at lingerMs; K at T4; H still waits 64*T1 for the ACK of the 486
    expect(all.map((t) => t.state)).toEqual(['terminated', 'terminated', 'terminated', 'terminated', 'completed', 'completed']);
    vi.advanceTimersByTime(T4 - 3000);
    expect(options.state).toBe('terminated');
    expect(inv486.state).toBe('completed');
    vi.advanceTimersByTime(64 * T1 - T4);
    expect(inv486.state).toBe('terminated');
  });

  it('a CANCEL before any provisional waits for one (RFC 3261 §9.1)', () => {
    const { ct, events } = send();
    transport.take();
    ct.cancel();
    expect(ct.cancelled).toBe(true);
    vi.advanceTimersByTime(T1 - 1);
    expect(transport.sent).toEqual([]);
    reply(ct, 180);
    expect(transport.statuses()).toEqual(['CANCEL']);
    reply(ct, 487);
    expect(transport.statuses()).toEqual(['ACK']);
    expect(events).toEqual([['response', 180], ['response', 487]]);
  });

  it('reports a transport failure and terminates', async () => {
    transport.failSends = true;
    const { ct, events } = send();
    await vi.advanceTimersByTimeAsync(0);
    expect(events).toEqual([['transport', 'connection refused'], ['terminated', null]]);
    expect(ct.state).toBe('terminated');
    expect(layer.size.client).toBe(0);
  });
});

describe('non-INVITE client transaction', () => {
  const dest: Destination = { proto: 'udp', address: '203.0.113.5', port: 5060 };

  function send() {
    const events: Array<[string, unknown]> = [];
    const req = parseOrThrow(request('OPTIONS')) as SipRequest;
    const ct = layer.sendRequest(req, dest, {
      onResponse: (r) => events.push(['response', r.status]),
      onTimeout: (k) => events.push(['timeout', k]),
      onTerminated: () => events.push(['terminated', null]),
    });
    sentReq.set(ct, req);
    return { ct, events };
  }

  it('retransmits on Timer E (T1 doubling, capped at T2) and times out on Timer F', () => {
    const { ct, events } = send();
    transport.take();
    const t0 = Date.now();
    const at: number[] = [];
    while (ct.state === 'trying') { vi.advanceTimersToNextTimer(); at.push(Date.now() - t0); }
    expect(at).toEqual([500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500, 32000]);
    expect(events).toEqual([['timeout', 'timer-f'], ['terminated', null]]);
  });

  it('in Proceeding retransmits every T2; a final moves to Completed and absorbs retransmissions until Timer K', () => {
    makeLayer({ timers: { noResponseTimeoutMs: 20_000 } });
    const { ct, events } = send();
    transport.take();
    inject(createResponse(reqOf(ct), 100).toBuffer());
    expect(ct.state).toBe('proceeding');
    vi.advanceTimersByTime(T2);
    expect(transport.statuses()).toEqual(['OPTIONS']);
    inject(createResponse(reqOf(ct), 200, { toTag: 'x' }).toBuffer());
    inject(createResponse(reqOf(ct), 200, { toTag: 'x' }).toBuffer());
    expect(ct.state).toBe('completed');
    expect(events).toEqual([['response', 100], ['response', 200]]);
    vi.advanceTimersByTime(T4);
    expect(ct.state).toBe('terminated');
  });

  it('no final response within noResponseTimeoutMs is reported even after a provisional (fr_timer)', () => {
    makeLayer({ timers: { noResponseTimeoutMs: 4000 } });
    const { ct, events } = send();
    inject(createResponse(reqOf(ct), 100).toBuffer());
    vi.advanceTimersByTime(3999);
    expect(events).toEqual([['response', 100]]);
    vi.advanceTimersByTime(1);
    expect(events.slice(1)).toEqual([['timeout', 'no-response'], ['terminated', null]]);
    expect(ct.state).toBe('terminated');
  });

  it('without a listener for the transport the send fails asynchronously', async () => {
    const events: string[] = [];
    const layer2 = new TransactionLayer({ transport: Object.assign(new MemoryTransport(), { localAddress: () => undefined }), timers: TIMERS, logger: silentLogger() }, new Recorder());
    const ct = layer2.sendRequest(parseOrThrow(request('OPTIONS')) as SipRequest, dest, {
      onResponse: () => events.push('response'),
      onTransportError: (e) => events.push(e.message),
    });
    expect(events).toEqual([]);
    await vi.advanceTimersByTimeAsync(0);
    expect(events).toEqual(['SIP transport error: no udp listener']);
    expect(ct.state).toBe('terminated');
  });
});

describe('server transaction lifetime', () => {
  it('a non-INVITE the TU never answers is freed after 64*T1 + T4', () => {
    inject(request('OPTIONS'));
    const st = tu.requests[0]!.st!;
    vi.advanceTimersByTime(64 * T1 + T4 - 1);
    expect(st.state).toBe('trying');
    vi.advanceTimersByTime(1);
    expect(st.state).toBe('terminated');
    expect(layer.size.server).toBe(0);
  });

  it('answering in time replaces the lifetime timer with Timer J', () => {
    inject(request('OPTIONS'));
    const st = tu.requests[0]!.st!;
    vi.advanceTimersByTime(64 * T1);
    st.respond(createResponse(st.request, 200));
    vi.advanceTimersByTime(T4);
    expect(st.state).toBe('completed');
    vi.advanceTimersByTime(64 * T1 - T4);
    expect(st.state).toBe('terminated');
  });
});

describe('layer plumbing', () => {
  it('parse errors reach the TU; a throwing TU does not break the layer', () => {
    const bad = { kind: 'bad', reason: 'Bad CSeq' } as unknown as SipParseError;
    transport.handler(bad, UDP_SRC);
    expect(tu.parseErrors).toEqual([bad]);
    tu.onRequest = () => { throw new Error('boom'); };
    expect(() => inject(request('INVITE'))).not.toThrow();
    expect(layer.size.server).toBe(1);
  });

  it('close() clears every transaction and timer', () => {
    inject(request('INVITE'));
    layer.sendRequest(parseOrThrow(request('OPTIONS')) as SipRequest, { proto: 'udp', address: '203.0.113.5', port: 5060 }, { onResponse: () => undefined });
    layer.close();
    expect(layer.size).toEqual({ server: 0, client: 0 });
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe('linger timers, coalesced (lingerSlackMs 100 here; the default is 10)', () => {
  beforeEach(() => { layer.close(); makeLayer({ lingerSlackMs: 100 }); });

  it('transactions ending within the slack share one Node timer and end between 64*T1 and 64*T1 + slack', () => {
    const sts: ServerTransaction[] = [];
    for (let i = 0; i < 50; i++) {
      inject(request('BYE', { branch: `z9hG4bKbye${i}`, toTag: 'b1' }));
      const st = tu.requests.at(-1)!.st!;
      st.respond(createResponse(st.request, 200));
      sts.push(st);
      vi.advanceTimersByTime(1); // 50 ms in all: one bucket
    }
    // each BYE still has its "unanswered" timer cleared; what remains is one timer for fifty Timers J
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(64 * T1 - 50 - 1);
    expect(sts.every((st) => st.state === 'completed')).toBe(true);
    vi.advanceTimersByTime(101);
    expect(sts.every((st) => st.state === 'terminated')).toBe(true);
    expect(layer.size.server).toBe(0);
  });

  it('an entry made obsolete by a state change does nothing: an ACK moves Completed to Confirmed, Timer H stays silent', () => {
    inject(request('INVITE'));
    const st = tu.requests[0]!.st!;
    const ackTimeout = vi.fn();
    st.onAckTimeout = ackTimeout;
    st.respond(createResponse(st.request, 486, { toTag: 'b1' }));
    inject(request('ACK', { toTag: 'b1', cseqMethod: 'ACK' }));
    expect(st.state).toBe('confirmed');
    vi.advanceTimersByTime(T4 + 100);
    expect(st.state).toBe('terminated'); // Timer I
    vi.advanceTimersByTime(64 * T1);
    expect(ackTimeout).not.toHaveBeenCalled(); // Timer H's entry found the transaction terminated
    expect(vi.getTimerCount()).toBe(0);
  });

  it('close() drops the pending linger timers', () => {
    inject(request('INVITE'));
    const st = tu.requests[0]!.st!;
    st.respond(createResponse(st.request, 200, { toTag: 'b1' }));
    expect(st.state).toBe('accepted');
    expect(vi.getTimerCount()).toBe(1); // Timer L
    layer.close();
    expect(vi.getTimerCount()).toBe(0);
  });
});
