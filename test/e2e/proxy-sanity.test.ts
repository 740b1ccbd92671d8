// The routing script's answers to requests it will not route, over real sockets, with hand-written wire
// bytes: each rejection with its exact status, the monitoring OPTIONS, and P-Accountcode spoofing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SipUa, type HostPort, type UaMessage } from '../helpers/sip-ua.js';
import { startCallee, startGateway, sleep, type Gateway } from './proxy-harness.js';

let gw: Gateway;
let callee: SipUa;
let ua: SipUa;
let n = 0;

beforeAll(async () => {
  const c = await startCallee({ behaviour: { kind: 'answer' } });
  callee = c.ua;
  gw = await startGateway({ targets: [c.target], sip: { maxMessageSize: 2048 } });
  ua = await SipUa.start({ name: 'probe' });
});
afterAll(async () => {
  await ua.close();
  await gw.proxy.stop();
  await callee.close();
});

/** A request as wire bytes; `lines` replace the default header block when given. */
function wire(method: string, ruri: string, extra: string[] = [], opts: { omit?: string[]; via?: HostPort; mf?: string; body?: string } = {}): { text: string; callId: string; branch: string } {
  n++;
  const callId = `sanity-${n}-${Date.now()}@probe`;
  const branch = `z9hG4bKsanity${n}x${Date.now()}`;
  const v = opts.via ?? ua.address('udp');
  const body = opts.body ?? '';
  const headers: Array<[string, string]> = [
    ['Via', `SIP/2.0/${v.proto.toUpperCase()} 127.0.0.1:${v.port};branch=${branch};rport`],
    ['Max-Forwards', opts.mf ?? '70'],
    ['From', `<sip:probe@127.0.0.1>;tag=f${n}`],
    ['To', `<${ruri}>`],
    ['Call-ID', callId],
    ['CSeq', `1 ${method}`],
    ['Contact', `<sip:probe@127.0.0.1:${v.port}>`],
  ];
  const kept = headers.filter(([k]) => !(opts.omit ?? []).includes(k));
  const text = [`${method} ${ruri} SIP/2.0`, ...kept.map(([k, val]) => `${k}: ${val}`), ...extra, `Content-Length: ${Buffer.byteLength(body)}`, '', body].join('\r\n');
  return { text, callId, branch };
}

async function send(w: { text: string; callId: string }, to: HostPort = gw.udp, timeoutMs = 2000): Promise<UaMessage> {
  ua.sendRaw(w.text, to);
  return ua.waitFor((m) => !m.isRequest && m.callId === w.callId && m.status >= 200, timeoutMs);
}

describe('proxy script: sanity and policy answers', () => {
  it('483 when Max-Forwards is 0', async () => {
    const r = await send(wire('INVITE', gw.ruri('100'), [], { mf: '0' }));
    expect([r.status, r.reason]).toEqual([483, 'Too Many Hops']);
  });

  it('513 for a message larger than sip.maxMessageSize', async () => {
    const r = await send(wire('INVITE', gw.ruri('100'), [], { body: 'x'.repeat(3000) }));
    expect(r.status).toBe(513);
  });

  it('400 saying what was wrong for malformed requests', async () => {
    const noCallId = wire('INVITE', gw.ruri('100'));
    const text = noCallId.text.replace(/^Call-ID: .*\r\n/m, '');
    ua.sendRaw(text, gw.udp);
    const r1 = await ua.waitFor((m) => !m.isRequest && m.status === 400 && m.topBranch === noCallId.branch);
    expect(r1.reason).toBe('Missing Call-ID');

    const badCseq = wire('INVITE', gw.ruri('100'));
    const r2 = await send({ text: badCseq.text.replace('CSeq: 1 INVITE', 'CSeq: one INVITE'), callId: badCseq.callId });
    expect([r2.status, r2.reason]).toEqual([400, 'Bad CSeq']);

    const mismatch = wire('INVITE', gw.ruri('100'));
    const r3 = await send({ text: mismatch.text.replace('CSeq: 1 INVITE', 'CSeq: 1 BYE'), callId: mismatch.callId });
    expect([r3.status, r3.reason]).toEqual([400, 'CSeq method does not match']);

    const badMf = wire('INVITE', gw.ruri('100'), [], { mf: 'lots' });
    const r4 = await send(badMf);
    expect([r4.status, r4.reason]).toEqual([400, 'Bad Max-Forwards']);
  });

  it('416 for a non-SIP Request-URI, 420 for a Proxy-Require we do not support', async () => {
    const tel = await send(wire('INVITE', 'tel:+442071234567'));
    expect([tel.status, tel.reason]).toEqual([416, 'Unsupported URI Scheme']);
    const req = await send(wire('INVITE', gw.ruri('100'), ['Proxy-Require: foo']));
    expect([req.status, req.reason]).toEqual([420, 'Bad Extension']);
    expect(req.header('unsupported')).toBe('foo');
  });

  it('over TCP too: 483, and 400 for a stream message without Content-Length', async () => {
    const tcp = ua.address('tcp');
    const r = await send(wire('INVITE', gw.ruri('100', 'tcp'), [], { via: tcp, mf: '0' }), gw.tcp);
    expect([r.status, r.reason]).toEqual([483, 'Too Many Hops']);
    const w = wire('OPTIONS', `sip:127.0.0.1:${gw.tcp.port};transport=tcp`, [], { via: tcp });
    const noCl = w.text.replace(/Content-Length: 0\r\n/, '');
    const r2 = await send({ text: noCl, callId: w.callId }, gw.tcp);
    expect(r2.status).toBe(400);
  });

  it('403 for a preloaded Route to somewhere else; a Route naming the gateway is consumed', async () => {
    const r = await send(wire('INVITE', gw.ruri('100'), ['Route: <sip:10.9.9.9;lr>']));
    expect([r.status, r.reason]).toEqual([403, 'Preload Route denied']);

    const own = wire('INVITE', gw.ruri('100'), [`Route: <sip:127.0.0.1:${gw.udp.port};lr>`]);
    const ok = await send(own);
    expect(ok.status).toBe(200);
    const inv = await callee.waitFor((m) => m.method === 'INVITE' && m.callId === own.callId);
    expect(inv.headerValues('route')).toEqual([]);
  });

  it('484 when the Request-URI has no user part', async () => {
    const r = await send(wire('INVITE', `sip:127.0.0.1:${gw.udp.port}`));
    expect([r.status, r.reason]).toEqual([484, 'Address Incomplete']);
  });

  it('a refusal is stateless: never ACKed (a spoofed source), it is sent once per request received, and no state is kept', async () => {
    const before = gw.proxy.state()!.serverTransactions;
    const w = wire('INVITE', `sip:127.0.0.1:${gw.udp.port}`);
    const answers = (): UaMessage[] => ua.responses.filter((m) => m.callId === w.callId);
    ua.sendRaw(w.text, gw.udp);
    await sleep(1000); // T1 is 100 ms here: a stateful 484 would have been resent at 100, 300 and 700 ms
    expect(answers().map((m) => m.status)).toEqual([484]);
    expect(gw.proxy.state()!.serverTransactions).toBeLessThanOrEqual(before);
    ua.sendRaw(w.text, gw.udp); // the same INVITE again (a retransmission): one more answer, not a train
    await sleep(300);
    expect(answers().map((m) => m.status)).toEqual([484, 484]);
  });

  it('405 with Allow for initial non-INVITE requests', async () => {
    for (const m of ['MESSAGE', 'REGISTER', 'SUBSCRIBE', 'BYE']) {
      const r = await send(wire(m, gw.ruri('100')));
      expect([m, r.status]).toEqual([m, 405]);
      expect(r.header('allow')).toMatch(/INVITE/);
    }
  });

  it('200 to OPTIONS addressed to the gateway itself (monitoring), 405 to OPTIONS for elsewhere', async () => {
    const r = await send(wire('OPTIONS', `sip:127.0.0.1:${gw.udp.port}`));
    expect(r.status).toBe(200);
    expect(r.header('allow')).toMatch(/INVITE/);
    const r2 = await send(wire('OPTIONS', gw.ruri('monitor')));
    expect(r2.status).toBe(200);
    const tcp = await send(wire('OPTIONS', `sip:127.0.0.1:${gw.tcp.port};transport=tcp`, [], { via: ua.address('tcp') }), gw.tcp);
    expect(tcp.status).toBe(200);
    const elsewhere = await send(wire('OPTIONS', 'sip:someone@192.0.2.7'));
    expect(elsewhere.status).toBe(405);
  });

  it('404 "Not here" for an in-dialog request that does not carry our Route', async () => {
    const w = wire('BYE', gw.ruri('100'));
    const r = await send({ text: w.text.replace(/^To: (.*)$/m, 'To: $1;tag=abc'), callId: w.callId });
    expect([r.status, r.reason]).toEqual([404, 'Not here']);
  });

  it('404 for an in-dialog request carrying our address in a Route we did not issue (no open relay)', async () => {
    // unsigned, and signed for another call
    const call = await (async () => {
      const w = wire('INVITE', gw.ruri('100'));
      const ok = await send(w);
      expect(ok.status).toBe(200);
      return { callId: w.callId, rr: ok.headerValues('record-route')[0]! };
    })();
    expect(call.rr).toMatch(/;sig=[A-Za-z0-9_-]{22}>$/);
    for (const route of [`<sip:127.0.0.1:${gw.udp.port};lr>`, call.rr]) {
      const w = wire('INVITE', `sip:victim@127.0.0.1:${callee.address('udp').port}`, [`Route: ${route}`]);
      const r = await send({ text: w.text.replace(/^To: (.*)$/m, 'To: $1;tag=forged'), callId: w.callId });
      expect([r.status, r.reason]).toEqual([404, 'Not here']);
      expect(callee.received.filter((m) => m.callId === w.callId)).toEqual([]);
    }
  });

  it('481 for a CANCEL matching nothing, and silence for a stray ACK', async () => {
    const r = await send(wire('CANCEL', gw.ruri('100')));
    expect(r.status).toBe(481);
    const ack = wire('ACK', gw.ruri('100'));
    ua.sendRaw(ack.text, gw.udp);
    const ackDlg = wire('ACK', gw.ruri('100'));
    ua.sendRaw(ackDlg.text.replace(/^To: (.*)$/m, 'To: $1;tag=zzz'), gw.udp);
    await sleep(150);
    expect(ua.responses.filter((m) => m.callId === ack.callId || m.callId === ackDlg.callId)).toEqual([]);
    expect(callee.received.filter((m) => m.callId === ack.callId || m.callId === ackDlg.callId)).toEqual([]);
  });

  it('strips every spoofed P-Accountcode and Proxy-Authorization; the callee sees exactly one trusted account code', async () => {
    const w = wire('INVITE', gw.ruri('100'), [
      'P-Accountcode: 1111111111',
      'p-accountcode: 2222222222',
      'P-ACCOUNTCODE: 3333333333, 4444444444',
      'P-AccountCode:5555555555',
      'P-Accountcode  : 6666666666',
      'Proxy-Authorization: Digest username="x", realm="y", nonce="z", uri="sip:100@gw", response="0"',
      'X-A2B-Callref: forged',
    ]);
    const r = await send(w);
    expect(r.status).toBe(200);
    const inv = await callee.waitFor((m) => m.method === 'INVITE' && m.callId === w.callId);
    expect(inv.headerLines('p-accountcode')).toEqual(['4242424242']);
    for (const spoofed of ['1111111111', '2222222222', '3333333333', '4444444444', '5555555555', '6666666666']) {
      expect(inv.raw).not.toContain(spoofed);
    }
    expect(inv.headerLines('proxy-authorization')).toEqual([]);
    expect(inv.headerLines('x-a2b-callref')).toHaveLength(1);
    expect(inv.header('x-a2b-callref')).not.toBe('forged');
  });

  it('survives hostile bytes and keeps answering', async () => {
    const junk = [
      Buffer.from([0, 1, 2, 3, 255, 254]),
      Buffer.from('INVITE\r\n\r\n'),
      Buffer.from('INVITE sip:x@y SIP/2.0\r\nVia: garbage\r\n\r\n'),
      Buffer.from('SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bKnope\r\nCSeq: 1 INVITE\r\n\r\n'),
      Buffer.from(`INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:${ua.address('udp').port};branch=z9hG4bKx\r\nContent-Length: 99999\r\n\r\n`),
      Buffer.from('\r\n\r\n'),
    ];
    for (const j of junk) {
      ua.sendRaw(j, gw.udp);
      ua.sendRaw(j, gw.tcp);
    }
    await sleep(100);
    const r = await send(wire('OPTIONS', `sip:127.0.0.1:${gw.udp.port}`));
    expect(r.status).toBe(200);
  });
});
