// A2Billing's rating rules, pure and exact: which rate card applies to a dialled number at a given time,
// and how many seconds an amount of credit buys on it. Money is handled as integers of 1e-5 (A2Billing's
// DECIMAL(15,5)) in bigint, so 0.10 at 0.06/min in 6 s blocks is exactly 96 s, never 95 by a rounding error.

/** 1 currency unit = 100000 money units (DECIMAL(15,5)). */
export const MONEY_SCALE = 100000n;

/** Longest prefix A2Billing's dialprefix column (char(30)) can hold. */
export const MAX_PREFIX_LEN = 30;

/** A2Billing's catch-all rate, used only when no real prefix matches. */
export const DEFAULT_PREFIX = 'defaultprefix';

/** Largest duration we ever hand out (keeps the number a safe integer; the dialog lifetime caps it anyway). */
export const MAX_SECONDS = 1_000_000_000;

/**
 * Decimal text (or number) → money units, truncating digits beyond the fifth decimal.
 * Returns undefined for anything that is not a plain decimal.
 */
export function parseMoney(v: string | number | bigint | null | undefined): bigint | undefined {
  if (v === null || v === undefined) return undefined;
  if (typeof v === 'bigint') return v * MONEY_SCALE;
  const s = typeof v === 'number' ? (Number.isFinite(v) ? v.toFixed(5) : '') : v.trim();
  let i = 0;
  let neg = false;
  if (s[0] === '-' || s[0] === '+') {
    neg = s[0] === '-';
    i = 1;
  }
  let int = 0n;
  let frac = 0n;
  let fracDigits = 0;
  let digits = 0;
  let dot = false;
  for (; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 46 /* . */ && !dot) {
      dot = true;
      continue;
    }
    if (c < 48 || c > 57) return undefined;
    digits++;
    const d = BigInt(c - 48);
    if (!dot) int = int * 10n + d;
    else if (fracDigits < 5) {
      frac = frac * 10n + d;
      fracDigits++;
    }
  }
  if (digits === 0) return undefined;
  for (; fracDigits < 5; fracDigits++) frac *= 10n;
  const units = int * MONEY_SCALE + frac;
  return neg ? -units : units;
}

/** Money units → decimal text with 5 decimals (for logs and the management view). */
export function formatMoney(units: bigint): string {
  const neg = units < 0n;
  const a = neg ? -units : units;
  const int = a / MONEY_SCALE;
  const frac = (a % MONEY_SCALE).toString().padStart(5, '0');
  return `${neg ? '-' : ''}${int}.${frac}`;
}

/**
 * The number to rate, from the Request-URI user: visual separators removed, a leading '+' or '00'
 * (international prefix) stripped. Undefined when what remains is not 1-30 digits: such a number has no rate.
 */
export function normaliseNumber(user: string): string | undefined {
  if (user.length === 0 || user.length > 64) return undefined;
  let s = '';
  for (let i = 0; i < user.length; i++) {
    const c = user[i]!;
    if (c === '-' || c === '.' || c === '(' || c === ')' || c === ' ') continue;
    s += c;
  }
  if (s.startsWith('+')) s = s.slice(1);
  else if (s.startsWith('00')) s = s.slice(2);
  if (s.length === 0 || s.length > MAX_PREFIX_LEN) return undefined;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return undefined;
  }
  return s;
}

/** Every prefix of the number, longest first, then A2Billing's catch-all: the dialprefix values to look up. */
export function prefixCandidates(number: string): string[] {
  const out: string[] = [];
  for (let n = number.length; n >= 1; n--) out.push(number.slice(0, n));
  out.push(DEFAULT_PREFIX);
  return out;
}

const WEEKDAY: Record<string, number> = { Mon: 0, Tue: 1, Wed: 2, Thu: 3, Fri: 4, Sat: 5, Sun: 6 };

/**
 * A2Billing's "minutes since Monday 00:00" (0..10079) in the given timezone; the rate card's
 * starttime/endtime window is matched against it. Build once (validates the timezone), call per request.
 */
export function weekMinuteClock(timeZone: string): (ms: number) => number {
  const fmt = new Intl.DateTimeFormat('en-US', { timeZone, weekday: 'short', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
  return (ms: number) => {
    let day = 0;
    let hour = 0;
    let minute = 0;
    for (const p of fmt.formatToParts(ms)) {
      if (p.type === 'weekday') day = WEEKDAY[p.value] ?? 0;
      else if (p.type === 'hour') hour = Number(p.value) % 24;
      else if (p.type === 'minute') minute = Number(p.value);
    }
    return day * 1440 + hour * 60 + minute;
  };
}

/** One cc_ratecard row reached through the card's tariff group (plan validity included). */
export interface RateCandidate {
  rateId: number;
  planId: number;
  dialprefix: string;
  /** Money units per minute. */
  rate: bigint;
  initblock: number;
  billingblock: number;
  connectcharge: bigint;
  disconnectcharge: bigint;
  /** Unix seconds; 0 means "not set" (A2Billing's zero date): no start / no end. */
  startSec: number;
  stopSec: number;
  planStartSec: number;
  planStopSec: number;
  /** Minutes of the week, inclusive window (A2Billing: starttime <= now AND endtime >= now). */
  starttime: number;
  endtime: number;
}

/** A2Billing's validity test: plan and card dates (stop exclusive) and the week-minute window (inclusive). */
export function isRateValid(r: RateCandidate, nowSec: number, weekMinute: number): boolean {
  if (r.planStartSec > nowSec) return false;
  if (r.planStopSec !== 0 && r.planStopSec <= nowSec) return false;
  if (r.startSec > nowSec) return false;
  if (r.stopSec !== 0 && r.stopSec <= nowSec) return false;
  return r.starttime <= weekMinute && r.endtime >= weekMinute;
}

/**
 * The rate cards that apply: valid now, with the longest matching dialprefix (the catch-all only when no
 * real prefix matches). Several plans of one tariff group may tie; all of them are returned so the caller
 * can budget for the most expensive one (A2Billing may fail over to any of them).
 */
export function applicableRates(cands: readonly RateCandidate[], number: string, nowSec: number, weekMinute: number): RateCandidate[] {
  let best: RateCandidate[] = [];
  let bestLen = -1;
  const fallback: RateCandidate[] = [];
  for (const r of cands) {
    if (!isRateValid(r, nowSec, weekMinute)) continue;
    if (r.dialprefix === DEFAULT_PREFIX) {
      fallback.push(r);
      continue;
    }
    if (r.dialprefix.length === 0 || !number.startsWith(r.dialprefix)) continue;
    if (r.dialprefix.length > bestLen) {
      bestLen = r.dialprefix.length;
      best = [r];
    } else if (r.dialprefix.length === bestLen) best.push(r);
  }
  return best.length > 0 ? best : fallback;
}

export type Budget =
  /** The credit does not cover the charges and the first block. */
  | { kind: 'none' }
  /** A free route (rate 0): only the dialog's default lifetime limits the call. */
  | { kind: 'unlimited' }
  | { kind: 'seconds'; seconds: number };

const abs = (v: bigint) => (v < 0n ? -v : v);

/**
 * Seconds the available credit buys on a rate: connect (and disconnect) charge first, then the initial block
 * at the initial rate, then whole billing blocks. A2Billing takes charges and rates as absolute values and
 * treats a zero rate as a free route; a billing block of 0 bills per second.
 */
export function budgetSeconds(available: bigint, r: Pick<RateCandidate, 'rate' | 'initblock' | 'billingblock' | 'connectcharge' | 'disconnectcharge'>): Budget {
  const after = available - abs(r.connectcharge) - abs(r.disconnectcharge);
  if (after < 0n) return { kind: 'none' };
  const rate = abs(r.rate);
  if (rate === 0n) return { kind: 'unlimited' };
  // Work in money units × 60 so that a block of b seconds costs exactly rate × b.
  const budget60 = after * 60n;
  const init = BigInt(Math.max(0, Math.trunc(r.initblock)));
  const block = BigInt(r.billingblock > 0 ? Math.trunc(r.billingblock) : 1);
  let seconds: bigint;
  if (init > 0n) {
    const initCost = rate * init;
    if (budget60 < initCost) return { kind: 'none' };
    seconds = init + ((budget60 - initCost) / (rate * block)) * block;
  } else {
    seconds = (budget60 / (rate * block)) * block;
    if (seconds === 0n) return { kind: 'none' };
  }
  return { kind: 'seconds', seconds: seconds > BigInt(MAX_SECONDS) ? MAX_SECONDS : Number(seconds) };
}

/**
 * What a call of `seconds` costs on a rate (A2Billing's sell side): charges, the initial block at least, then
 * whole billing blocks, rounded up to the money unit. The inverse of budgetSeconds: cost(budget) <= credit.
 */
export function callCost(seconds: number, r: Pick<RateCandidate, 'rate' | 'initblock' | 'billingblock' | 'connectcharge' | 'disconnectcharge'>): bigint {
  const charges = abs(r.connectcharge) + abs(r.disconnectcharge);
  const rate = abs(r.rate);
  if (rate === 0n || seconds <= 0) return charges;
  const init = Math.max(0, Math.trunc(r.initblock));
  const block = r.billingblock > 0 ? Math.trunc(r.billingblock) : 1;
  let billed = Math.max(Math.trunc(seconds), init);
  if (billed > init) billed = init + Math.ceil((billed - init) / block) * block;
  return charges + (rate * BigInt(billed) + 59n) / 60n;
}

/** The tighter of two budgets (none < seconds < unlimited). */
export function tighter(a: Budget, b: Budget): Budget {
  if (a.kind === 'none' || b.kind === 'none') return { kind: 'none' };
  if (a.kind === 'unlimited') return b;
  if (b.kind === 'unlimited') return a;
  return a.seconds <= b.seconds ? a : b;
}

/** Credit a card may spend: prepaid = credit; postpaid = credit + creditlimit (credit goes negative as it is used). */
export function availableCredit(card: { credit: bigint; typepaid: number; creditlimit: bigint }): bigint {
  return card.typepaid === 1 ? card.credit + card.creditlimit : card.credit;
}
