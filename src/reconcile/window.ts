// Billing-day windows: a day in the billing timezone is [local midnight, next local midnight), as UTC.
// DST-safe: the start of a local day is found by searching the UTC instant where the local date changes,
// so a 23 h or 25 h day (and zones whose DST switch happens at midnight) come out right.

const DAY_RE = /^(\d{4})-(\d{2})-(\d{2})$/;

export interface BillingWindow {
  /** YYYY-MM-DD in the billing timezone. */
  day: string;
  timezone: string;
  startMs: number;
  endMs: number;
  /** 'YYYY-MM-DD HH:MM:SS' UTC, for SQL comparisons against UTC DATETIME columns. */
  start: string;
  end: string;
  /** 23, 24 or 25 (or anything a zone's history produces). */
  hours: number;
}

/** True for a real calendar date written YYYY-MM-DD. */
export function isValidDay(day: string): boolean {
  const m = DAY_RE.exec(day);
  if (!m) return false;
  const y = Number(m[1]), mo = Number(m[2]), d = Number(m[3]);
  const t = new Date(Date.UTC(y, mo - 1, d));
  return t.getUTCFullYear() === y && t.getUTCMonth() === mo - 1 && t.getUTCDate() === d;
}

export function isValidTimeZone(tz: string): boolean {
  if (!tz) return false;
  try {
    new Intl.DateTimeFormat('en-CA', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

function dateFormatter(tz: string): Intl.DateTimeFormat {
  return new Intl.DateTimeFormat('en-CA', { timeZone: tz, year: 'numeric', month: '2-digit', day: '2-digit' });
}

function localDate(fmt: Intl.DateTimeFormat, t: number): string {
  let y = '', m = '', d = '';
  for (const p of fmt.formatToParts(t)) {
    if (p.type === 'year') y = p.value;
    else if (p.type === 'month') m = p.value;
    else if (p.type === 'day') d = p.value;
  }
  return `${y}-${m}-${d}`;
}

/** The local date (YYYY-MM-DD) of an instant in a timezone. */
export function localDay(ms: number, tz: string): string {
  return localDate(dateFormatter(tz), ms);
}

export function addDays(day: string, n: number): string {
  const m = DAY_RE.exec(day);
  if (!m) throw new RangeError(`not a day: ${day}`);
  const t = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]) + n));
  return t.toISOString().slice(0, 10);
}

/** The first UTC instant (1 s resolution) whose local date in tz is `day` or later. */
export function startOfLocalDay(day: string, tz: string): number {
  const m = DAY_RE.exec(day);
  if (!m) throw new RangeError(`not a day: ${day}`);
  const fmt = dateFormatter(tz);
  const utcMidnight = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]));
  // UTC offsets lie within ±15 h, so the local midnight is inside this range.
  let lo = utcMidnight - 16 * 3600_000;
  let hi = utcMidnight + 16 * 3600_000;
  while (hi - lo > 1000) {
    const mid = lo + Math.floor((hi - lo) / 2000) * 1000;
    if (localDate(fmt, mid) >= day) hi = mid;
    else lo = mid;
  }
  return hi;
}

export function billingWindow(day: string, tz: string): BillingWindow {
  if (!isValidDay(day)) throw new RangeError(`not a date (YYYY-MM-DD): ${day}`);
  if (!isValidTimeZone(tz)) throw new RangeError(`unknown time zone: ${tz}`);
  const startMs = startOfLocalDay(day, tz);
  const endMs = startOfLocalDay(addDays(day, 1), tz);
  return { day, timezone: tz, startMs, endMs, start: toSqlUtc(startMs), end: toSqlUtc(endMs), hours: Math.round((endMs - startMs) / 3600_000) };
}

/** The billing day before the one containing `nowMs` (what a nightly run reconciles). */
export function previousDay(nowMs: number, tz: string): string {
  return addDays(localDay(nowMs, tz), -1);
}

/** Days from..to inclusive. */
export function daysBetween(from: string, to: string): string[] {
  const out: string[] = [];
  for (let d = from; d <= to; d = addDays(d, 1)) out.push(d);
  return out;
}

export function toSqlUtc(ms: number): string {
  return new Date(ms).toISOString().slice(0, 19).replace('T', ' ');
}

/** Parses a UTC 'YYYY-MM-DD HH:MM:SS[.fff]' from the database; NaN when empty or malformed. */
export function parseSqlUtc(s: string | null | undefined): number {
  if (!s) return NaN;
  return Date.parse(`${s.replace(' ', 'T')}Z`);
}
