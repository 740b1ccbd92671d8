// A short, stable reference to a Call-ID for billing joins. The Asterisk dialplan stores it in
// A2Billing's cc_call.a2b_custom1 (varchar(20)); reconciliation recomputes it from the Call-ID the
// proxy accounted, so the function must never change: SHA-256 of the exact Call-ID bytes (UTF-8),
// first 80 bits, lower-case RFC 4648 base32 without padding = 16 characters of [a-z2-7].
import { createHash } from 'node:crypto';

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567';

export const CALLREF_LENGTH = 16;
export const CALLREF_HEADER = 'X-A2B-Callref';

export function callRef(callId: string): string {
  const digest = createHash('sha256').update(callId, 'utf8').digest();
  let out = '';
  // 10 bytes = 80 bits = 16 groups of 5 bits.
  let acc = 0;
  let bits = 0;
  for (let i = 0; i < 10; i++) {
    acc = (acc << 8) | digest[i]!;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += ALPHABET[(acc >>> bits) & 31];
    }
    acc &= (1 << bits) - 1;
  }
  return out;
}

/** True when s looks like a value callRef could have produced (for validating what comes back from CDRs). */
export function isCallRef(s: string): boolean {
  return s.length === CALLREF_LENGTH && /^[a-z2-7]{16}$/.test(s);
}
