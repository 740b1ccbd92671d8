// The A2Billing side effect of a call through an (emulated) Asterisk box: one cc_call row per dial attempt, as
// a2billing.php's AGI writes it. Card by account code (cc_card.username; unknown or inactive → no row, as the AGI
// hangs up), rate = longest dial prefix over the card's tariff group, cost on the seconds rounded to initblock /
// billingblock, a retry inside one call adds 1000000000 to the uniqueid.
// sessiontime = the billed seconds (answered time rounded up to initblock/billingblock, the team's reading of the
// schema); real_sessiontime = the answered seconds. Reconciliation compares durations on real_sessiontime, which is
// right under either reading: sessiontimeMode 'answered' stores the answered seconds in sessiontime too (what the
// AGI's rate engine does when the rate has no rounding_calltime), to check that.
import { sqlDateTimeSec } from '../ami/time.js';
import type { Db } from '../db/pool.js';
import { INSERT_CC_CALL, SELECT_CARD_BY_ACCOUNTCODE, SELECT_RATE_FOR_NUMBER } from '../db/queries/emulator.js';

/** cc_call.terminatecauseid. */
export const TERMINATE_CAUSE = { ANSWER: 1, BUSY: 2, NOANSWER: 3, CANCEL: 4, CONGESTION: 5, CHANUNAVAIL: 6 } as const;
export type TerminateCause = (typeof TERMINATE_CAUSE)[keyof typeof TERMINATE_CAUSE];

export interface Card { id: number; tariff: number; status: number }
export interface Rate {
  id: number; idtariffplan: number; idtariffgroup: number; dialprefix: string; rateinitial: number; initblock: number;
  billingblock: number; connectcharge: number; disconnectcharge: number;
}

/** A2Billing's rounding: at least initblock, then whole billingblocks. 0 answered seconds bill 0. */
export function billedSeconds(answered: number, initblock: number, billingblock: number): number {
  if (answered <= 0) return 0;
  if (answered <= initblock) return Math.max(initblock, answered);
  const rest = answered - initblock;
  const block = billingblock > 0 ? billingblock : 1;
  return initblock + Math.ceil(rest / block) * block;
}

/** Cost of a call: per-minute rate on the billed seconds, plus connect/disconnect charges when answered. */
export function callCost(rate: Rate | undefined, billed: number): number {
  if (!rate || billed <= 0) return 0;
  const cost = (Number(rate.rateinitial) * billed) / 60 + Number(rate.connectcharge) + Number(rate.disconnectcharge);
  return Math.round(cost * 100000) / 100000;
}

/** `1795320443.5` + n × 1000000000 (how the AGI numbers a retry inside one call). */
export function retryUniqueId(uniqueId: string, attempt: number): string {
  if (attempt === 0) return uniqueId;
  const dot = uniqueId.indexOf('.');
  const int = dot < 0 ? uniqueId : uniqueId.slice(0, dot);
  return `${Number(int) + attempt * 1_000_000_000}${dot < 0 ? '' : uniqueId.slice(dot)}`;
}

export interface CcCallInput {
  uniqueId: string;
  /** The inbound channel name (cc_call.sessionid). */
  channel: string;
  cardId: number;
  /** UTC epoch ms. */
  start: number;
  stop: number;
  /** Seconds the callee talked (answered). */
  answeredSec: number;
  calledStation: string;
  src: string;
  dnid: string;
  cause: TerminateCause;
  callref: string | null;
  rate: Rate | undefined;
  /** 'blocks' (default): sessiontime = the block-rounded billed seconds; 'answered': the answered seconds. */
  sessiontimeMode?: 'answered' | 'blocks';
  /** Fault: seconds added to the billed and real durations. */
  skewSec?: number;
}

export interface CcCallWritten { id: number; sessiontime: number; billedSeconds: number; realSessiontime: number; sessionbill: number }

/** cc_call times are TIMESTAMP columns; the test and demo databases run in UTC. */
const ts = sqlDateTimeSec;

export class A2BillingSide {
  constructor(private readonly db: Db) {}

  async card(accountCode: string): Promise<Card | undefined> {
    if (accountCode === '') return undefined;
    const [rows] = await this.db.query(SELECT_CARD_BY_ACCOUNTCODE, [accountCode]);
    const r = (rows as Array<{ id: number; tariff: number | null; status: number }>)[0];
    return r ? { id: Number(r.id), tariff: Number(r.tariff ?? 0), status: Number(r.status) } : undefined;
  }

  async rate(tariffGroup: number, number: string): Promise<Rate | undefined> {
    const [rows] = await this.db.query(SELECT_RATE_FOR_NUMBER, [tariffGroup, number]);
    const r = (rows as Array<Record<string, unknown>>)[0];
    if (!r) return undefined;
    return {
      id: Number(r.id), idtariffplan: Number(r.idtariffplan), idtariffgroup: Number(r.idtariffgroup), dialprefix: String(r.dialprefix),
      rateinitial: Number(r.rateinitial), initblock: Number(r.initblock), billingblock: Number(r.billingblock),
      connectcharge: Number(r.connectcharge), disconnectcharge: Number(r.disconnectcharge),
    };
  }

  async writeCall(c: CcCallInput): Promise<CcCallWritten> {
    const skew = c.skewSec ?? 0;
    const real = Math.max(0, c.answeredSec + skew);
    const billed = c.cause === TERMINATE_CAUSE.ANSWER
      ? billedSeconds(real, c.rate?.initblock ?? 1, c.rate?.billingblock ?? 1)
      : 0;
    const bill = callCost(c.rate, billed);
    const sessiontime = c.cause !== TERMINATE_CAUSE.ANSWER ? 0 : c.sessiontimeMode === 'answered' ? real : billed;
    const [res] = await this.db.query(INSERT_CC_CALL, [
      c.channel.slice(0, 40), c.uniqueId.slice(0, 30), c.cardId, ts(c.start), ts(c.stop + skew * 1000), sessiontime,
      c.calledStation.slice(0, 100), bill, c.rate?.idtariffgroup ?? null, c.rate?.idtariffplan ?? null, c.rate?.id ?? null,
      c.src.slice(0, 40), real, c.dnid.slice(0, 40), c.cause, c.callref === null ? null : c.callref.slice(0, 20),
    ]);
    return { id: Number((res as { insertId: number }).insertId), sessiontime, billedSeconds: billed, realSessiontime: real, sessionbill: bill };
  }
}
