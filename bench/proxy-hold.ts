// Setup latency *added by the proxy*, from packet timestamps: tcpdump on the loopback interface records
// every datagram to and from the proxy's port with the kernel's clock, so the time a request or response
// spends in the proxy (socket queue + processing) is measured independently of the load generator, whose
// own event-loop delay is part of the caller's end-to-end setup figure but not of the proxy's.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { readLite } from '../src/loadgen/lite.js';

export interface UdpPacket { tsUs: number; srcPort: number; dstPort: number; payload: Buffer }

/** UDP/IPv4 datagrams of a classic pcap file (Ethernet, Linux cooked v1/v2, BSD loopback, raw IP). */
export function readPcap(buf: Buffer): UdpPacket[] {
  if (buf.length < 24) throw new Error('pcap: file shorter than its header');
  const magicLe = buf.readUInt32LE(0);
  let le: boolean; let nano: boolean;
  if (magicLe === 0xa1b2c3d4) { le = true; nano = false; } else if (magicLe === 0xa1b23c4d) { le = true; nano = true; }
  else if (buf.readUInt32BE(0) === 0xa1b2c3d4) { le = false; nano = false; } else if (buf.readUInt32BE(0) === 0xa1b23c4d) { le = false; nano = true; }
  else throw new Error('pcap: not a pcap file (pcapng is not read; run tcpdump with -w, not dumpcap)');
  const u32 = (o: number): number => (le ? buf.readUInt32LE(o) : buf.readUInt32BE(o));
  const linkType = u32(20);
  const linkLen: Record<number, number> = { 1: 14, 113: 16, 276: 20, 0: 4, 101: 0, 228: 0 };
  const l2 = linkLen[linkType];
  if (l2 === undefined) throw new Error(`pcap: link type ${linkType} is not read`);
  const out: UdpPacket[] = [];
  let o = 24;
  while (o + 16 <= buf.length) {
    const sec = u32(o); const frac = u32(o + 4); const incl = u32(o + 8);
    const p = o + 16;
    o = p + incl;
    if (o > buf.length) break; // truncated last record (capture stopped mid-write)
    const ip = p + l2;
    if (incl < l2 + 28 || buf[ip]! >> 4 !== 4 || buf[ip + 9] !== 17) continue; // IPv4 + UDP only
    const ihl = (buf[ip]! & 0x0f) * 4;
    const udp = ip + ihl;
    const udpLen = buf.readUInt16BE(udp + 4);
    const end = Math.min(o, udp + udpLen);
    out.push({ tsUs: sec * 1e6 + (nano ? frac / 1000 : frac), srcPort: buf.readUInt16BE(udp), dstPort: buf.readUInt16BE(udp + 2), payload: buf.subarray(udp + 8, end) });
  }
  return out;
}

export interface HoldStats { calls: number; p50: number; p95: number; p99: number; max: number; inviteP99: number; okP99: number }

function pct(sorted: number[], p: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]! : 0;
}

/**
 * Per call: (INVITE received → INVITE forwarded) + (200 received → 200 relayed) [+ (first INVITE received →
 * 407 sent) with digest], in ms. Only calls whose every leg is in the capture are counted.
 */
export function proxyHold(packets: UdpPacket[], proxyPort: number): HoldStats {
  // First arrival per INVITE CSeq (a retransmission does not move it), the forwarded INVITE's CSeq.
  interface C { inByCseq: Map<string, number>; first?: number; invOut?: number; outCseq?: string; okIn?: number; okOut?: number; chOut?: number }
  const calls = new Map<string, C>();
  for (const pk of packets) {
    const inbound = pk.dstPort === proxyPort;
    if (!inbound && pk.srcPort !== proxyPort) continue;
    const m = readLite(pk.payload);
    if (!m) continue;
    const cseq = m.headers.get('cseq')?.[0] ?? '';
    if (!cseq.endsWith('INVITE')) continue;
    const id = m.headers.get('call-id')?.[0] ?? '';
    let c = calls.get(id);
    if (!c) { c = { inByCseq: new Map() }; calls.set(id, c); }
    if (m.request && m.method === 'INVITE') {
      if (inbound) { c.first ??= pk.tsUs; if (!c.inByCseq.has(cseq)) c.inByCseq.set(cseq, pk.tsUs); }
      else if (c.invOut === undefined) { c.invOut = pk.tsUs; c.outCseq = cseq; }
    } else if (!m.request) {
      if (m.status === 407 && !inbound) c.chOut ??= pk.tsUs;
      else if (m.status >= 200 && m.status < 300) { if (inbound) c.okIn ??= pk.tsUs; else c.okOut ??= pk.tsUs; }
    }
  }
  const total: number[] = []; const inv: number[] = []; const ok: number[] = [];
  for (const c of calls.values()) {
    const invIn = c.outCseq === undefined ? undefined : c.inByCseq.get(c.outCseq);
    if (invIn === undefined || c.invOut === undefined || c.okIn === undefined || c.okOut === undefined) continue;
    if (c.invOut < invIn || c.okOut < c.okIn) continue;
    const a = (c.invOut - invIn) / 1000; const b = (c.okOut - c.okIn) / 1000;
    let t = a + b;
    // Digest: the challenge is proxy time too (first INVITE in → 407 out).
    if (c.chOut !== undefined && c.first !== undefined && c.first < invIn) t += (c.chOut - c.first) / 1000;
    total.push(t); inv.push(a); ok.push(b);
  }
  const num = (x: number, y: number): number => x - y;
  total.sort(num); inv.sort(num); ok.sort(num);
  return { calls: total.length, p50: pct(total, 50), p95: pct(total, 95), p99: pct(total, 99), max: total.at(-1) ?? 0, inviteP99: pct(inv, 99), okP99: pct(ok, 99) };
}

export function tcpdumpAvailable(): boolean {
  return spawnSync('tcpdump', ['--version'], { stdio: 'ignore' }).status === 0;
}

/** Captures UDP to and from `port` on lo into `file` until the returned stop() (which resolves with the packets). */
export async function captureLoopback(port: number, file: string): Promise<{ stop: () => Promise<{ packets: UdpPacket[]; dropped: number }> }> {
  const child: ChildProcess = spawn('tcpdump', ['-i', 'lo', '-n', '-s', '2048', '-B', '65536', '-U', '-w', file, 'udp', 'port', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`tcpdump did not start: ${err.trim()}`)), 5000);
    child.stderr!.on('data', (d: Buffer) => { err += d.toString(); if (/listening on/.test(err)) { clearTimeout(t); resolve(); } });
    child.once('exit', (code) => { clearTimeout(t); reject(new Error(`tcpdump exited (${code}): ${err.trim()}`)); });
  });
  return {
    stop: async () => {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGINT');
      await exited;
      const dropped = Number(/(\d+) packets? dropped by kernel/.exec(err)?.[1] ?? 0);
      const packets = readPcap(readFileSync(file));
      rmSync(file, { force: true });
      return { packets, dropped };
    },
  };
}
