// The proxy's view of the billing join reference. One definition for the whole gateway lives in
// src/callref.ts (the dialplan stores it in cc_call.a2b_custom1, varchar(20), and reconciliation
// recomputes it from the accounted Call-ID), so this module only re-exports it.
export { callRef, CALLREF_HEADER, ACCOUNTCODE_HEADER } from '../callref.js';
