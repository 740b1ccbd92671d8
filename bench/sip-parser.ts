// SIP parser / serialiser micro-benchmark: messages per second for the hot-path operations of the proxy.
// Run: npx tsx bench/sip-parser.ts [seconds-per-case, default 1]
import os from 'node:os';
import { parseMessage, StreamFramer, type SipRequest, type SipResponse } from '../src/sip/index.js';

const SDP = [
  'v=0', 'o=alice 2890844526 2890844526 IN IP4 198.51.100.7', 's=-', 'c=IN IP4 198.51.100.7', 't=0 0',
  'm=audio 49170 RTP/AVP 0 8 18 101', 'a=rtpmap:0 PCMU/8000', 'a=rtpmap:8 PCMA/8000', 'a=rtpmap:18 G729/8000',
  'a=rtpmap:101 telephone-event/8000', 'a=fmtp:101 0-16', 'a=ptime:20', 'a=sendrecv', '',
].join('\r\n');

const INVITE = Buffer.from([
  'INVITE sip:+4915112345678@gw.example.net SIP/2.0',
  'Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-524287-1---7a1c3f9e2b6d4c10;rport',
  'Max-Forwards: 70',
  'Contact: <sip:1001@198.51.100.7:5060;transport=udp>',
  'To: <sip:+4915112345678@gw.example.net>',
  'From: "Alice" <sip:1001@gw.example.net>;tag=8d3f61a2',
  'Call-ID: NjRiZDk0ZmY3YzQ2YjRmYzA1NjE0ZTVhN2U4OWQwYjE',
  'CSeq: 2 INVITE',
  'Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, MESSAGE, OPTIONS, INFO, SUBSCRIBE',
  'Content-Type: application/sdp',
  'Proxy-Authorization: Digest username="1001",realm="a2b-gateway",nonce="5f1b2c3d4e5f60718293a4b5c6d7e8f9",uri="sip:+4915112345678@gw.example.net",response="0123456789abcdef0123456789abcdef",algorithm=MD5',
  'P-Accountcode: 9999',
  'User-Agent: Zoiper rv2.10.8.3',
  'Allow-Events: presence, kpml, talk',
  `Content-Length: ${Buffer.byteLength(SDP)}`,
  '',
  SDP,
].join('\r\n'), 'latin1');

const OK200 = Buffer.from([
  'SIP/2.0 200 OK',
  'Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKQm9kT2xYc1Vb8NpR4sWq7A;rport=5060',
  'Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-524287-1---7a1c3f9e2b6d4c10;rport=5060;received=198.51.100.7',
  'Record-Route: <sip:192.0.2.1;lr>',
  'Contact: <sip:+4915112345678@192.0.2.50:5060>',
  'To: <sip:+4915112345678@gw.example.net>;tag=as5f3e2a1b',
  'From: "Alice" <sip:1001@gw.example.net>;tag=8d3f61a2',
  'Call-ID: NjRiZDk0ZmY3YzQ2YjRmYzA1NjE0ZTVhN2U4OWQwYjE',
  'CSeq: 2 INVITE',
  'Server: Asterisk PBX 18.20.0',
  'Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, SUBSCRIBE, NOTIFY, INFO, PUBLISH, MESSAGE',
  'Supported: replaces, timer',
  'Content-Type: application/sdp',
  `Content-Length: ${Buffer.byteLength(SDP)}`,
  '',
  SDP,
].join('\r\n'), 'latin1');

/**
 * Runs fn for `seconds` of wall time and reports per-message cost in CPU time of this process (user + system):
 * on a shared, oversubscribed machine wall time mostly measures the neighbours; CPU time measures us.
 */
function bench(name: string, seconds: number, fn: () => void): { name: string; opsPerSec: number; nsPerOp: number; wallOpsPerSec: number } {
  // warm up the JIT: 20 000 calls or 0.3 s, whichever comes first
  const w0 = process.hrtime.bigint();
  let warm = 0;
  for (; warm < 20_000 && process.hrtime.bigint() - w0 < 300_000_000n; warm++) fn();
  let ops = 0;
  const batch = Math.max(1, Math.min(1000, Math.floor(warm / 20))); // check the clock every ~15 ms at most
  const start = process.hrtime.bigint();
  const cpu0 = process.cpuUsage();
  const limit = BigInt(Math.round(seconds * 1e9));
  let elapsed = 0n;
  while (elapsed < limit) {
    for (let i = 0; i < batch; i++) fn();
    ops += batch;
    elapsed = process.hrtime.bigint() - start;
  }
  const cpu = process.cpuUsage(cpu0);
  const cpuNs = (cpu.user + cpu.system) * 1000;
  const ns = cpuNs / ops;
  return { name, opsPerSec: Math.round(1e9 / ns), nsPerOp: Math.round(ns), wallOpsPerSec: Math.round(ops / (Number(elapsed) / 1e9)) };
}

function must<T>(r: ReturnType<typeof parseMessage>): T {
  if (!r.ok) throw new Error(r.error.reason);
  return r.message as T;
}

const seconds = Number(process.argv[2] ?? 1);
let sink = 0;
const results = [
  bench('parse INVITE (validate mandatory headers)', seconds, () => {
    const m = must<SipRequest>(parseMessage(INVITE));
    sink += m.headers.length;
  }),
  bench('parse INVITE + proxy edits + serialise', seconds, () => {
    const m = must<SipRequest>(parseMessage(INVITE));
    // what the proxy does to a new INVITE before forwarding it
    m.replaceTopVia(`${m.topVia!.raw};received=198.51.100.7`);
    m.decrementMaxForwards();
    m.removeHeader('P-Accountcode');
    m.removeHeader('Proxy-Authorization');
    m.addHeader('P-Accountcode', '1001');
    m.prependRecordRoute('<sip:192.0.2.1;lr>');
    m.setUri('sip:+4915112345678@192.0.2.50:5060');
    m.pushVia('SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKQm9kT2xYc1Vb8NpR4sWq7A;rport');
    sink += m.toBuffer().length;
  }),
  bench('parse 200 OK', seconds, () => {
    const m = must<SipResponse>(parseMessage(OK200));
    sink += m.status;
  }),
  bench('parse 200 OK + pop Via + serialise', seconds, () => {
    const m = must<SipResponse>(parseMessage(OK200));
    m.popVia();
    sink += m.toBuffer().length;
  }),
  bench('serialise unedited INVITE (zero-copy)', seconds, () => {
    sink += must<SipRequest>(parseMessage(INVITE)).toBuffer().length;
  }),
  (() => {
    const stream = Buffer.concat([INVITE, OK200, INVITE, OK200]);
    const f = new StreamFramer(65535, { onMessage: (b) => { sink += b.length; }, onPing: () => undefined, onError: () => undefined });
    const r = bench('TCP framer, 4 messages in 1400-byte chunks (per message)', seconds, () => {
      for (let p = 0; p < stream.length; p += 1400) f.push(stream.subarray(p, p + 1400));
    });
    return { ...r, opsPerSec: r.opsPerSec * 4, nsPerOp: Math.round(r.nsPerOp / 4), wallOpsPerSec: r.wallOpsPerSec * 4 };
  })(),
  (() => {
    // a hostile peer trickling a 16 KB message one byte per segment: must stay linear
    const big = Buffer.from(INVITE.toString('latin1').replace('Max-Forwards: 70\r\n', `Max-Forwards: 70\r\nX-Pad: ${'p'.repeat(15_000)}\r\n`), 'latin1');
    const f = new StreamFramer(65535, { onMessage: (b) => { sink += b.length; }, onPing: () => undefined, onError: () => undefined });
    return bench(`TCP framer, ${big.length}-byte message in 1-byte segments (per message)`, seconds, () => {
      for (let p = 0; p < big.length; p++) f.push(big.subarray(p, p + 1));
    });
  })(),
];

console.log(`# SIP parser benchmark — ${new Date().toISOString()} — node ${process.version} — ${os.cpus()[0]?.model ?? 'cpu?'} (${os.cpus().length} cores)`);
console.log(`INVITE ${INVITE.length} bytes, 200 OK ${OK200.length} bytes, ${seconds}s per case, single thread, load average ${os.loadavg()[0]!.toFixed(1)}\n`);
console.log('| case | messages per CPU-second | CPU ns/message | messages per wall-second |');
console.log('|---|---:|---:|---:|');
for (const r of results) {
  console.log(`| ${r.name} | ${r.opsPerSec.toLocaleString('en-US')} | ${r.nsPerOp.toLocaleString('en-US')} | ${r.wallOpsPerSec.toLocaleString('en-US')} |`);
}
if (sink === 42) console.log('');
