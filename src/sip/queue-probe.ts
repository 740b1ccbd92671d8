// How long a datagram waits in the UDP listener's receive queue (and behind the event loop's other work) before
// the gateway reads it. Node gives no kernel receive timestamp, so the probe sends the listener a small datagram
// every intervalMs from a private socket and times its way through: it queues behind whatever arrived before it,
// so its delay is the delay a SIP message arriving at that moment sees. When the event loop has no idle time left,
// that delay grows without bound (the 4 MiB socket buffer holds seconds of traffic); the proxy's overload control
// (proxy/overload.ts) reads it.
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { performance } from 'node:perf_hooks';

const MAGIC = 0x41324251; // 'A2BQ': not the start of any SIP message
const LEN = 16; // magic (4) + sequence (4) + token (8)
const RING = 128;
/** A probe still out after this long is taken as lost (the socket buffer overflowed): counted at this delay. */
const LOST_MS = 5000;

export interface QueueProbeOptions {
  /** The listener to probe (its bound address; a wildcard is reached over loopback). */
  host: string;
  port: number;
  family: 4 | 6;
  intervalMs: number;
  /** Every measurement: the delay of a probe that came back, or the age of the oldest probe still out. */
  onDelay: (ms: number) => void;
}

export class QueueProbe {
  private readonly sock: dgram.Socket;
  private readonly token = randomBytes(8);
  private readonly sentAt = new Float64Array(RING);
  private readonly sentSeq = new Int32Array(RING).fill(-1);
  private readonly target: string;
  private seq = 0;
  /** Sequence number of the oldest probe not yet back (== seq when none is out). */
  private oldest = 0;
  private timer: NodeJS.Timeout | undefined;
  /** The probe socket's port, for the transport's cheap "is this ours" check. */
  port = 0;

  constructor(private readonly o: QueueProbeOptions) {
    this.sock = dgram.createSocket(o.family === 6 ? 'udp6' : 'udp4');
    const wildcard = o.host === '0.0.0.0' || o.host === '::';
    this.target = wildcard ? (o.family === 6 ? '::1' : '127.0.0.1') : o.host;
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const failed = (e: Error): void => { this.close(); reject(e); };
      this.sock.once('error', failed);
      // Same address as the target: the kernel delivers locally and the source is one we can recognise.
      this.sock.bind(0, this.target, () => { this.sock.off('error', failed); resolve(); });
    });
    this.sock.on('error', () => undefined); // a failed probe send only costs one measurement
    this.port = this.sock.address().port;
    this.timer = setInterval(QueueProbe.tick, this.o.intervalMs, this);
    this.timer.unref();
  }

  private static tick(p: QueueProbe): void { p.ping(); }

  /** Sends one probe now (the interval does this; also reports the age of the oldest probe still out). */
  ping(): void {
    const now = performance.now();
    // Probes still out: the oldest one's age is a lower bound of the delay right now (it may never come back).
    while (this.oldest < this.seq) {
      const i = this.oldest % RING;
      if (this.sentSeq[i] !== this.oldest) { this.oldest++; continue; }
      const age = now - this.sentAt[i]!;
      if (age < this.o.intervalMs) break;
      if (age > LOST_MS) { this.sentSeq[i] = -1; this.oldest++; this.report(LOST_MS); continue; }
      this.report(age);
      break;
    }
    const s = this.seq++;
    if (this.seq - this.oldest > RING) this.oldest = this.seq - RING; // ring full: forget the oldest
    this.sentSeq[s % RING] = s;
    this.sentAt[s % RING] = now;
    // A fresh buffer each time: a send the kernel could not take at once still reads it later.
    const buf = Buffer.allocUnsafe(LEN);
    buf.writeUInt32BE(MAGIC, 0);
    buf.writeInt32BE(s, 4);
    this.token.copy(buf, 8);
    this.sock.send(buf, this.o.port, this.target);
  }

  /**
   * The transport's hook for a datagram from the probe's own address: true when it is a probe (consumed).
   * Anything else from that address (it cannot be: the port is ours) is left to the SIP path.
   */
  take(buf: Buffer): boolean {
    if (buf.length !== LEN || buf.readUInt32BE(0) !== MAGIC || buf.compare(this.token, 0, 8, 8, 16) !== 0) return false;
    const s = buf.readInt32BE(4);
    const i = s % RING;
    if (s < 0 || this.sentSeq[i] !== s) return true; // late and already counted as lost
    this.sentSeq[i] = -1;
    if (s >= this.oldest) this.oldest = s + 1; // earlier ones are lost or back (UDP on one socket keeps order)
    this.report(performance.now() - this.sentAt[i]!);
    return true;
  }

  private report(ms: number): void {
    this.o.onDelay(ms);
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    try { this.sock.close(); } catch { /* already closed */ }
  }
}
