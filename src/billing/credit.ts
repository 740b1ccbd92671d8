// Credit-based authorisation, what cgrates_auth gives OpenSIPS, from A2Billing's own tables: is the card
// active, does the dialled number have a rate, how long may the call last, and does the account still have
// a free call slot. Credit is read fresh for every call (one indexed round trip, never cached): A2Billing
// debits the card when a call ends, so a card emptied a second ago is refused at once.
import type { Config } from '../config/schema.js';
import { GwError } from '../errors.js';
import type { Db } from '../db/pool.js';
import * as Q from '../db/queries/billing.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { Authenticated, AuthorizeDecision, CallEvent, RequestFacts } from '../proxy/hooks.js';
import {
  applicableRates, availableCredit, budgetSeconds, callCost, formatMoney, normaliseNumber, parseMoney, prefixCandidates,
  tighter, weekMinuteClock, type Budget, type RateCandidate,
} from './rating.js';
import { CallSlots } from './slots.js';

/** What authorize reads of the request; fromTag (with the Call-ID) tells calls that share a Call-ID apart. */
type CallFacts = Pick<RequestFacts, 'callId' | 'ruriUser'> & Partial<Pick<RequestFacts, 'fromTag'>>;

export interface BillingOptions {
  billing: Config['billing'];
  /** The dialog lifetime bounds how long an answered call may hold its slot. */
  dialog: Pick<Config['dialog'], 'defaultMaxLifetimeSec'>;
  /** Required when billing.creditCheck is true. */
  db?: Db;
  log: Logger;
  metrics?: Metrics;
  /** Clock (ms since epoch), for tests. */
  now?: () => number;
}

/** What the rating found for one account and number, before any slot is taken. */
export type Quote =
  | { kind: 'ok'; cardId: number; available: string; maxDurationSec: number | undefined; prefix: string; ratePerMin: string }
  | { kind: 'no-card' }
  | { kind: 'inactive'; cardId: number; status: number }
  | { kind: 'no-rate'; cardId: number }
  | { kind: 'no-credit'; cardId: number; available: string }
  | { kind: 'db-error'; message: string };

interface Row {
  card_id: number;
  status: number;
  credit: string | number;
  typepaid: number | null;
  creditlimit: string | number | null;
  tariff: number | null;
  simultaccess: number | null;
  rate_id: number | null;
  plan_id: number | null;
  dialprefix: string | null;
  rateinitial: string | number | null;
  initblock: number | null;
  billingblock: number | null;
  connectcharge: string | number | null;
  disconnectcharge: string | number | null;
  start_ts: string | number | null;
  stop_ts: string | number | null;
  starttime: number | null;
  endtime: number | null;
  plan_start_ts: string | number | null;
  plan_stop_ts: string | number | null;
}

type Fetched =
  | { kind: 'card'; cardId: number; simultaccess: number; available: bigint; rates: RateCandidate[] }
  | Extract<Quote, { kind: 'no-card' | 'inactive' | 'db-error' }>;

const REASONS: Record<number, string> = {
  402: 'Payment Required', 403: 'Forbidden', 404: 'Not Found', 480: 'Temporarily Unavailable', 486: 'Busy Here',
  488: 'Not Acceptable Here', 503: 'Service Unavailable', 603: 'Decline',
};
const reasonFor = (status: number, fallback: string) => REASONS[status] ?? fallback;

const num = (v: string | number | null | undefined, dflt: number) => {
  if (v === null || v === undefined) return dflt;
  const n = Number(v);
  return Number.isFinite(n) ? n : dflt;
};

export class Billing {
  private readonly cfg: Config['billing'];
  private readonly db: Db | undefined;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly weekMinute: (ms: number) => number;
  private readonly decisions: Metrics['billingDecisions'] | undefined;
  /** No call outlives the dialog lifetime: longer budgets are capped to it (and so is the credit held). */
  private readonly lifetimeSec: number;
  readonly slots: CallSlots;

  constructor(opts: BillingOptions) {
    this.cfg = opts.billing;
    this.db = opts.db;
    this.log = opts.log;
    this.now = opts.now ?? Date.now;
    this.weekMinute = weekMinuteClock(opts.billing.timezone);
    this.lifetimeSec = opts.dialog.defaultMaxLifetimeSec;
    this.decisions = opts.metrics?.billingDecisions;
    if (this.cfg.creditCheck && !this.db) throw new GwError('GW_ERR_CONFIG_INVALID', 'billing.creditCheck needs the database (db.url); set billing.creditCheck to false to leave credit to A2Billing');
    this.slots = new CallSlots({
      setupTimeoutMs: this.cfg.setupTimeoutSec * 1000,
      answeredTimeoutMs: (opts.dialog.defaultMaxLifetimeSec + 300) * 1000,
      onLeak: (s) => this.log.warn(s, 'call slot freed by its deadline (no release, failed or ended seen)'),
    });
  }

  /**
   * The authorize hook: refuses (402 no credit, 404 no rate, 403 inactive card or call limit, 503 database
   * unreachable) or admits with the maximum duration and a release() that frees the call slot.
   */
  async authorize(facts: CallFacts, auth: Authenticated): Promise<AuthorizeDecision> {
    const [result, decision] = await this.decide(facts, auth);
    this.decisions?.inc({ result });
    return decision;
  }

  private async decide(facts: CallFacts, auth: Authenticated): Promise<[string, AuthorizeDecision]> {
    const account = auth.accountcode;
    const globalLimit = this.cfg.maxCallsPerAccount;
    // Cheap refusal before any database work when the account is already at the configured limit.
    if (globalLimit > 0 && this.slots.count(account) >= globalLimit) return ['limit', this.limitReject(facts.callId, account)];

    if (!this.cfg.creditCheck) {
      const release = this.slots.tryAcquire(facts.callId, account, globalLimit, 0n, facts.fromTag);
      return release ? ['ok', { kind: 'ok', release }] : ['limit', this.limitReject(facts.callId, account)];
    }

    const fetched = await this.fetch(account, facts.ruriUser);
    // Synchronous from here on: pricing against the credit other calls hold, the limit check and the slot
    // are one atomic step (no other authorize can interleave).
    const held = this.cfg.reserveCredit ? this.slots.reserved(account) : 0n;
    const { quote, reserve } = this.price(fetched, held);
    switch (quote.kind) {
      case 'db-error':
        this.log.warn({ callId: facts.callId, accountcode: account, err: quote.message }, 'credit lookup failed: call refused');
        return ['db-error', { kind: 'reject', status: 503, reason: 'Service Unavailable', headers: [['Retry-After', '5']] }];
      case 'no-card':
      case 'inactive':
        this.log.info({ callId: facts.callId, accountcode: account, why: quote.kind }, 'card not usable: call refused');
        return [quote.kind, { kind: 'reject', status: 403, reason: 'Forbidden' }];
      case 'no-rate':
        this.log.info({ callId: facts.callId, accountcode: account }, 'no rate for the dialled number: call refused');
        return ['no-rate', { kind: 'reject', status: this.cfg.noRateStatus, reason: reasonFor(this.cfg.noRateStatus, 'No Rate') }];
      case 'no-credit':
        this.log.info({ callId: facts.callId, accountcode: account, available: quote.available, held: formatMoney(held) }, 'not enough credit: call refused');
        return ['no-credit', { kind: 'reject', status: this.cfg.noCreditStatus, reason: reasonFor(this.cfg.noCreditStatus, 'No Credit') }];
      case 'ok': {
        let limit = globalLimit;
        if (this.cfg.honourSimultaccess && fetched.kind === 'card' && fetched.simultaccess !== 1) limit = limit > 0 ? Math.min(limit, 1) : 1;
        const release = this.slots.tryAcquire(facts.callId, account, limit, this.cfg.reserveCredit ? reserve : 0n, facts.fromTag);
        if (!release) return ['limit', this.limitReject(facts.callId, account)];
        this.log.debug({ callId: facts.callId, accountcode: account, maxDurationSec: quote.maxDurationSec, prefix: quote.prefix, rate: quote.ratePerMin }, 'call authorised');
        return ['ok', quote.maxDurationSec === undefined ? { kind: 'ok', release } : { kind: 'ok', maxDurationSec: quote.maxDurationSec, release }];
      }
    }
  }

  /**
   * Rating without side effects: what a call from `accountcode` to `dialled` would get now
   * (maxDurationSec already has billing.safetyMarginSec taken off; undefined = free route, no limit).
   */
  async quote(accountcode: string, dialled: string): Promise<Quote> {
    const fetched = await this.fetch(accountcode, dialled);
    return this.price(fetched, this.cfg.reserveCredit ? this.slots.reserved(accountcode) : 0n).quote;
  }

  /** Call events keep the slots right even when a release() callback is lost. Never throws. */
  onCallEvent(ev: CallEvent): void {
    switch (ev.type) {
      case 'answered': this.slots.answered(ev.facts.callId, ev.facts.fromTag); break;
      case 'failed': this.slots.failed(ev.facts.callId, ev.facts.fromTag); break;
      case 'ended': {
        // The snapshot knows the caller's tag; without it, the BYE's From tag (caller hung up) or To tag (callee did).
        const tags = [ev.fromTag, ev.toTag];
        if (ev.dialog && ev.dialog.callId === ev.callId) tags.unshift(ev.dialog.callerTag);
        this.slots.ended(ev.callId, tags);
        break;
      }
      default: break;
    }
  }

  /** Counts a call restored after a restart (dialogs.list() after dialogs.restore()). */
  adopt(callId: string, accountcode: string, remainingMs: number, callerTag?: string): void {
    this.slots.adopt(callId, accountcode, remainingMs, callerTag);
  }

  /** Calls currently counted for an account. */
  activeCalls(accountcode: string): number {
    return this.slots.count(accountcode);
  }

  close(): void {
    this.slots.close();
  }

  private limitReject(callId: string, account: string): AuthorizeDecision {
    this.log.info({ callId, accountcode: account, active: this.slots.count(account) }, 'simultaneous-call limit reached: call refused');
    return { kind: 'reject', status: this.cfg.limitStatus, reason: reasonFor(this.cfg.limitStatus, 'Call Limit Reached') };
  }

  /** The card and the rate cards that apply to the number now (async: the one database round trip). */
  private async fetch(account: string, dialled: string): Promise<Fetched> {
    const number = normaliseNumber(dialled);
    // An unusable number still needs the card row (an unknown card is 403, not 404).
    const prefixes = number ? prefixCandidates(number) : ['defaultprefix'];
    let rows: Row[];
    try {
      const [r] = await this.db!.query({ sql: Q.SELECT_CARD_AND_RATES, timeout: this.cfg.dbTimeoutMs }, [prefixes, account]);
      rows = r as Row[];
    } catch (e) {
      return { kind: 'db-error', message: (e as Error).message };
    }
    const first = rows[0];
    if (!first) return { kind: 'no-card' };
    const cardId = Number(first.card_id);
    const simultaccess = num(first.simultaccess, 0);
    if (Number(first.status) !== 1) return { kind: 'inactive', cardId, status: Number(first.status) };
    const available = availableCredit({
      credit: parseMoney(first.credit) ?? 0n,
      typepaid: num(first.typepaid, 0),
      creditlimit: parseMoney(first.creditlimit) ?? 0n,
    });
    const nowMs = this.now();
    const cands: RateCandidate[] = [];
    for (const r of rows) {
      if (r.rate_id === null || r.dialprefix === null) continue;
      cands.push({
        rateId: Number(r.rate_id),
        planId: Number(r.plan_id),
        dialprefix: r.dialprefix.trim(),
        rate: parseMoney(r.rateinitial) ?? 0n,
        initblock: num(r.initblock, 0),
        billingblock: num(r.billingblock, 0),
        connectcharge: parseMoney(r.connectcharge) ?? 0n,
        disconnectcharge: parseMoney(r.disconnectcharge) ?? 0n,
        startSec: num(r.start_ts, 0),
        stopSec: num(r.stop_ts, 0),
        planStartSec: num(r.plan_start_ts, 0),
        planStopSec: num(r.plan_stop_ts, 0),
        starttime: num(r.starttime, 0),
        endtime: num(r.endtime, 10079),
      });
    }
    const rates = number ? applicableRates(cands, number, Math.floor(nowMs / 1000), this.weekMinute(nowMs)) : [];
    return { kind: 'card', cardId, simultaccess, available, rates };
  }

  /** The maximum duration on what is left once `held` (credit of calls in progress) is set aside. Synchronous. */
  private price(f: Fetched, held: bigint): { quote: Quote; reserve: bigint } {
    if (f.kind !== 'card') return { quote: f, reserve: 0n };
    const { cardId, rates } = f;
    if (rates.length === 0) return { quote: { kind: 'no-rate', cardId }, reserve: 0n };
    const available = f.available - held;
    // Several plans may tie on the longest prefix: budget for the tightest, as A2Billing may use any of them.
    let budget: Budget = { kind: 'unlimited' };
    let used = rates[0]!;
    for (const r of rates) {
      const b = budgetSeconds(available, r);
      const t = tighter(budget, b);
      if (t === b) used = r;
      budget = t;
    }
    const availableText = formatMoney(available);
    if (budget.kind === 'none') return { quote: { kind: 'no-credit', cardId, available: availableText }, reserve: 0n };
    let maxDurationSec: number | undefined;
    let spendSec = 0;
    if (budget.kind === 'seconds') {
      maxDurationSec = budget.seconds - this.cfg.safetyMarginSec;
      // The margin eats everything: the BYE could not arrive before the money runs out.
      if (maxDurationSec <= 0) return { quote: { kind: 'no-credit', cardId, available: availableText }, reserve: 0n };
      maxDurationSec = Math.min(maxDurationSec, this.lifetimeSec);
      spendSec = Math.min(budget.seconds, this.lifetimeSec);
    }
    return {
      quote: { kind: 'ok', cardId, available: availableText, maxDurationSec, prefix: used.dialprefix, ratePerMin: formatMoney(used.rate) },
      // The most this call can cost: what is held while it is up when billing.reserveCredit is on.
      reserve: callCost(spendSec, used),
    };
  }
}
