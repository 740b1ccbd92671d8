// The queue probe over a real UDP socket: it times its own datagrams through the listener's receive queue,
// so a blocked event loop shows as delay, and foreign datagrams are not mistaken for probes.
import dgram from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { QueueProbe } from '../../../src/sip/queue-probe.js';

const closers: Array<() => void> = [];
afterEach(() => { while (closers.length) closers.pop()!(); });

async function listener(): Promise<{ sock: dgram.Socket; port: number }> {
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  closers.push(() => sock.close());
  return { sock, port: sock.address().port };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('QueueProbe', () => {
  it('measures a few ms on an idle loop and the length of a block when the loop is busy', async () => {
    const { sock, port } = await listener();
    const seen: number[] = [];
    const probe = new QueueProbe({ host: '127.0.0.1', port, family: 4, intervalMs: 20, onDelay: (ms) => seen.push(ms) });
    let foreign = 0;
    sock.on('message', (buf, rinfo) => {
      if (rinfo.port === probe.port && probe.take(buf)) return;
      foreign++;
    });
    await probe.start();
    closers.push(() => probe.close());
    await sleep(200);
    expect(seen.length).toBeGreaterThanOrEqual(3);
    expect(Math.min(...seen)).toBeLessThan(50);

    // a probe sent just before the loop blocks waits in the socket for the whole block
    const before = seen.length;
    probe.ping();
    const until = Date.now() + 300;
    while (Date.now() < until) { /* the event loop is busy */ }
    await sleep(100);
    expect(Math.max(...seen.slice(before))).toBeGreaterThanOrEqual(250);

    // a datagram of the same size from elsewhere, or from the probe's port with another token, is not a probe
    const other = dgram.createSocket('udp4');
    closers.push(() => other.close());
    other.send(Buffer.alloc(16, 0x41), port, '127.0.0.1');
    await sleep(50);
    expect(foreign).toBe(1);
    expect(probe.take(Buffer.from('A2BQ' + '\0'.repeat(12), 'latin1'))).toBe(false);
  });

  it('reaches a wildcard listener over loopback', async () => {
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((r) => sock.bind(0, '0.0.0.0', () => r()));
    closers.push(() => sock.close());
    const seen: number[] = [];
    const probe = new QueueProbe({ host: '0.0.0.0', port: sock.address().port, family: 4, intervalMs: 20, onDelay: (ms) => seen.push(ms) });
    sock.on('message', (buf, rinfo) => { if (rinfo.port === probe.port) probe.take(buf); });
    await probe.start();
    closers.push(() => probe.close());
    await sleep(150);
    expect(seen.length).toBeGreaterThanOrEqual(2);
  });
});

describe('QueueProbe start failure', () => {
  it('rejects (and closes its socket) when its address cannot be bound', async () => {
    const probe = new QueueProbe({ host: '192.0.2.1', port: 5060, family: 4, intervalMs: 20, onDelay: () => undefined });
    await expect(probe.start()).rejects.toThrow(/EADDRNOTAVAIL|bind/);
    probe.close(); // idempotent
  });
});
