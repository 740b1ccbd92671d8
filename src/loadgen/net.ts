// UDP and TCP endpoints for the load generator's user agents.
import dgram from 'node:dgram';
import net from 'node:net';

export interface Peer { host: string; port: number }
export type OnData = (buf: Buffer, from: Peer, reply: (b: Buffer) => void) => void;

export interface Endpoint {
  readonly proto: 'udp' | 'tcp';
  readonly host: string;
  readonly port: number;
  send(buf: Buffer, to: Peer): void;
  close(): Promise<void>;
}

/** Splits a TCP byte stream into SIP messages by Content-Length; drops CRLF keep-alives. */
export function streamSplitter(onMsg: (b: Buffer) => void): (chunk: Buffer) => void {
  let acc: Buffer = Buffer.alloc(0);
  return (chunk) => {
    acc = acc.length ? Buffer.concat([acc, chunk]) : chunk;
    for (;;) {
      while (acc.length >= 2 && acc[0] === 13 && acc[1] === 10) acc = acc.subarray(2);
      const end = acc.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = acc.subarray(0, end).toString('latin1');
      const m = /\r\n(?:content-length|l)\s*:\s*(\d+)/i.exec(head);
      const total = end + 4 + (m ? Number(m[1]) : 0);
      if (acc.length < total) return;
      onMsg(acc.subarray(0, total));
      acc = acc.subarray(total);
    }
  };
}

export async function udpEndpoint(host: string, port: number, onData: OnData): Promise<Endpoint> {
  const sock = dgram.createSocket({ type: host.includes(':') ? 'udp6' : 'udp4', recvBufferSize: 8 << 20, sendBufferSize: 8 << 20 });
  sock.on('message', (b, r) => onData(b, { host: r.address, port: r.port }, (out) => sock.send(out, r.port, r.address)));
  await new Promise<void>((res, rej) => { sock.once('error', rej); sock.bind(port, host, () => res()); });
  const addr = sock.address();
  return {
    proto: 'udp', host, port: addr.port,
    send: (b, to) => sock.send(b, to.port, to.host),
    close: () => new Promise((res) => sock.close(() => res())),
  };
}

/** TCP listener (callee side): replies go back on the connection a request came in on. */
export async function tcpServerEndpoint(host: string, port: number, onData: OnData): Promise<Endpoint> {
  const conns = new Map<string, net.Socket>();
  const server = net.createServer((c) => {
    c.setNoDelay(true);
    const key = `${c.remoteAddress}:${c.remotePort}`;
    conns.set(key, c);
    const from = { host: c.remoteAddress ?? '', port: c.remotePort ?? 0 };
    c.on('data', streamSplitter((b) => onData(b, from, (out) => c.write(out))));
    c.on('error', () => undefined);
    c.on('close', () => conns.delete(key));
  });
  await new Promise<void>((res, rej) => { server.once('error', rej); server.listen(port, host, () => res()); });
  const addr = server.address() as net.AddressInfo;
  return {
    proto: 'tcp', host, port: addr.port,
    send: (b, to) => conns.get(`${to.host}:${to.port}`)?.write(b),
    close: () => new Promise((res) => { for (const c of conns.values()) c.destroy(); server.close(() => res()); }),
  };
}

/** TCP client (caller side): one connection to the proxy carries every call. */
export async function tcpClientEndpoint(localHost: string, to: Peer, onData: OnData): Promise<Endpoint> {
  const c = net.connect({ host: to.host, port: to.port, localAddress: localHost });
  c.setNoDelay(true);
  await new Promise<void>((res, rej) => { c.once('error', rej); c.once('connect', () => res()); });
  c.on('error', () => undefined);
  c.on('data', streamSplitter((b) => onData(b, to, (out) => c.write(out))));
  return {
    proto: 'tcp', host: localHost, port: c.localPort ?? 0,
    send: (b) => c.write(b),
    close: () => new Promise((res) => { c.end(() => res()); setTimeout(() => { c.destroy(); res(); }, 200); }),
  };
}
