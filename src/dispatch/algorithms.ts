// Selection algorithms: pure functions that order one tier of usable destinations for serial failover.
// The first element is the chosen destination; the rest follow in a deterministic order.
import type { Destination } from './destination.js';
import { rendezvousScore, weightedRendezvousScore } from './hash.js';

export const ALGORITHMS = ['hash-callid', 'hash-from', 'round-robin', 'weighted', 'priority', 'least-calls'] as const;
export type Algorithm = (typeof ALGORITHMS)[number];

export interface SelectInput {
  /** FNV-1a of the Call-ID (hash-callid, weighted, least-calls tie-break) or of the From user (hash-from). */
  keyHash: number;
  /** Round-robin position for this set (the caller advances it once per call). */
  rrIndex: number;
}

function byId(a: Destination, b: Destination): number {
  return Number(a.id) - Number(b.id) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/** Sorts by a precomputed score, highest first, ties by id. Small arrays: a scored copy beats repeated hashing. */
function byScoreDesc(dests: readonly Destination[], score: (d: Destination) => number): Destination[] {
  const scored = dests.map((d) => ({ d, s: score(d) }));
  scored.sort((a, b) => b.s - a.s || byId(a.d, b.d));
  return scored.map((x) => x.d);
}

/**
 * Orders `dests` (one tier, already filtered to usable ones and sorted by id) for the algorithm.
 * - hash-callid / hash-from: rendezvous hashing; the same key stays on the same box while the set is unchanged,
 *   and failover goes to the key's second-best box (so a dead box's calls spread over all the others).
 * - weighted: weighted rendezvous over the Call-ID: box i is first with probability w_i / sum(w); weight 0 never first.
 * - round-robin: boxes in id order starting at rrIndex mod n, cycling.
 * - priority: highest priority value first (Kamailio's alg 8 ordering), ties by id.
 * - least-calls: fewest active calls first; ties broken by Call-ID rendezvous so bursts spread.
 */
export function orderTier(alg: Algorithm, dests: readonly Destination[], input: SelectInput): Destination[] {
  const n = dests.length;
  if (n <= 1) return dests.slice();
  switch (alg) {
    case 'hash-callid':
    case 'hash-from':
      return byScoreDesc(dests, (d) => rendezvousScore(input.keyHash, d.seed));
    case 'weighted':
      return byScoreDesc(dests, (d) => weightedRendezvousScore(input.keyHash, d.seed, d.weight));
    case 'round-robin': {
      const start = ((input.rrIndex % n) + n) % n;
      const out: Destination[] = new Array(n);
      for (let i = 0; i < n; i++) out[i] = dests[(start + i) % n]!;
      return out;
    }
    case 'priority':
      return dests.slice().sort((a, b) => b.priority - a.priority || byId(a, b));
    case 'least-calls': {
      const scored = dests.map((d) => ({ d, c: d.activeCalls, s: rendezvousScore(input.keyHash, d.seed) }));
      scored.sort((a, b) => a.c - b.c || b.s - a.s || byId(a.d, b.d));
      return scored.map((x) => x.d);
    }
  }
}

export { byId as compareDestinationIds };
