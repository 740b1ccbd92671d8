// Public surface of the SIP core. Layers, bottom up (each only uses the ones below it):
//   uri.ts, headers.ts      value grammars (URI, Via, name-addr, CSeq, lists) — pure functions, never throw
//   message.ts              SipRequest / SipResponse over raw header lines; lazy accessors; raw-line edits; toBuffer
//   parser.ts               bytes → message or SipParseError (answerable / too-large / garbage); never throws
//   build.ts, ids.ts        responses to requests, requests from scratch, branch / tag / Call-ID generation
//   framer.ts               TCP stream → messages (CRLF keep-alives, Content-Length framing, size limit)
//   transport.ts            UDP/TCP listeners, received/rport, routing by Via, URI resolution, connection reuse
//   transaction.ts          RFC 3261 §17 (+ RFC 6026) client/server transactions and timers; the proxy is its TU
// Each module opens with what it guarantees; nothing below transport.ts does I/O.
export * from './uri.js';
export * from './headers.js';
export * from './message.js';
export * from './parser.js';
export * from './build.js';
export * from './ids.js';
export * from './framer.js';
export * from './transport.js';
export * from './transaction.js';
export * from './queue-probe.js';
export * from './coarse-timers.js';
