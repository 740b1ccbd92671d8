// The pure heart of reconciliation: rows of one call from the gateway (gw_cdr), Asterisk (gw_ami_cdr) and
// A2Billing (cc_call) in, one classified CallResult out. No I/O: the caller feeds groups in merge-key order
// (see types.ts) and receives results through `emit`.
//
// Joining: rows sharing a call reference are one call. Rows without one (cc_call without a2b_custom1, AMI
// Cdrs without the Call-ID) carry the key 'u'+uniqueid and arrive after every callref key. A callref group
// that has cc_call rows but no AMI rows (or AMI rows but no cc_call rows) is held back ("pending") under its
// uniqueids until the uniqueid-only keys have been seen, so such calls are still joined across the sources.
// Pending groups are the discrepancy candidates only, so memory stays proportional to problems, not calls.
//
// Billing day: a call belongs to the day its start falls in (the gateway's INVITE time, else the earliest
// Asterisk/A2Billing start), so a call crossing midnight is reconciled once, on the day it started. Sources
// are read with a margin around the window so the other legs of an edge call are present.

import { callRef } from '../callref.js';
import type { GapBook } from './gaps.js';
import { round5, type RateBook } from './rating.js';
import { uidKey, type AmiCdrRow, type CallClass, type CallResult, type CardBook, type CcCallRow, type GwCdrRow } from './types.js';

export interface MatcherContext {
  /** UTC 'YYYY-MM-DD HH:MM:SS' bounds of the billing day, [start, end). */
  windowStart: string;
  windowEnd: string;
  toleranceSec: number;
  cards: CardBook;
  rates: RateBook;
  gaps: GapBook;
  /**
   * Uniqueid keys ('u'+HEX) of the rows without a call reference in each source. When given, a callref group that
   * lacks AMI rows (or cc_call rows) waits for the uniqueid-only rows only if one of its uniqueids is there;
   * otherwise it is classified at once. Without it every such group waits (fine for small inputs).
   */
  uidOnly?: { ami: ReadonlySet<string>; cc: ReadonlySet<string> };
  /** Box name for a gateway destination URI, when configuration knows it. */
  boxOfDestination?: (destination: string) => string | undefined;
}

export interface MatcherStats {
  groups: number;
  outOfWindow: number;
  /** Pending groups joined later through a uniqueid. */
  joinedByUniqueid: number;
  pendingPeak: number;
}

export interface Matcher {
  /** All rows of one merge key, keys strictly ascending. */
  group(key: string, gw: GwCdrRow[], ami: AmiCdrRow[], cc: CcCallRow[]): void;
  /** Classifies what is still pending. Call once, after the last group. */
  finish(): void;
  readonly stats: MatcherStats;
  readonly pendingCount: number;
}

interface CallGroup {
  key: string;
  gw: GwCdrRow[];
  ami: AmiCdrRow[];
  cc: CcCallRow[];
  uks: string[];
}

const sum = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0);

function minStr(a: string | null | undefined, b: string | null | undefined): string | null {
  if (!a) return b ?? null;
  if (!b) return a;
  return a < b ? a : b;
}

/**
 * The seconds A2Billing says were answered: real_sessiontime; sessiontime (the billed seconds, rounded up to the
 * rate's blocks) only on rows without it. Comparing the gateway's duration with billed seconds would flag every
 * short call on a 60 s first block.
 */
function answeredSec(c: CcCallRow): number {
  return c.realSessiontime ?? c.sessiontime ?? 0;
}

export function createMatcher(ctx: MatcherContext, emit: (r: CallResult) => void): Matcher {
  const stats: MatcherStats = { groups: 0, outOfWindow: 0, joinedByUniqueid: 0, pendingPeak: 0 };
  const pending = new Map<string, CallGroup>();
  /** destination URI → box → calls seen on both sides, to name the box of a call AMI never reported. */
  const learned = new Map<string, Map<string, number>>();

  const learn = (g: CallGroup): void => {
    const dest = g.gw[0]?.destination;
    const box = g.ami[0]?.box;
    if (!dest || !box) return;
    let m = learned.get(dest);
    if (!m) learned.set(dest, (m = new Map()));
    m.set(box, (m.get(box) ?? 0) + 1);
  };

  const boxOf = (destination: string): string | undefined => {
    const configured = ctx.boxOfDestination?.(destination);
    if (configured) return configured;
    const m = learned.get(destination);
    if (!m) return undefined;
    let best: string | undefined;
    let n = 0;
    for (const [b, c] of m) if (c > n) { best = b; n = c; }
    return best;
  };

  const remove = (g: CallGroup): void => {
    for (const uk of g.uks) if (pending.get(uk) === g) pending.delete(uk);
  };

  const absorb = (into: CallGroup, from: CallGroup): void => {
    if (into === from) return;
    remove(from);
    into.gw.push(...from.gw);
    into.ami.push(...from.ami);
    into.cc.push(...from.cc);
    if (into.key.startsWith('u') && !from.key.startsWith('u')) into.key = from.key;
    for (const uk of from.uks) if (!into.uks.includes(uk)) into.uks.push(uk);
  };

  const needsJoin = (g: CallGroup): boolean => (g.ami.length === 0) !== (g.cc.length === 0);

  /** Holds g back under its uniqueids; joins it with a pending group that shares one. */
  const park = (g: CallGroup): void => {
    const uks = new Set<string>();
    for (const r of g.cc) uks.add(uidKey(r.baseUid));
    for (const r of g.ami) uks.add(uidKey(r.uniqueid));
    g.uks = [...uks];
    const tail = ctx.uidOnly ? (g.ami.length ? ctx.uidOnly.cc : ctx.uidOnly.ami) : undefined;
    if (tail && !g.uks.some((uk) => tail.has(uk) || pending.has(uk))) {
      classify(g);
      return;
    }
    for (const uk of g.uks) {
      const other = pending.get(uk);
      if (other && other !== g) {
        absorb(g, other);
        stats.joinedByUniqueid++;
      }
    }
    if (!needsJoin(g)) {
      remove(g);
      classify(g);
      return;
    }
    for (const uk of g.uks) pending.set(uk, g);
    if (pending.size > stats.pendingPeak) stats.pendingPeak = pending.size;
  };

  /** The common case without allocations: one row per source that agree (answered and billed, or neither). */
  const fastMatched = (g: CallGroup): boolean => {
    if (g.gw.length !== 1 || g.ami.length !== 1 || g.cc.length !== 1) return false;
    const r = g.gw[0]!;
    const a = g.ami[0]!;
    const c = g.cc[0]!;
    const billed = c.terminatecauseid === 1 && (c.sessiontime ?? 0) > 0;
    if (!r.ans) return !billed && !((c.sessionbill ?? 0) > 0);
    if (!billed || a.disposition !== 'ANSWERED') return false;
    if (Math.abs(r.durationSec - answeredSec(c)) > ctx.toleranceSec) return false;
    return ctx.cards.byId(c.cardId)?.username === r.accountcode;
  };

  const classify = (g: CallGroup): void => {
    const { gw, ami, cc } = g;
    if (fastMatched(g)) {
      const r = gw[0]!;
      if (r.created < ctx.windowStart || r.created >= ctx.windowEnd) {
        stats.outOfWindow++;
        return;
      }
      const c = cc[0]!;
      emit({
        cls: 'matched', start: r.created, callid: r.callid, callref: g.key, box: ami[0]!.box, uniqueid: c.baseUid, ccCallId: c.id,
        accountGw: r.accountcode, accountBilled: r.accountcode, cardId: c.cardId, gwDuration: r.ans ? r.durationSec : 0,
        amiDuration: ami[0]!.disposition === 'ANSWERED' ? ami[0]!.billsec : 0, billedDuration: c.terminatecauseid === 1 ? answeredSec(c) : 0,
        amount: 0, detail: '', account: r.accountcode,
      });
      return;
    }
    let start: string | null = null;
    if (gw.length) for (const r of gw) start = minStr(start, r.created);
    else {
      for (const r of cc) start = minStr(start, r.start);
      for (const r of ami) start = minStr(start, r.start);
    }
    if (!start || start < ctx.windowStart || start >= ctx.windowEnd) {
      stats.outOfWindow++;
      return;
    }
    emit(classifyCall(g, start));
  };

  const classifyCall = (g: CallGroup, start: string): CallResult => {
    const { gw, ami, cc } = g;
    const tol = ctx.toleranceSec;
    const gwAnsweredRows = gw.filter((r) => r.ans);
    const gwRow = gwAnsweredRows[0] ?? gw[0];
    const gwAnswered = gwAnsweredRows.length > 0;
    const gwDur = gw.length ? sum(gwAnsweredRows.map((r) => r.durationSec)) : null;

    const amiAnswered = ami.filter((r) => r.disposition === 'ANSWERED');
    const amiDur = ami.length ? sum(amiAnswered.map((r) => r.billsec)) : null;

    // A2Billing answered = terminatecauseid 1 with billed seconds; retries are the other rows of the call.
    const ccAnswered = cc.filter((r) => r.terminatecauseid === 1 && (r.sessiontime ?? 0) > 0);
    const billedDur = cc.length ? sum(ccAnswered.map(answeredSec)) : null;
    const ccChargedRows = cc.filter((r) => (r.sessionbill ?? 0) > 0 || (r.terminatecauseid === 1 && (r.sessiontime ?? 0) > 0));
    const billedAmount = round5(sum(cc.map((r) => r.sessionbill ?? 0)));
    const charged = ccChargedRows.length > 0;
    const cardRows = charged ? ccChargedRows : cc;
    const cardIds = [...new Set(cardRows.map((r) => r.cardId))];
    const billedNames = cardIds.map((id) => ctx.cards.byId(id)?.username ?? `#${id}`);
    const mainCc = ccChargedRows[ccChargedRows.length - 1] ?? cc[cc.length - 1];

    const callid = gwRow?.callid || ami.find((r) => r.callid)?.callid || '';
    const callref = !g.key.startsWith('u') ? g.key : callid ? callRef(callid) : '';
    const accountGw = gwRow?.accountcode ?? '';
    const account = accountGw || (billedNames[0] ?? '') || (ami[0]?.accountcode ?? '');
    const gwBox = gwRow ? boxOf(gwRow.destination) : undefined;
    const box = ami[0]?.box ?? gwBox ?? '';
    const uniqueid = mainCc?.baseUid ?? ami[0]?.uniqueid ?? '';
    const number = mainCc?.calledstation || gwRow?.dstUser || ami[0]?.dst || '';

    const base = {
      start, callid, callref, box, uniqueid,
      ccCallId: mainCc?.id ?? null,
      accountGw,
      accountBilled: billedNames.join(','),
      cardId: cardIds.length === 1 ? cardIds[0]! : null,
      gwDuration: gwDur, amiDuration: amiDur, billedDuration: billedDur,
      account,
    };
    const result = (cls: CallClass, amount: number, detail: string): CallResult => ({ ...base, cls, amount: round5(Math.max(0, amount)), detail: detail.slice(0, 512) });
    const priceFor = (username: string, sec: number): number | undefined => {
      const card = ctx.cards.byUsername(username);
      return card ? ctx.rates.price(card.tariff, number, sec) : undefined;
    };
    const amiNote = (): string => (ami.length ? `AMI: ${amiDur}s answered on ${box}` : 'no AMI record either');

    if (!gw.length) {
      if (charged) {
        return result('bypass', billedAmount, `A2Billing billed ${billedDur ?? 0}s (${billedAmount}) to ${billedNames.join(',')} for a call the gateway never saw; ${cc.length} cc_call row(s)`);
      }
      if (amiAnswered.length) {
        const acct = ami[0]!.accountcode;
        const price = priceFor(acct, amiDur ?? 0);
        return result('bypass', price ?? 0, `answered on Asterisk ${box} for ${amiDur}s (accountcode "${acct}") without the gateway and without a bill${price === undefined ? '; no rate for it' : ''}`);
      }
      return result('bypass', 0, `unanswered attempt reached Asterisk ${box || '(unknown box)'} without the gateway${cc.length ? `; ${cc.length} unbilled cc_call row(s)` : ''}`);
    }

    if (!gwAnswered) {
      if (charged) {
        return result('unanswered_billed', billedAmount, `gateway: not answered (${gwRow!.sipCode} ${gwRow!.endReason}); A2Billing billed ${billedDur ?? 0}s (${billedAmount}) to ${billedNames.join(',')}`);
      }
      return result('matched', 0, '');
    }

    if (!charged) {
      const price = priceFor(accountGw, gwDur ?? 0);
      const why = cc.length ? `${cc.length} cc_call row(s), none answered or billed` : 'no cc_call row';
      return result('unbilled', price ?? 0, `answered ${gwDur}s through the gateway, ${why}; ${amiNote()}${price === undefined ? `; no rate for account "${accountGw}" to ${number}` : ''}`);
    }

    const wrong = billedNames.filter((n) => n !== accountGw);
    if (wrong.length) {
      const wrongAmount = round5(sum(cc.filter((r) => (ctx.cards.byId(r.cardId)?.username ?? `#${r.cardId}`) !== accountGw).map((r) => r.sessionbill ?? 0)));
      return result('account_mismatch', wrongAmount, `gateway injected account ${accountGw || '(none)'}, A2Billing billed ${wrong.join(',')} (${wrongAmount})`);
    }

    const diff = (gwDur ?? 0) - (billedDur ?? 0);
    if (Math.abs(diff) > tol) {
      const expected = priceFor(accountGw, gwDur ?? 0);
      const amount = expected === undefined ? 0 : Math.abs(expected - billedAmount);
      const dir = diff > 0 ? `under-billed by ${diff}s` : `over-billed by ${-diff}s`;
      return result('duration_mismatch', amount, `gateway ${gwDur}s, A2Billing ${billedDur}s in ${ccAnswered.length} answered row(s): ${dir}; expected ${expected ?? '?'} billed ${billedAmount}`);
    }

    if (!ami.length) {
      const t = gwRow!.endMs;
      const where = gwBox ?? '(box unknown: any box)';
      if (ctx.gaps.inGap(gwBox, t)) return result('ami_missing_gap', 0, `no AMI Cdr; AMI to ${where} was disconnected when the call ended`);
      return result('ami_missing', 0, `no AMI Cdr although AMI to ${where} was connected; billing agrees with the gateway`);
    }

    return result('matched', 0, '');
  };

  return {
    stats,
    get pendingCount() {
      return new Set(pending.values()).size;
    },
    group(key, gw, ami, cc) {
      stats.groups++;
      const g: CallGroup = { key, gw, ami, cc, uks: [] };
      if (key.startsWith('u')) {
        const p = pending.get(key);
        if (p) {
          absorb(p, g);
          remove(p);
          stats.joinedByUniqueid++;
          classify(p);
        } else {
          classify(g);
        }
        return;
      }
      if (gw.length && ami.length) learn(g);
      if (needsJoin(g)) park(g);
      else classify(g);
    },
    finish() {
      const left = new Set(pending.values());
      pending.clear();
      for (const g of left) classify(g);
    },
  };
}
