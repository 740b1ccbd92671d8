// The dispatcher: destination sets loaded from gw_dispatcher, selection per set, failover marking,
// the probe state machine, and active-call counting for least-calls. Implements the proxy's `route`
// and `targetFailed` hooks; it never sends SIP itself (the Prober is handed ProxyActions.probe).
//
// States (gw_dispatcher.state codes 0..3), like Kamailio/OpenSIPS:
//   active    used for new calls; probed; `probeFailThreshold` consecutive failed probes → inactive;
//             a failed forwarding attempt (408/5xx/timeout/transport, via targetFailed) → probing.
//   probing   suspected bad: used ONLY as a last resort, after every active destination of the set
//             (Kamailio keeps an "active+probing" box selectable; we demote it behind healthy ones so one
//             overloaded box does not eat fresh calls, yet a set whose boxes all answered 503 once still
//             routes instead of answering 503 itself). Probed; `probeOkThreshold` answered probes → active,
//             `probeFailThreshold` failed ones → inactive.
//   inactive  never used; probed; `probeOkThreshold` answered probes → active.
//   disabled  administrative: never used, never probed, until an admin sets another state.
// Any response to OPTIONS (even 4xx/5xx) means the box is alive; only timeouts/transport errors fail a probe.
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { Authenticated, CallEvent, ProxyHooks, RequestFacts, RouteDecision, Target, TargetFailure } from '../proxy/hooks.js';
import { type Algorithm, compareDestinationIds, orderTier } from './algorithms.js';
import { buildDestination, type DestState, type Destination, type DestinationView, type DispatcherRow, parseDestinationUri, viewOf } from './destination.js';
import { fnv1a32 } from './hash.js';

export type DispatchConfig = Config['dispatch'];

export interface DispatcherOptions {
  config: DispatchConfig;
  log: Logger;
  metrics?: Metrics;
  /** Clock (ms since epoch); injectable for tests. */
  now?: () => number;
  /** Calls tracked but never answered are forgotten after this long (lost events). Default 10 minutes. */
  pendingCallMaxMs?: number;
  /** Answered calls never reported ended are forgotten after this long. Default 24 hours. */
  answeredCallMaxMs?: number;
}

export interface LoadSummary {
  sets: number;
  destinations: number;
  added: number;
  kept: number;
  removed: number;
  /** Rows skipped, one line each naming the row and the problem. */
  problems: string[];
}

interface DestSet {
  readonly setId: number;
  /** Sorted by id. */
  readonly dests: readonly Destination[];
}

interface TrackedCall {
  /** Destination currently holding the call (counted in its activeCalls), if any. */
  destId: string | undefined;
  /** Target ids in the order handed to the proxy, to follow serial failover. */
  order: readonly string[];
  answered: boolean;
  since: number;
}

/** The dispatcher's share of ProxyHooks (route is synchronous here). */
export interface DispatchHooks extends Required<Pick<ProxyHooks, 'targetFailed' | 'onCallEvent'>> {
  route(facts: RequestFacts, auth: Authenticated | undefined): RouteDecision;
}

/** Runtime fields a reload carries over for a destination that still exists (same id and URI). */
const RUNTIME_FIELDS = ['state', 'fails', 'oks', 'activeCalls', 'selected', 'failures', 'probesOk', 'probesFailed',
  'lastProbeAt', 'lastProbeStatus', 'lastFailure', 'stateChangedAt'] as const;

export class Dispatcher {
  private readonly cfg: DispatchConfig;
  private readonly log: Logger;
  private readonly metrics: Metrics | undefined;
  private readonly now: () => number;
  private readonly pendingCallMaxMs: number;
  private readonly answeredCallMaxMs: number;
  private sets = new Map<number, DestSet>();
  private byId = new Map<string, Destination>();
  private readonly rr = new Map<number, number>();
  private readonly calls = new Map<string, TrackedCall>();
  private loadedAt: number | undefined;

  constructor(opts: DispatcherOptions) {
    this.cfg = opts.config;
    this.log = opts.log;
    this.metrics = opts.metrics;
    this.now = opts.now ?? Date.now;
    this.pendingCallMaxMs = opts.pendingCallMaxMs ?? 10 * 60_000;
    this.answeredCallMaxMs = opts.answeredCallMaxMs ?? 24 * 3_600_000;
  }

  // ---------------------------------------------------------------- loading

  /**
   * Replaces all sets with `rows` in one swap. Destinations that still exist (same id and same URI) keep
   * their runtime state (state, probe counters, active calls) unless the row's state column changed since
   * the last load, in which case the database wins (an operator edited the table on purpose).
   * Bad rows are skipped and reported; they never abort the load.
   */
  load(rows: readonly DispatcherRow[]): LoadSummary {
    const now = this.now();
    const problems: string[] = [];
    const byId = new Map<string, Destination>();
    const grouped = new Map<number, Destination[]>();
    const seenUri = new Set<string>();
    let kept = 0;
    for (const row of rows) {
      const where = `gw_dispatcher id ${row.id} (set ${row.setid})`;
      const parsed = parseDestinationUri(String(row.destination ?? ''));
      if ('problem' in parsed) { problems.push(`${where}: ${parsed.problem}`); continue; }
      if (!Number.isInteger(row.state) || row.state < 0 || row.state > 3) { problems.push(`${where}: state ${row.state} is not 0..3`); continue; }
      if (!Number.isInteger(row.weight) || row.weight < 0) { problems.push(`${where}: weight ${row.weight} is not a non-negative integer`); continue; }
      const key = `${row.setid}\n${row.destination.trim().toLowerCase()}`;
      if (seenUri.has(key)) { problems.push(`${where}: duplicate destination ${row.destination} in the set`); continue; }
      seenUri.add(key);
      const d = buildDestination(row, parsed, now);
      const old = this.byId.get(d.id);
      if (old && old.uri === d.uri && old.setId === d.setId) {
        kept++;
        const o = old as unknown as Record<string, unknown>;
        const n = d as unknown as Record<string, unknown>;
        for (const f of RUNTIME_FIELDS) n[f] = o[f];
        if (old.dbState !== d.dbState) this.applyState(d, d.dbState, 'database state changed');
      }
      byId.set(d.id, d);
      let list = grouped.get(d.setId);
      if (!list) grouped.set(d.setId, (list = []));
      list.push(d);
    }
    const sets = new Map<number, DestSet>();
    for (const [setId, list] of grouped) sets.set(setId, { setId, dests: list.sort(compareDestinationIds) });
    let removed = 0;
    for (const id of this.byId.keys()) if (!byId.has(id) || byId.get(id)!.uri !== this.byId.get(id)!.uri) removed++;
    // The swap: route() sees either the old sets or the new ones, never a mix.
    this.sets = sets;
    this.byId = byId;
    this.loadedAt = now;
    const summary: LoadSummary = { sets: sets.size, destinations: byId.size, added: byId.size - kept, kept, removed, problems };
    for (const p of problems) this.log.warn({ problem: p }, 'dispatcher row skipped');
    this.log.info({ sets: summary.sets, destinations: summary.destinations, added: summary.added, kept, removed, skipped: problems.length }, 'dispatcher loaded');
    if (!sets.has(this.cfg.setId)) this.log.warn({ setId: this.cfg.setId }, 'dispatch.setId has no destinations: new calls get 503');
    return summary;
  }

  // ---------------------------------------------------------------- routing (proxy hooks)

  /**
   * The dispatcher's part of ProxyHooks, bound to this instance. `onCallEvent` must be called for every
   * CallEvent (fan it out next to acc and dialog) or active-call counts only drain through sweepCalls().
   */
  hooks(): DispatchHooks {
    return {
      route: (facts, auth) => this.route(facts, auth),
      targetFailed: (target, failure) => this.targetFailed(target, failure),
      onCallEvent: (ev) => this.onCallEvent(ev),
    };
  }

  /** The proxy's route hook: ordered targets of dispatch.setId, or 503 with Retry-After when none is usable. */
  route(facts: RequestFacts, _auth?: Authenticated): RouteDecision {
    return this.routeSet(this.cfg.setId, facts);
  }

  routeSet(setId: number, facts: Pick<RequestFacts, 'callId' | 'fromUser'>): RouteDecision {
    const targets = this.select(setId, facts);
    const set = String(setId);
    if (targets.length === 0) {
      this.metrics?.dispatcherSelections.inc({ set, id: 'none' });
      this.log.warn({ setId, callId: facts.callId }, 'no usable destination');
      return {
        kind: 'reject',
        status: 503,
        reason: 'Service Unavailable',
        headers: this.cfg.retryAfterSec > 0 ? [['Retry-After', String(this.cfg.retryAfterSec)]] : [],
      };
    }
    const first = this.byId.get(targets[0]!.id);
    if (first) first.selected++;
    this.metrics?.dispatcherSelections.inc({ set, id: targets[0]!.id });
    this.track(facts.callId, targets);
    return { kind: 'targets', targets };
  }

  /** Algorithm configured for a set. */
  algorithmOf(setId: number): Algorithm {
    return this.cfg.algorithms[String(setId)] ?? this.cfg.defaultAlgorithm;
  }

  /**
   * Ordered targets for serial failover: active destinations in the algorithm's order, then probing ones
   * (last resort) in the same algorithm's order. Inactive and disabled destinations are never returned.
   */
  select(setId: number, facts: Pick<RequestFacts, 'callId' | 'fromUser'>): Target[] {
    const set = this.sets.get(setId);
    if (!set) return [];
    const active: Destination[] = [];
    const probing: Destination[] = [];
    for (const d of set.dests) {
      if (d.state === 'active') active.push(d);
      else if (d.state === 'probing') probing.push(d);
    }
    if (active.length === 0 && probing.length === 0) return [];
    const alg = this.algorithmOf(setId);
    const key = alg === 'hash-from' && facts.fromUser ? facts.fromUser : facts.callId;
    let rrIndex = 0;
    if (alg === 'round-robin') {
      rrIndex = this.rr.get(setId) ?? 0;
      this.rr.set(setId, (rrIndex + 1) % 1_000_000_007);
    }
    const input = { keyHash: fnv1a32(key), rrIndex };
    const out: Target[] = [];
    for (const d of orderTier(alg, active, input)) out.push(d.target);
    for (const d of orderTier(alg, probing, input)) out.push(d.target);
    return out;
  }

  /** The proxy's targetFailed hook: an active destination that failed a call is demoted to probing. */
  targetFailed(target: Target, failure: TargetFailure): void {
    const d = this.byId.get(target.id);
    if (!d) return;
    if (failure.kind === 'status' && !this.isFailoverStatus(failure.status)) return;
    d.failures++;
    d.lastFailure = failure.kind === 'status' ? `status ${failure.status}` : failure.kind === 'transport' ? `transport: ${failure.message}` : 'timeout';
    this.metrics?.dispatcherTargetFailures.inc({ set: String(d.setId), id: d.id, kind: failure.kind });
    if (d.state === 'active') this.applyState(d, 'probing', `call failed (${d.lastFailure})`);
  }

  private isFailoverStatus(status: number): boolean {
    return status === 408 || (status >= 500 && status <= 599) || this.cfg.failoverCodes.includes(status);
  }

  // ---------------------------------------------------------------- probing state machine

  /** Destinations the prober should OPTION now: every loaded one except disabled. */
  probeTargets(): Target[] {
    const out: Target[] = [];
    for (const d of this.byId.values()) if (d.state !== 'disabled') out.push(d.target);
    return out;
  }

  /** Result of one OPTIONS probe: any status > 0 means alive; 0 means timeout or transport error. */
  probeResult(target: Target, status: number): void {
    const d = this.byId.get(target.id);
    // The destination may have been removed or re-pointed by a reload while the probe was in flight.
    if (!d || d.uri !== target.uri) return;
    d.lastProbeAt = this.now();
    d.lastProbeStatus = status;
    const ok = status > 0;
    this.metrics?.dispatcherProbes.inc({ set: String(d.setId), id: d.id, result: ok ? 'ok' : 'fail' });
    if (d.state === 'disabled') return;
    if (ok) {
      d.probesOk++;
      d.fails = 0;
      d.oks++;
      if ((d.state === 'inactive' || d.state === 'probing') && d.oks >= this.cfg.probeOkThreshold) {
        this.applyState(d, 'active', `${d.oks} answered probe(s)`);
      }
    } else {
      d.probesFailed++;
      d.oks = 0;
      d.fails++;
      if ((d.state === 'active' || d.state === 'probing') && d.fails >= this.cfg.probeFailThreshold) {
        this.applyState(d, 'inactive', `${d.fails} failed probe(s)`);
      }
    }
  }

  /** Administrative state change (mgmt). Returns the new view, or undefined for an unknown id. */
  setState(id: string, state: DestState, by: string = 'admin'): DestinationView | undefined {
    const d = this.byId.get(id);
    if (!d) return undefined;
    this.applyState(d, state, `set by ${by}`);
    return viewOf(d);
  }

  private applyState(d: Destination, to: DestState, why: string): void {
    const from = d.state;
    d.fails = 0;
    d.oks = 0;
    if (from === to) return;
    d.state = to;
    d.stateChangedAt = this.now();
    this.metrics?.dispatcherStateChanges.inc({ set: String(d.setId), id: d.id, to });
    const fields = { destination: d.uri, id: d.id, setId: d.setId, from, to, why };
    if (to === 'active' || to === 'disabled') this.log.info(fields, 'destination state changed');
    else this.log.warn(fields, 'destination state changed');
  }

  // ---------------------------------------------------------------- active calls (least-calls, mgmt)

  /**
   * Consumes the proxy's CallEvents to keep per-destination active-call counts. A call counts on its
   * current target from route() until it fails or its dialog ends; serial failover moves it along the
   * order route() returned. Wire it as (part of) ProxyHooks.onCallEvent. Never throws.
   */
  onCallEvent(ev: CallEvent): void {
    switch (ev.type) {
      case 'attempt-failed': {
        const t = this.calls.get(ev.facts.callId);
        if (!t || t.destId !== ev.target.id) return;
        this.adjust(t.destId, -1);
        const next = t.order[t.order.indexOf(ev.target.id) + 1];
        t.destId = next;
        if (next !== undefined) this.adjust(next, +1);
        return;
      }
      case 'answered': {
        const t = this.calls.get(ev.facts.callId);
        if (!t) { this.callStarted(ev.facts.callId, ev.target.id); this.calls.get(ev.facts.callId)!.answered = true; return; }
        if (t.destId !== ev.target.id) {
          if (t.destId !== undefined) this.adjust(t.destId, -1);
          this.adjust(ev.target.id, +1);
          t.destId = ev.target.id;
        }
        t.answered = true;
        return;
      }
      case 'failed':
        this.callEnded(ev.facts.callId);
        return;
      case 'ended':
        this.callEnded(ev.callId);
        return;
      default:
        return;
    }
  }

  /** Counts a call on a destination (for callers that do not use onCallEvent). */
  callStarted(callId: string, targetId: string): void {
    this.callEnded(callId);
    this.calls.set(callId, { destId: targetId, order: [targetId], answered: false, since: this.now() });
    this.adjust(targetId, +1);
  }

  /** Stops counting a call (idempotent). */
  callEnded(callId: string): void {
    const t = this.calls.get(callId);
    if (!t) return;
    this.calls.delete(callId);
    if (t.destId !== undefined) this.adjust(t.destId, -1);
  }

  private track(callId: string, targets: readonly Target[]): void {
    this.callEnded(callId);
    const order = targets.map((t) => t.id);
    this.calls.set(callId, { destId: order[0], order, answered: false, since: this.now() });
    this.adjust(order[0]!, +1);
  }

  private adjust(id: string, delta: number): void {
    const d = this.byId.get(id);
    if (d) d.activeCalls = Math.max(0, d.activeCalls + delta);
  }

  /** Forgets calls whose final event never came (the prober calls this on each tick). Returns how many. */
  sweepCalls(): number {
    const now = this.now();
    let n = 0;
    for (const [callId, t] of this.calls) {
      if (now - t.since > (t.answered ? this.answeredCallMaxMs : this.pendingCallMaxMs)) {
        this.callEnded(callId);
        n++;
      }
    }
    if (n > 0) this.log.warn({ calls: n }, 'forgot tracked calls without a final event');
    return n;
  }

  /** Calls currently counted (all destinations). */
  trackedCalls(): number {
    return this.calls.size;
  }

  // ---------------------------------------------------------------- views

  list(): DestinationView[] {
    const out: DestinationView[] = [];
    for (const set of [...this.sets.values()].sort((a, b) => a.setId - b.setId)) for (const d of set.dests) out.push(viewOf(d));
    return out;
  }

  get(id: string): DestinationView | undefined {
    const d = this.byId.get(id);
    return d ? viewOf(d) : undefined;
  }

  /** For metrics.setDispatcherSource(): cheap iteration at scrape time. */
  *gaugeViews(): Iterable<{ setId: number; id: string; uri: string; state: string; activeCalls: number }> {
    for (const d of this.byId.values()) yield { setId: d.setId, id: d.id, uri: d.uri, state: d.state, activeCalls: d.activeCalls };
  }

  /** Distinct hosts of every loaded destination (disabled included), e.g. for auth's never-ban whitelist. */
  hosts(): string[] {
    const out = new Set<string>();
    for (const d of this.byId.values()) out.add(d.target.host);
    return [...out];
  }

  lastLoadedAt(): number | undefined {
    return this.loadedAt;
  }
}
