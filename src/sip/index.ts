// Public surface of the SIP core. The proxy imports from here.
export * from './uri.js';
export * from './headers.js';
export * from './message.js';
export * from './parser.js';
export * from './build.js';
export * from './ids.js';
export * from './framer.js';
export * from './transport.js';
export * from './transaction.js';
