// Accounting from the proxy's CallEvents, like OpenSIPS acc in transaction + CDR mode:
//   gw_acc          one row per accounted transaction: the answered INVITE (2xx), the BYE that ended the dialog,
//                   CANCEL (when acc.reportCancels) and any other non-INVITE the proxy reports as `transaction`;
//   gw_missed_calls one row per failed INVITE attempt (each failover attempt, then the final failure);
//   gw_cdr          one row per call: at `ended` for answered calls, at `failed` for failed/cancelled ones.
// onCallEvent() only updates a Map and enqueues records on the batched writers: no I/O, no await, no throw.
// Call state is keyed by Call-ID + the caller's From tag and bounded: calls whose end never arrives are reaped
// after the dialog's maximum lifetime (answered) or setupMaxMs (never answered) and get a 'timeout' CDR.
import type { Config } from '../config/schema.js';
import { describeError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { Authenticated, CallEvent, DialogInfo, RequestFacts, Target } from '../proxy/hooks.js';
import { durationSeconds, recKey, type AccRecord, type CdrEndReason, type CdrRecord, type DurationRounding } from './records.js';

/** Where records go: a BatchWriter satisfies it. */
export interface RecordSink<R> {
  enqueue(record: R): void;
}

export interface AccSinks {
  acc: RecordSink<AccRecord>;
  missed: RecordSink<AccRecord>;
  cdr: RecordSink<CdrRecord>;
}

export interface AccountingConfig {
  acc: Pick<Config['acc'], 'reportCancels' | 'logRecords'> & { durationRounding?: DurationRounding };
  dialog: Pick<Config['dialog'], 'defaultMaxLifetimeSec'>;
}

export interface AccountingOptions {
  config: AccountingConfig;
  sinks: AccSinks;
  log: Logger;
  metrics?: Metrics;
  /** A call never answered nor failed is forgotten (with a 'timeout' CDR) after this long. Default 10 min. */
  setupMaxMs?: number;
  /** How often the reaper runs. Default 60 s. */
  reapIntervalMs?: number;
  /** Extra time after the dialog's maximum lifetime before an answered call without `ended` is reaped. Default 60 s. */
  reapGraceMs?: number;
  /** Hard bound on calls held; past it the oldest call is reaped early (counted as evicted). Default 200000. */
  maxCalls?: number;
}

export interface AccountingStats {
  activeCalls: number;
  accRecords: number;
  missedRecords: number;
  cdrRecords: number;
  reaped: number;
  /** Calls reaped early because maxCalls was reached. */
  evicted: number;
  /** `ended` for a call accounting never saw start (no CDR when no dialog snapshot came with it). */
  unknownEnds: number;
  /** Events that made accounting fail internally (logged; the call is unaffected). */
  errors: number;
}

export interface Accounting {
  /** Feed every CallEvent here. Never throws, never blocks. */
  onCallEvent(ev: CallEvent): void;
  /** Reaps calls past their lifetime now (also runs on a timer). Returns how many were reaped. */
  reap(now?: number): number;
  stats(): AccountingStats;
  /** Stops the reaper. Calls still up are not written: their dialogs survive the restart and `ended` brings the CDR. */
  close(): Promise<void>;
}

interface CallState {
  callId: string;
  callerTag: string;
  calleeTag: string;
  created: number;
  srcUser: string;
  srcDomain: string;
  dstUser: string;
  dstDomain: string;
  srcIp: string;
  accountcode: string;
  authMethod: string;
  cardId: number | null;
  maxDurationSec: number | null;
  /** Highest attempt number reported. */
  attempts: number;
  /** The last missed row written, so a `failed` repeating the last `attempt-failed` is not counted twice. */
  lastMissed: { targetId: string; status: number; attempt: number } | undefined;
  destination: string;
  answered: number | null;
  sipCode: number;
}

const stateKey = (callId: string, tag: string): string => `${callId}\n${tag}`;

/** user and host of the first sip:/sips: URI in a From/To header value, without regexes (the value is untrusted). */
function uriParts(header: string): { user: string; host: string } {
  let i = header.indexOf('sip:');
  let skip = 4;
  const j = header.indexOf('sips:');
  if (j >= 0 && (i < 0 || j < i)) {
    i = j;
    skip = 5;
  }
  if (i < 0) return { user: '', host: '' };
  let end = i + skip;
  while (end < header.length && !'>;? \t'.includes(header[end]!)) end++;
  const uri = header.slice(i + skip, end);
  const at = uri.lastIndexOf('@');
  const hostPort = at >= 0 ? uri.slice(at + 1) : uri;
  const user = at >= 0 ? uri.slice(0, at).split(':')[0]! : '';
  const host = hostPort.startsWith('[') ? hostPort.slice(0, hostPort.indexOf(']') + 1) : hostPort.split(':')[0]!;
  return { user, host };
}

class AccountingImpl implements Accounting {
  private readonly calls = new Map<string, CallState>();
  private readonly reportCancels: boolean;
  private readonly logRecords: boolean;
  private readonly rounding: DurationRounding;
  private readonly maxLifetimeMs: number;
  private readonly setupMaxMs: number;
  private readonly reapGraceMs: number;
  private readonly timer: NodeJS.Timeout;
  private readonly maxCalls: number;
  private readonly st = { accRecords: 0, missedRecords: 0, cdrRecords: 0, reaped: 0, evicted: 0, unknownEnds: 0, errors: 0 };

  constructor(private readonly o: AccountingOptions) {
    this.reportCancels = o.config.acc.reportCancels;
    this.logRecords = o.config.acc.logRecords;
    this.rounding = o.config.acc.durationRounding ?? 'floor';
    this.maxLifetimeMs = o.config.dialog.defaultMaxLifetimeSec * 1000;
    this.setupMaxMs = o.setupMaxMs ?? 600_000;
    this.reapGraceMs = o.reapGraceMs ?? 60_000;
    this.maxCalls = o.maxCalls ?? 200_000;
    this.timer = setInterval(() => this.reap(), o.reapIntervalMs ?? 60_000);
    this.timer.unref();
  }

  onCallEvent(ev: CallEvent): void {
    try {
      switch (ev.type) {
        case 'start': this.onStart(ev.facts, ev.auth, ev.at, ev.maxDurationSec); break;
        case 'attempt-failed': this.onAttemptFailed(ev.facts, ev.auth, ev.target, ev.status, ev.reason, ev.at, ev.attempt); break;
        case 'failed': this.onFailed(ev); break;
        case 'answered': this.onAnswered(ev); break;
        case 'ended': this.onEnded(ev); break;
        case 'transaction': this.onTransaction(ev.facts, ev.status, ev.reason, ev.at); break;
        case 'in-dialog': break; // CSeq bookkeeping is the dialog module's business
      }
    } catch (e) {
      this.st.errors++;
      this.o.log.error({ err: describeError(e), event: ev.type }, 'accounting failed for a call event');
    }
  }

  reap(now = Date.now()): number {
    let n = 0;
    for (const [key, c] of this.calls) {
      // An answered call cannot outlive the dialog's lifetime (or its own longer credit limit): its CDR ends there.
      const limitMs = Math.max(this.maxLifetimeMs, (c.maxDurationSec ?? 0) * 1000);
      const expired = c.answered !== null
        ? now - c.answered > limitMs + this.reapGraceMs
        : now - c.created > this.setupMaxMs;
      if (!expired) continue;
      this.calls.delete(key);
      n++;
      this.o.log.warn({ callId: c.callId, answered: c.answered !== null }, 'call reaped: its end was never reported');
      this.writeCdr(c, c.answered !== null ? Math.min(now, c.answered + limitMs) : now, 'timeout', c.answered !== null ? c.sipCode : 0);
    }
    this.st.reaped += n;
    return n;
  }

  /** Map order is insertion order: the first entry is the oldest call. */
  private evictOldest(now: number): void {
    const first = this.calls.entries().next();
    if (first.done) return;
    const [key, c] = first.value;
    this.calls.delete(key);
    this.st.evicted++;
    if (this.st.evicted === 1 || this.st.evicted % 1000 === 0) {
      this.o.log.warn({ maxCalls: this.maxCalls, evicted: this.st.evicted, callId: c.callId }, 'too many calls in accounting state: oldest reaped early');
    }
    this.writeCdr(c, now, 'timeout', c.answered !== null ? c.sipCode : 0);
  }

  stats(): AccountingStats {
    return { activeCalls: this.calls.size, ...this.st };
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
  }

  // ---- events ----

  private onStart(facts: RequestFacts, auth: Authenticated | undefined, at: number, maxDurationSec: number | undefined): CallState {
    const key = stateKey(facts.callId, facts.fromTag);
    const known = this.calls.get(key);
    if (known) return known;
    if (this.calls.size >= this.maxCalls) this.evictOldest(at);
    const c: CallState = {
      callId: facts.callId, callerTag: facts.fromTag, calleeTag: '', created: at,
      srcUser: facts.fromUser, srcDomain: facts.fromDomain, dstUser: facts.ruriUser, dstDomain: facts.ruriHost, srcIp: facts.source.ip,
      accountcode: auth?.accountcode ?? '', authMethod: auth?.method ?? '', cardId: auth?.cardId ?? null,
      maxDurationSec: maxDurationSec ?? null, attempts: 0, lastMissed: undefined, destination: '', answered: null, sipCode: 0,
    };
    this.calls.set(key, c);
    return c;
  }

  private call(facts: RequestFacts, auth: Authenticated | undefined, at: number): CallState {
    return this.calls.get(stateKey(facts.callId, facts.fromTag)) ?? this.onStart(facts, auth, at, undefined);
  }

  private onAttemptFailed(facts: RequestFacts, auth: Authenticated | undefined, target: Target, status: number, reason: string, at: number, attempt: number): void {
    const c = this.call(facts, auth, at);
    c.attempts = Math.max(c.attempts, attempt);
    c.destination = target.uri;
    this.missed(c, facts, status, reason, at, target, attempt);
  }

  private onFailed(ev: Extract<CallEvent, { type: 'failed' }>): void {
    const c = this.call(ev.facts, ev.auth, ev.at);
    const last = c.lastMissed;
    // The proxy reports the last failed hop as attempt-failed and then the call as failed (its status may differ:
    // a transport error answered upstream as 503): one missed row per attempt.
    const repeatsLast = last !== undefined && ev.target !== undefined && last.targetId === ev.target.id
      && (ev.attempt !== undefined ? ev.attempt === last.attempt : last.status === ev.status);
    if (!repeatsLast) {
      const attempt = ev.attempt ?? (ev.target ? c.attempts + 1 : Math.max(1, c.attempts));
      c.attempts = Math.max(c.attempts, attempt);
      this.missed(c, ev.facts, ev.status, ev.reason, ev.at, ev.target, attempt);
    }
    if (ev.target) c.destination = ev.target.uri;
    this.calls.delete(stateKey(c.callId, c.callerTag));
    this.writeCdr(c, ev.at, ev.cancelled ? 'cancelled' : 'failed', ev.status);
  }

  private onAnswered(ev: Extract<CallEvent, { type: 'answered' }>): void {
    const c = this.call(ev.facts, ev.auth, ev.dialog.createdAt || ev.at);
    if (c.answered !== null) return; // a 2xx retransmission or a second report: one answer per call
    c.answered = ev.at;
    c.sipCode = ev.status;
    c.calleeTag = ev.dialog.calleeTag;
    c.destination = ev.target.uri;
    // Answered on the attempt after the last failed one (failover), unless the proxy says which.
    c.attempts = ev.attempt ?? (c.lastMissed ? c.lastMissed.attempt + 1 : Math.max(c.attempts, 1));
    if (ev.maxDurationSec !== undefined) c.maxDurationSec = ev.maxDurationSec;
    if (!c.accountcode && ev.dialog.accountcode) c.accountcode = ev.dialog.accountcode;
    this.emitAcc({
      key: recKey('acc', 'INVITE', c.callId, c.callerTag, c.calleeTag, ev.at), method: 'INVITE', fromTag: c.callerTag, toTag: c.calleeTag,
      callId: c.callId, sipCode: ev.status, sipReason: ev.reason, time: ev.at, ...this.parties(c), destination: c.destination, attempt: c.attempts,
    });
  }

  private onEnded(ev: Extract<CallEvent, { type: 'ended' }>): void {
    let c = this.calls.get(stateKey(ev.callId, ev.fromTag));
    let otherTag = ev.toTag;
    if (!c) {
      c = this.calls.get(stateKey(ev.callId, ev.toTag));
      otherTag = ev.fromTag;
    }
    let known = true;
    if (c) {
      this.calls.delete(stateKey(c.callId, c.callerTag));
      if (!c.calleeTag) c.calleeTag = otherTag;
      if (c.answered === null && ev.dialog) {
        // The answer was not reported to us; the dialog snapshot knows when it happened.
        c.answered = ev.dialog.answeredAt;
        c.sipCode = 200;
        if (!c.destination) c.destination = ev.dialog.targetId;
      }
    } else {
      this.st.unknownEnds++;
      c = ev.dialog ? this.fromDialog(ev.dialog) : undefined;
      if (!c) {
        this.o.log.warn({ callId: ev.callId, reason: ev.reason }, 'dialog ended that accounting never saw start: BYE accounted, no CDR');
        c = this.bare(ev.callId, ev.fromTag, ev.toTag, ev.at);
        known = false;
      }
    }
    // The BYE as it went on the wire: from the callee when the callee hung up.
    const byCallee = ev.reason === 'bye-callee';
    this.emitAcc({
      key: recKey('acc', 'BYE', c.callId, c.callerTag, c.calleeTag, ev.at), method: 'BYE',
      fromTag: byCallee ? c.calleeTag : c.callerTag, toTag: byCallee ? c.callerTag : c.calleeTag,
      callId: c.callId, sipCode: ev.status ?? 200, sipReason: ev.statusReason ?? (ev.status === undefined ? 'OK' : ''), time: ev.at,
      ...this.parties(c), destination: c.destination, attempt: Math.max(1, c.attempts),
    });
    // A call we never saw start and that brought no snapshot: nothing true can be said in a CDR.
    if (!known) return;
    // (A call we saw start but never saw answered gets a CDR with no answer time and duration 0.)
    this.writeCdr(c, ev.at, ev.reason, c.sipCode || 200);
  }

  private onTransaction(facts: RequestFacts, status: number, reason: string, at: number): void {
    const method = facts.method.toUpperCase();
    if (method === 'BYE' || method === 'INVITE') return; // accounted from `ended` / `answered`
    if (method === 'CANCEL' && !this.reportCancels) return;
    const c = this.calls.get(stateKey(facts.callId, facts.fromTag));
    this.emitAcc({
      key: recKey('acc', method, facts.callId, facts.fromTag, facts.cseq, status, at), method, fromTag: facts.fromTag, toTag: '',
      callId: facts.callId, sipCode: status, sipReason: reason, time: at,
      srcUser: facts.fromUser, srcDomain: facts.fromDomain, dstUser: facts.ruriUser, dstDomain: facts.ruriHost,
      accountcode: c?.accountcode ?? '', srcIp: facts.source.ip, authMethod: c?.authMethod ?? '', destination: c?.destination ?? '',
      attempt: Math.max(1, c?.attempts ?? 1),
    });
  }

  // ---- records ----

  private parties(c: CallState): Pick<AccRecord, 'srcUser' | 'srcDomain' | 'dstUser' | 'dstDomain' | 'accountcode' | 'srcIp' | 'authMethod'> {
    return { srcUser: c.srcUser, srcDomain: c.srcDomain, dstUser: c.dstUser, dstDomain: c.dstDomain, accountcode: c.accountcode, srcIp: c.srcIp, authMethod: c.authMethod };
  }

  private missed(c: CallState, facts: RequestFacts, status: number, reason: string, at: number, target: Target | undefined, attempt: number): void {
    c.lastMissed = { targetId: target?.id ?? '', status, attempt };
    const r: AccRecord = {
      key: recKey('missed', facts.callId, facts.fromTag, attempt, target?.id ?? '', status, at), method: facts.method || 'INVITE',
      fromTag: facts.fromTag, toTag: '', callId: facts.callId, sipCode: status, sipReason: reason, time: at,
      ...this.parties(c), destination: target?.uri ?? '', attempt,
    };
    this.st.missedRecords++;
    this.o.sinks.missed.enqueue(r);
    if (this.logRecords) this.o.log.info({ acc: 'missed', record: r }, 'missed call');
  }

  private emitAcc(r: AccRecord): void {
    this.st.accRecords++;
    this.o.sinks.acc.enqueue(r);
    if (this.logRecords) this.o.log.info({ acc: 'acc', record: r }, 'accounted transaction');
  }

  private writeCdr(c: CallState, ended: number, reason: CdrEndReason, sipCode: number): void {
    const answered = c.answered;
    const durationMs = answered === null ? 0 : Math.max(0, ended - answered);
    const r: CdrRecord = {
      key: recKey('cdr', c.callId, c.callerTag, c.created), callId: c.callId, fromTag: c.callerTag, toTag: c.calleeTag,
      created: c.created, answered, ended, setupMs: answered === null ? null : Math.max(0, answered - c.created),
      durationSec: durationSeconds(durationMs, this.rounding), durationMs, endReason: reason, sipCode,
      accountcode: c.accountcode, cardId: c.cardId, srcUser: c.srcUser, srcDomain: c.srcDomain, dstUser: c.dstUser, dstDomain: c.dstDomain,
      srcIp: c.srcIp, authMethod: c.authMethod, destination: c.destination, maxDurationSec: c.maxDurationSec,
    };
    this.st.cdrRecords++;
    this.o.sinks.cdr.enqueue(r);
    if (this.logRecords) this.o.log.info({ acc: 'cdr', record: r }, 'cdr');
  }

  /** Call state rebuilt from a dialog snapshot (a dialog restored after a restart). */
  private fromDialog(d: DialogInfo): CallState {
    const from = uriParts(d.fromHeader);
    const to = uriParts(d.toHeader);
    return {
      callId: d.callId, callerTag: d.callerTag, calleeTag: d.calleeTag, created: d.createdAt,
      srcUser: from.user, srcDomain: from.host, dstUser: to.user, dstDomain: to.host, srcIp: d.callerHop.ip,
      accountcode: d.accountcode, authMethod: '', cardId: null, maxDurationSec: null, attempts: 1, lastMissed: undefined,
      destination: d.targetId, answered: d.answeredAt, sipCode: 200,
    };
  }

  private bare(callId: string, callerTag: string, calleeTag: string, at: number): CallState {
    return {
      callId, callerTag, calleeTag, created: at, srcUser: '', srcDomain: '', dstUser: '', dstDomain: '', srcIp: '', accountcode: '',
      authMethod: '', cardId: null, maxDurationSec: null, attempts: 1, lastMissed: undefined, destination: '', answered: null, sipCode: 0,
    };
  }
}

/** Accounting over given sinks (the three batched writers, or anything with enqueue()). */
export function createAccounting(opts: AccountingOptions): Accounting {
  return new AccountingImpl(opts);
}
