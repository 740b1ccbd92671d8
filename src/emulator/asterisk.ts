// EmulatedAsterisk: one emulated Asterisk 20 box with A2Billing for tests and the demo — an AMI server (real wire
// format), a SIP UAS answering like the dialplan, and the AGI's cc_call rows. Faults can be switched per run, and
// `record` tells what the box did (calls, Cdr events and to how many AMI clients each went, cc_call rows, faults),
// so a test or the demo can assert what reconciliation must find.
import { createHash } from 'node:crypto';
import { ZoneClock } from '../ami/time.js';
import type { Db } from '../db/pool.js';
import type { Logger } from '../log.js';
import type { TransportProto } from '../sip/index.js';
import { A2BillingSide, retryUniqueId, TERMINATE_CAUSE, type Card, type Rate, type TerminateCause } from './a2billing.js';
import { EmulatedAmiServer, type AmiUser } from './ami-server.js';
import { cdrEventFields, type EmuCdr } from './cdr-event.js';
import { EmulatedUas, type UasBehaviour, type UasCall } from './uas.js';

/** Which calls a fault applies to: every call, none, these call numbers (1-based per box), or every Nth call. */
export type CallSelector = 'all' | 'none' | number[] | { every: number };

export interface EmulatorFaults {
  /** The AGI "forgets" the cc_call row (and so the customer is never billed). */
  dropCcCall?: CallSelector;
  /** cc_call durations off by this many seconds (billed and real). */
  skewDurationSec?: number;
  skewCalls?: CallSelector;
  /** cc_call billed to another card: the card whose username is this account code. */
  wrongCardAccountCode?: string;
  wrongCardCalls?: CallSelector;
}

export interface EmulatedAsteriskOptions {
  name: string;
  /** A2Billing database (cc_card, rates, cc_call). */
  db: Db;
  log: Logger;
  host?: string;
  sipPort?: number;
  sipProtos?: TransportProto[];
  amiPort?: number;
  amiUsers?: AmiUser[];
  /** The box's clock zone (CDR times are written in it). Default UTC. */
  timezone?: string;
  /** How calls are answered: one behaviour, or per call. Default: answer after 100 ms, talk 1 s. */
  behaviour?: UasBehaviour | ((call: { toUser: string; accountCode: string; callId: string }) => UasBehaviour);
  faults?: EmulatorFaults;
  /** cc_call.sessiontime: block-rounded billed seconds ('blocks', default) or the 'answered' seconds. */
  sessiontimeMode?: 'answered' | 'blocks';
  /** UniqueID prefix (Asterisk: its start time in epoch seconds). */
  uniqueIdBase?: number;
  t1Ms?: number;
}

export interface EmulatedCcCall { id: number; uniqueId: string; cardId: number; cause: TerminateCause; sessiontime: number; billedSeconds: number; realSessiontime: number; sessionbill: number }
export interface EmulatedCdr { uniqueId: string; sequence: number; disposition: string; billableSeconds: number; deliveredTo: number }

export interface EmulatedCallRecord extends Omit<UasCall, 'n'> {
  n: number;
  uniqueId: string;
  channel: string;
  /** The card the account code belongs to (null: unknown account code → the AGI wrote nothing). */
  cardId: number | null;
  /** The card cc_call was written for (differs under the wrong-card fault). */
  billedCardId: number | null;
  ccCalls: EmulatedCcCall[];
  cdrs: EmulatedCdr[];
  faults: string[];
  /** Injected with injectBypassCall: never went through the gateway. */
  bypass: boolean;
}

export interface EmulatorRecord {
  calls: EmulatedCallRecord[];
  /** AMI disconnect faults: when and for how long. */
  amiDrops: Array<{ at: number; blindMs: number }>;
  errors: string[];
}

function selected(sel: CallSelector | undefined, n: number): boolean {
  if (sel === undefined || sel === 'none') return false;
  if (sel === 'all') return true;
  if (Array.isArray(sel)) return sel.includes(n);
  return sel.every > 0 && n % sel.every === 0;
}

const DISPOSITION: Record<string, EmuCdr['disposition']> = {
  answered: 'ANSWERED', busy: 'BUSY', noanswer: 'NO ANSWER', failed: 'FAILED', cancelled: 'NO ANSWER', refused: 'NO ANSWER',
};
const CAUSE: Record<string, TerminateCause> = {
  answered: TERMINATE_CAUSE.ANSWER, busy: TERMINATE_CAUSE.BUSY, noanswer: TERMINATE_CAUSE.NOANSWER,
  failed: TERMINATE_CAUSE.CHANUNAVAIL, cancelled: TERMINATE_CAUSE.CANCEL,
};

export class EmulatedAsterisk {
  readonly name: string;
  readonly ami: EmulatedAmiServer;
  readonly record: EmulatorRecord = { calls: [], amiDrops: [], errors: [] };
  private readonly uas: EmulatedUas;
  private readonly a2b: A2BillingSide;
  private readonly clock: ZoneClock;
  private readonly base: number;
  private faults: EmulatorFaults;
  private behaviour: NonNullable<EmulatedAsteriskOptions['behaviour']>;
  private sequence = 0;
  private channels = 0;
  private readonly pending = new Set<Promise<void>>();

  constructor(private readonly o: EmulatedAsteriskOptions) {
    this.name = o.name;
    this.clock = new ZoneClock(o.timezone ?? 'UTC');
    // Asterisk's UniqueID is <its start time>.<counter>: boxes started apart never share one. Boxes emulated in the
    // same second would, so each name gets its own (stable) start offset of up to a day.
    this.base = o.uniqueIdBase ?? Math.floor(Date.now() / 1000) - (createHash('sha256').update(o.name).digest().readUInt32BE(0) % 86_400);
    this.faults = o.faults ?? {};
    this.behaviour = o.behaviour ?? { kind: 'answer', ringMs: 100, talkMs: 1000 };
    this.a2b = new A2BillingSide(o.db);
    this.ami = new EmulatedAmiServer({ host: o.host, port: o.amiPort ?? 0, users: o.amiUsers ?? [{ username: 'gateway', secret: 'gateway-secret', read: ['cdr'] }] });
    this.uas = new EmulatedUas({
      host: o.host, port: o.sipPort, protos: o.sipProtos, log: o.log, t1Ms: o.t1Ms,
      behaviour: (c) => (typeof this.behaviour === 'function' ? this.behaviour(c) : this.behaviour),
      onCallEnd: (call) => this.track(this.onCallEnd(call)),
    });
  }

  async start(): Promise<{ sip: Array<{ proto: TransportProto; host: string; port: number }>; ami: { host: string; port: number } }> {
    const ami = await this.ami.start();
    const sip = await this.uas.start();
    return { sip, ami };
  }

  sipAddress(proto: TransportProto = 'udp'): { host: string; port: number } {
    const l = this.uas.listeners().find((x) => x.proto === proto);
    if (!l) throw new Error(`emulator ${this.name} has no ${proto} listener`);
    return { host: l.host, port: l.port };
  }

  setBehaviour(b: NonNullable<EmulatedAsteriskOptions['behaviour']>): void {
    this.behaviour = b;
  }

  setFaults(f: EmulatorFaults): void {
    this.faults = f;
  }

  /** Fault: drop every AMI connection and stay blind for blindMs (Cdr events posted meanwhile are lost). */
  dropAmi(blindMs: number): void {
    this.record.amiDrops.push({ at: Date.now(), blindMs });
    this.ami.dropConnections(blindMs);
  }

  /**
   * Fault: a call that never went through the gateway (someone reached the box directly): a cc_call row and a Cdr
   * event exactly like a real call, with a Call-ID the gateway never saw and no callref.
   */
  async injectBypassCall(o: { accountCode: string; toUser: string; fromUser?: string; talkSec: number; callId?: string }): Promise<EmulatedCallRecord> {
    const end = Date.now();
    const start = end - o.talkSec * 1000 - 1000;
    const call: UasCall = {
      n: 0, callId: o.callId ?? `bypass-${Math.random().toString(36).slice(2, 12)}@${this.name}`, accountCode: o.accountCode,
      callref: null, fromUser: o.fromUser ?? '0000', toUser: o.toUser, outcome: 'answered', status: 200,
      startedAt: start, answeredAt: start + 1000, endedAt: end, endedBy: 'caller', failedAttempts: [],
    };
    return this.onCallEnd(call, true);
  }

  /** Resolves once every finished call's Cdr and cc_call work is done. */
  async idle(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending]);
  }

  get activeCalls(): number {
    return this.uas.activeCalls;
  }

  async stop(): Promise<void> {
    await this.uas.stop();
    await this.idle();
    await this.ami.stop();
  }

  private track(p: Promise<unknown>): void {
    const q = p.then(() => undefined, (e: unknown) => { this.record.errors.push(String(e)); });
    this.pending.add(q);
    void q.finally(() => this.pending.delete(q));
  }

  private async onCallEnd(call: UasCall, bypass = false): Promise<EmulatedCallRecord> {
    if (call.outcome === 'overloaded') {
      // Refused before a channel existed: no CDR, no AGI.
      const rec: EmulatedCallRecord = { ...call, uniqueId: '', channel: '', cardId: null, billedCardId: null, ccCalls: [], cdrs: [], faults: [], bypass };
      this.record.calls.push(rec);
      return rec;
    }
    const n = ++this.channels;
    const uniqueId = `${this.base}.${n - 1}`;
    const channel = `PJSIP/gateway-${(n - 1).toString(16).padStart(8, '0')}`;
    const rec: EmulatedCallRecord = { ...call, n, uniqueId, channel, cardId: null, billedCardId: null, ccCalls: [], cdrs: [], faults: [], bypass };
    this.record.calls.push(rec);
    const refused = call.outcome === 'refused';

    // The AGI side: card, rate, one cc_call per dial attempt.
    let card: Card | undefined;
    let rate: Rate | undefined;
    if (!refused) {
      card = await this.a2b.card(call.accountCode);
      if (card && card.status === 1) {
        rec.cardId = card.id;
        rate = await this.a2b.rate(card.tariff, call.toUser);
      } else {
        card = undefined;
      }
    }
    const attempts: Array<{ outcome: string; cause: TerminateCause }> = [
      ...call.failedAttempts.map((a) => ({ outcome: a === 'busy' ? 'busy' : 'failed', cause: a === 'busy' ? TERMINATE_CAUSE.BUSY : TERMINATE_CAUSE.CHANUNAVAIL })),
      { outcome: call.outcome, cause: CAUSE[call.outcome] ?? TERMINATE_CAUSE.CHANUNAVAIL },
    ];
    const talkSec = call.answeredAt !== null && call.outcome === 'answered' ? Math.floor((call.endedAt - call.answeredAt) / 1000) : 0;

    // Cdr events: one per attempt (same UniqueID, growing Sequence), posted at hang-up to the connected clients.
    attempts.forEach((a, i) => {
      const last = i === attempts.length - 1;
      const answered = last && a.outcome === 'answered';
      const cdr: EmuCdr = {
        accountCode: refused ? '' : call.accountCode, source: call.fromUser, destination: call.toUser,
        destinationContext: 'from-a2b-gateway', callerId: `"" <${call.fromUser}>`, channel,
        destinationChannel: refused ? '' : `PJSIP/trunk-${(0x1000 + n * 8 + i).toString(16).padStart(8, '0')}`,
        lastApplication: refused ? 'Hangup' : 'Dial', lastData: refused ? '21' : `PJSIP/${call.toUser}@trunk,60,L(3600000:61000:30000)`,
        startTime: this.clock.toLocal(call.startedAt), answerTime: answered ? this.clock.toLocal(call.answeredAt!) : '',
        endTime: this.clock.toLocal(call.endedAt), duration: Math.floor((call.endedAt - call.startedAt) / 1000),
        billableSeconds: answered ? talkSec : 0, disposition: answered ? 'ANSWERED' : (DISPOSITION[a.outcome] ?? 'FAILED'),
        amaFlags: 'DOCUMENTATION', uniqueId, userField: refused ? '' : call.callId,
        extras: { LinkedID: uniqueId, Sequence: String(this.sequence++), SIPCallID: refused ? '' : call.callId,
          TalkTime: answered ? String(talkSec) : '', DialStatus: answered ? 'ANSWER' : a.outcome === 'busy' ? 'BUSY' : a.outcome === 'noanswer' ? 'NOANSWER' : a.outcome === 'cancelled' ? 'CANCEL' : 'CHANUNAVAIL' },
      };
      const deliveredTo = this.ami.postEvent(cdrEventFields(cdr));
      rec.cdrs.push({ uniqueId, sequence: Number(cdr.extras.Sequence), disposition: cdr.disposition, billableSeconds: cdr.billableSeconds, deliveredTo });
    });

    if (!card) return rec; // unknown/inactive account code or refused: the AGI hangs up without a cc_call row
    const f = this.faults;
    for (let i = 0; i < attempts.length; i++) {
      const a = attempts[i]!;
      const last = i === attempts.length - 1;
      if (selected(f.dropCcCall, n)) { rec.faults.push('drop-cc_call'); continue; }
      let billedCard = card.id;
      if (f.wrongCardAccountCode && selected(f.wrongCardCalls ?? 'all', n)) {
        const other = await this.a2b.card(f.wrongCardAccountCode);
        if (other) { billedCard = other.id; rec.faults.push(`wrong-card:${f.wrongCardAccountCode}`); }
      }
      const skew = f.skewDurationSec && last && a.outcome === 'answered' && selected(f.skewCalls ?? 'all', n) ? f.skewDurationSec : 0;
      if (skew) rec.faults.push(`skew:${skew}`);
      const w = await this.a2b.writeCall({
        uniqueId: retryUniqueId(uniqueId, i), channel, cardId: billedCard, start: last && call.answeredAt !== null ? call.answeredAt : call.startedAt,
        stop: call.endedAt, answeredSec: last ? talkSec : 0, calledStation: call.toUser, src: call.fromUser, dnid: call.toUser,
        cause: a.cause, callref: call.callref, rate, skewSec: skew, sessiontimeMode: this.o.sessiontimeMode,
      });
      rec.billedCardId = billedCard;
      rec.ccCalls.push({ id: w.id, uniqueId: retryUniqueId(uniqueId, i), cardId: billedCard, cause: a.cause, sessiontime: w.sessiontime, billedSeconds: w.billedSeconds, realSessiontime: w.realSessiontime, sessionbill: w.sessionbill });
    }
    return rec;
  }
}
