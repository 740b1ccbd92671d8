// Transaction-layer benchmark: complete transactions per CPU-second through two TransactionLayers (a client side
// and a server side) joined by an in-memory wire that serialises and re-parses every message, as a socket would.
// Measures the SIP core's per-call overhead without the kernel: parse, match, timers, build, serialise.
// Run: npx tsx bench/sip-transaction.ts [transactions, default 20000]
import os from 'node:os';
import { silentLogger } from '../src/log.js';
import {
  createRequest, createResponse, newCallId, newTag, parseMessage, TransactionLayer,
  type Destination, type MessageSource, type ReceiveHandler, type SipMessage, type SipRequest, type SipResponse, type TransportLike, type SendFailureSink,
} from '../src/sip/index.js';

const TIMERS = { t1Ms: 500, t2Ms: 4000, t4Ms: 5000, inviteTimeoutMs: 30_000, noResponseTimeoutMs: 4000 };

/** One end of an in-memory UDP-like wire: send() serialises, the peer parses on a microtask. */
class WireEnd implements TransportLike {
  peer!: WireEnd;
  handler: ReceiveHandler = () => undefined;
  constructor(readonly host: string, readonly port: number) {}
  setHandler(h: ReceiveHandler): void { this.handler = h; }
  localAddress(): { host: string; port: number } { return { host: this.host, port: this.port }; }
  send(data: Buffer | SipMessage, _dest: Destination): Promise<void> {
    const buf = Buffer.isBuffer(data) ? data : data.toBuffer();
    this.peer.receive(buf, this);
    return Promise.resolve();
  }
  post(data: Buffer, dest: Destination, owner: SendFailureSink): void { this.send(data, dest).catch((e: Error) => owner.sendFailed(e)); }
  responseDestination(_res: SipResponse): Destination { return { proto: 'udp', address: this.peer.host, port: this.peer.port }; }
  receive(buf: Buffer, from: WireEnd): void {
    queueMicrotask(() => {
      const r = parseMessage(buf);
      const source: MessageSource = { proto: 'udp', address: from.host, port: from.port, localAddress: this.host, localPort: this.port };
      if (!r.ok) throw new Error(r.error.reason);
      r.message.source = source;
      this.handler(r.message, source);
    });
  }
}

async function run(n: number, method: 'INVITE' | 'OPTIONS'): Promise<{ perSec: number; cpuUs: number }> {
  const a = new WireEnd('192.0.2.1', 5060);
  const b = new WireEnd('192.0.2.2', 5060);
  a.peer = b;
  b.peer = a;
  const uas = new TransactionLayer({ transport: b, timers: TIMERS, logger: silentLogger(), autoTrying: true }, {
    onRequest: (req, st) => {
      if (!st) return; // ACK for 2xx
      if (req.method === 'INVITE') st.respond(createResponse(req, 180, { toTag: 't' }));
      st.respond(createResponse(req, 200, { toTag: 't', body: req.method === 'INVITE' ? 'v=0\r\n' : undefined, contentType: 'application/sdp' }));
    },
  });
  const uac = new TransactionLayer({ transport: a, timers: TIMERS, logger: silentLogger() }, { onRequest: () => undefined });
  const dest: Destination = { proto: 'udp', address: '192.0.2.2', port: 5060 };
  const one = (): Promise<void> => new Promise((resolve) => {
    const req: SipRequest = createRequest({
      method, uri: 'sip:+4915112345678@192.0.2.2', from: `<sip:1001@192.0.2.1>;tag=${newTag()}`, to: '<sip:+4915112345678@192.0.2.2>',
      callId: newCallId(), cseq: 1, contact: '<sip:1001@192.0.2.1:5060>', body: method === 'INVITE' ? 'v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n' : undefined,
      contentType: method === 'INVITE' ? 'application/sdp' : undefined,
    });
    uac.sendRequest(req, dest, { onResponse: (res) => { if (res.status >= 200) resolve(); } });
  });
  for (let i = 0; i < 2000; i++) await one(); // warm up
  const c0 = process.cpuUsage();
  const batch = 100;
  for (let i = 0; i < n; i += batch) await Promise.all(Array.from({ length: batch }, one));
  const c = process.cpuUsage(c0);
  uac.close();
  uas.close();
  const cpuUs = (c.user + c.system) / n;
  return { perSec: Math.round(1e6 / cpuUs), cpuUs };
}

const n = Number(process.argv[2] ?? 20_000);
const inv = await run(n, 'INVITE');
const opt = await run(n, 'OPTIONS');
console.log(`# SIP transaction benchmark — ${new Date().toISOString()} — node ${process.version} — ${os.cpus()[0]?.model ?? 'cpu?'} (${os.cpus().length} cores), load average ${os.loadavg()[0]!.toFixed(1)}`);
console.log(`${n} transactions per case, 100 concurrent, both sides in one thread, every message serialised and re-parsed\n`);
console.log('| case | messages on the wire | transactions per CPU-second | CPU µs per transaction |');
console.log('|---|---|---:|---:|');
console.log(`| INVITE → 100 → 180 → 200 (client + server transaction) | 4 | ${inv.perSec.toLocaleString('en-US')} | ${inv.cpuUs.toFixed(1)} |`);
console.log(`| OPTIONS → 200 (client + server transaction) | 2 | ${opt.perSec.toLocaleString('en-US')} | ${opt.cpuUs.toFixed(1)} |`);
process.exit(0); // the layers' Timer L/M/J/K would otherwise keep the process for 32 s
