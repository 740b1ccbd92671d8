import { hash } from 'node:crypto';

/**
 * A short, stable reference to a SIP Call-ID for billing joins. The gateway adds it to the INVITE as
 * `X-A2B-Callref`; the dialplan copies it into A2B_CUSTOM1, which A2Billing stores in cc_call.a2b_custom1
 * (varchar(20)); reconciliation recomputes it from the gateway's CDR. 80 bits of SHA-256, hex.
 */
export const CALLREF_HEADER = 'X-A2B-Callref';
export const ACCOUNTCODE_HEADER = 'P-Accountcode';

export function callRef(callId: string): string {
  return hash('sha256', callId, 'hex').slice(0, 20);
}
