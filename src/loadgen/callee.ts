// The load generator's callee: answers every INVITE with 180 then 200, ACK and BYE as a UAS would,
// resending the last response to a retransmitted request.
import { randomBytes } from 'node:crypto';
import { h, readLite, type Lite } from './lite.js';
import { tcpServerEndpoint, udpEndpoint, type Endpoint } from './net.js';

export interface CalleeOptions {
  host: string;
  port: number;
  proto: 'udp' | 'tcp';
  /** ms between 180 and 200 */
  answerDelayMs?: number;
}

export interface Callee {
  endpoint: Endpoint;
  stats: { invites: number; byes: number; acks: number; accountcodes: Map<string, number> };
  close(): Promise<void>;
}

function response(req: Lite, status: number, reason: string, toTag: string, extra: string, self: string): Buffer {
  const vias = (req.headers.get('via') ?? []).map((v) => `Via: ${v}\r\n`).join('');
  const rr = status >= 180 && status < 300 && req.method === 'INVITE' ? (req.headers.get('record-route') ?? []).map((v) => `Record-Route: ${v}\r\n`).join('') : '';
  const to = h(req, 'to');
  const toHdr = toTag && !/;\s*tag=/i.test(to) ? `${to};tag=${toTag}` : to;
  const body = status === 200 && req.method === 'INVITE' ? 'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40002 RTP/AVP 0\r\n' : '';
  return Buffer.from(
    `SIP/2.0 ${status} ${reason}\r\n${vias}${rr}From: ${h(req, 'from')}\r\nTo: ${toHdr}\r\nCall-ID: ${h(req, 'call-id')}\r\nCSeq: ${h(req, 'cseq')}\r\n` +
    (status >= 180 && req.method === 'INVITE' ? `Contact: <sip:callee@${self}>\r\n` : '') + extra +
    (body ? 'Content-Type: application/sdp\r\n' : '') + `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`, 'latin1');
}

export async function startCallee(o: CalleeOptions): Promise<Callee> {
  const stats = { invites: 0, byes: 0, acks: 0, accountcodes: new Map<string, number>() };
  const lastByBranch = new Map<string, Buffer>();
  let self = '';
  const onData = (buf: Buffer, _from: unknown, reply: (b: Buffer) => void): void => {
    const m = readLite(buf);
    if (!m || !m.request) return;
    const via = h(m, 'via');
    const branch = /branch=([^;,\s]+)/i.exec(via)?.[1] ?? '';
    const key = `${m.method}:${branch}`;
    const prev = lastByBranch.get(key);
    if (prev) { reply(prev); return; }
    const remember = (b: Buffer): void => {
      lastByBranch.set(key, b);
      // Bounded memory: transactions are short.
      if (lastByBranch.size > 200_000) lastByBranch.delete(lastByBranch.keys().next().value!);
    };
    switch (m.method) {
      case 'INVITE': {
        stats.invites++;
        const ac = h(m, 'p-accountcode');
        stats.accountcodes.set(ac, (stats.accountcodes.get(ac) ?? 0) + 1);
        const tag = randomBytes(6).toString('hex');
        reply(response(m, 180, 'Ringing', tag, '', self));
        const ok = response(m, 200, 'OK', tag, '', self);
        remember(ok);
        if (o.answerDelayMs) setTimeout(() => reply(ok), o.answerDelayMs); else reply(ok);
        break;
      }
      case 'ACK': stats.acks++; break;
      case 'BYE': case 'CANCEL': case 'OPTIONS': case 'UPDATE': case 'INFO': {
        if (m.method === 'BYE') stats.byes++;
        const r = response(m, 200, 'OK', '', '', self);
        remember(r);
        reply(r);
        break;
      }
      default: reply(response(m, 405, 'Method Not Allowed', '', 'Allow: INVITE, ACK, BYE, CANCEL, OPTIONS\r\n', self));
    }
  };
  const endpoint = o.proto === 'udp' ? await udpEndpoint(o.host, o.port, onData) : await tcpServerEndpoint(o.host, o.port, onData);
  self = `${o.host}:${endpoint.port}${o.proto === 'tcp' ? ';transport=tcp' : ''}`;
  return { endpoint, stats, close: () => endpoint.close() };
}
