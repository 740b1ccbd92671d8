import { describe, expect, it } from 'vitest';
import { proxyHold, readPcap } from '../../../bench/proxy-hold.js';

const PROXY = 5060;

/** A classic pcap (µs timestamps, Ethernet) holding one UDP/IPv4 datagram per entry. */
function pcap(pkts: Array<{ us: number; src: number; dst: number; text: string }>): Buffer {
  const parts: Buffer[] = [];
  const gh = Buffer.alloc(24);
  gh.writeUInt32LE(0xa1b2c3d4, 0); gh.writeUInt16LE(2, 4); gh.writeUInt16LE(4, 6); gh.writeUInt32LE(65535, 16); gh.writeUInt32LE(1, 20);
  parts.push(gh);
  for (const p of pkts) {
    const payload = Buffer.from(p.text, 'latin1');
    const frame = Buffer.alloc(14 + 20 + 8 + payload.length);
    frame.writeUInt16BE(0x0800, 12);
    frame[14] = 0x45; frame.writeUInt16BE(20 + 8 + payload.length, 16); frame[23] = 17;
    frame.writeUInt16BE(p.src, 34); frame.writeUInt16BE(p.dst, 36); frame.writeUInt16BE(8 + payload.length, 38);
    payload.copy(frame, 42);
    const rh = Buffer.alloc(16);
    rh.writeUInt32LE(Math.floor(p.us / 1e6), 0); rh.writeUInt32LE(p.us % 1e6, 4); rh.writeUInt32LE(frame.length, 8); rh.writeUInt32LE(frame.length, 12);
    parts.push(rh, frame);
  }
  return Buffer.concat(parts);
}

const req = (m: string, callId: string, cseq: number, extra = ''): string =>
  `${m} sip:1555@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:4000;branch=z9hG4bK1\r\nCall-ID: ${callId}\r\nCSeq: ${cseq} ${m}\r\n${extra}Content-Length: 0\r\n\r\n`;
const res = (code: number, callId: string, cseq: number): string =>
  `SIP/2.0 ${code} X\r\nVia: SIP/2.0/UDP 127.0.0.2:4000;branch=z9hG4bK1\r\nCall-ID: ${callId}\r\nCSeq: ${cseq} INVITE\r\nContent-Length: 0\r\n\r\n`;

describe('bench: latency added by the proxy, from a packet capture', () => {
  const T = 1_764_658_800_000_000;
  const file = pcap([
    // IP-authenticated call: 0.3 ms to forward the INVITE, 0.4 ms to relay the 200; a retransmitted INVITE
    // arriving before the forward does not shorten the first leg.
    { us: T, src: 4000, dst: PROXY, text: req('INVITE', 'a', 1) },
    { us: T + 100, src: PROXY, dst: 4000, text: res(100, 'a', 1) },
    { us: T + 200, src: 4000, dst: PROXY, text: req('INVITE', 'a', 1) },
    { us: T + 300, src: PROXY, dst: 6000, text: req('INVITE', 'a', 1) },
    { us: T + 5_000, src: 6000, dst: PROXY, text: res(200, 'a', 1) },
    { us: T + 5_400, src: PROXY, dst: 4000, text: res(200, 'a', 1) },
    // digest: 0.2 ms to challenge, 0.3 to forward the retry, 0.1 to relay the 200
    { us: T + 10_000, src: 4000, dst: PROXY, text: req('INVITE', 'b', 1) },
    { us: T + 10_200, src: PROXY, dst: 4000, text: res(407, 'b', 1) },
    { us: T + 11_000, src: 4000, dst: PROXY, text: req('INVITE', 'b', 2, 'Proxy-Authorization: Digest x\r\n') },
    { us: T + 11_300, src: PROXY, dst: 6000, text: req('INVITE', 'b', 2) },
    { us: T + 12_000, src: 6000, dst: PROXY, text: res(200, 'b', 2) },
    { us: T + 12_100, src: PROXY, dst: 4000, text: res(200, 'b', 2) },
    // cut by the end of the capture: not counted; and a datagram of another port is ignored
    { us: T + 20_000, src: 4000, dst: PROXY, text: req('INVITE', 'c', 1) },
    { us: T + 20_000, src: 7000, dst: 7001, text: res(200, 'a', 1) },
  ]);

  it('reads UDP datagrams with their kernel timestamps', () => {
    const pk = readPcap(file);
    expect(pk).toHaveLength(14);
    expect(pk[1]).toMatchObject({ tsUs: T + 100, srcPort: PROXY, dstPort: 4000 });
    expect(pk[1]!.payload.toString('latin1')).toMatch(/^SIP\/2\.0 100 X\r\n/);
  });

  it('adds the proxy legs of each complete call setup', () => {
    const h = proxyHold(readPcap(file), PROXY);
    expect(h.calls).toBe(2);
    expect(h.max).toBeCloseTo(0.7, 6); // IP call: 0.3 + 0.4
    const digestOnly = readPcap(file).filter((p) => /Call-ID: b\r\n/.test(p.payload.toString('latin1')));
    expect(proxyHold(digestOnly, PROXY).max).toBeCloseTo(0.6, 6); // 0.2 + 0.3 + 0.1
    expect(h.inviteP99).toBeCloseTo(0.3, 6);
    expect(h.okP99).toBeCloseTo(0.4, 6);
  });

  it('refuses what it cannot read', () => {
    expect(() => readPcap(Buffer.alloc(10))).toThrow(/shorter/);
    expect(() => readPcap(Buffer.alloc(24, 7))).toThrow(/not a pcap/);
    const truncated = file.subarray(0, file.length - 5);
    expect(readPcap(truncated)).toHaveLength(13);
  });
});
