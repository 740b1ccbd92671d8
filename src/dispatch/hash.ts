// Fast, stable, non-cryptographic hashing for destination selection. Not for anything an attacker
// could profit from predicting beyond choosing which of our own boxes gets a call.

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/** FNV-1a (32 bit) over the UTF-16 code units of a string; returns an unsigned 32-bit integer. */
export function fnv1a32(s: string, seed: number = FNV_OFFSET): number {
  let h = seed >>> 0;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, FNV_PRIME);
  }
  return h >>> 0;
}

/** MurmurHash3's 32-bit finaliser: a bijection with full avalanche, used to mix a key hash with a destination seed. */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * Rendezvous (highest random weight) score of a key for one destination. Sorting destinations by this
 * score keeps a key on the same destination while the set is unchanged, and when a destination leaves
 * only its keys move (spread evenly over the others), unlike `hash % n`.
 */
export function rendezvousScore(keyHash: number, destSeed: number): number {
  return fmix32((keyHash ^ destSeed) >>> 0);
}

/**
 * Weighted rendezvous score: -w / ln(u) with u uniform in (0, 1) from the mixed hash. The destination
 * with the highest score wins with probability weight / sum(weights). Weight 0 scores 0 (never first).
 */
export function weightedRendezvousScore(keyHash: number, destSeed: number, weight: number): number {
  if (weight <= 0) return 0;
  const u = (rendezvousScore(keyHash, destSeed) + 0.5) / 4294967296;
  return -weight / Math.log(u);
}
