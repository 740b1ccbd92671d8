import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { cdrFromCsv, cdrFromEvent, cdrFromTableRow, parseCsvLine, type CdrRecord } from '../../../src/ami/cdr.js';
import { AmiFramer, type AmiMessage } from '../../../src/ami/protocol.js';
import { ZoneClock } from '../../../src/ami/time.js';
import { isGwError } from '../../../src/errors.js';

const fixture = (name: string): Buffer => readFileSync(join(import.meta.dirname, '../../fixtures/ami', name));
const utc = new ZoneClock('UTC');
const at = (s: string): number => Date.parse(`${s}Z`);

function cdrEvents(name: string): AmiMessage[] {
  const out: AmiMessage[] = [];
  new AmiFramer({ banner: () => undefined, message: (m) => { if (m.event === 'Cdr') out.push(m); } }).push(fixture(name));
  return out;
}

describe('Cdr events of the real captures', () => {
  test('01 chan_pjsip answered by the dialplan', () => {
    const [ev] = cdrEvents('01-pjsip-answer.rx.ami');
    expect(cdrFromEvent('ast1', ev!, utc)).toEqual<CdrRecord>({
      box: 'ast1', uniqueId: '1795320443.0', sequence: 0, linkedId: '1795320443.0', accountCode: '4242424242',
      source: '33123456789', destination: '15551234567', context: 'from-proxy-pjsip', callerId: '"" <33123456789>',
      channel: 'PJSIP/proxy-00000000', dstChannel: '', lastApp: 'Hangup', lastData: '',
      start: at('2026-11-22T04:07:23'), answer: at('2026-11-22T04:07:23'), end: at('2026-11-22T04:07:25'),
      duration: 1, billableSeconds: 1, disposition: 'ANSWERED', amaFlags: 'DOCUMENTATION',
      userField: 'a84b4c76e66710@proxy.lab', sipCallId: 'a84b4c76e66710@proxy.lab', origin: 'ami',
    });
  });

  test('02 chan_sip: Sequence 1, account code from SIP_HEADER', () => {
    const [ev] = cdrEvents('02-chansip-answer.rx.ami');
    const r = cdrFromEvent('ast2', ev!, utc);
    expect(r).toMatchObject({ uniqueId: '1795320446.2', sequence: 1, accountCode: '5151515151', channel: 'SIP/proxy-00000000',
      sipCallId: '3848276298220188511@proxy.lab', duration: 1, billableSeconds: 1 });
  });

  test('03 A2Billing-like Dial to a trunk: Sequence 2, the trunk channel, 5 s billed from the caller answer', () => {
    const evs = cdrEvents('03-pjsip-a2blike-dial.rx.ami');
    expect(evs).toHaveLength(1);
    const r = cdrFromEvent('ast1', evs[0]!, utc);
    expect(r).toMatchObject({ uniqueId: '1795320450.4', sequence: 2, linkedId: '1795320450.4', accountCode: '7000000001',
      destination: '915550001111', dstChannel: 'PJSIP/trunk-00000002', lastApp: 'Dial', lastData: 'PJSIP/15550001111@trunk,30',
      start: at('2026-11-22T04:07:30'), end: at('2026-11-22T04:07:36'), duration: 5, billableSeconds: 5,
      sipCallId: '5b8e1a47c2d94f3a9c0e7d21f4a6b8c3@proxy.lab' });
  });

  test('a box in Europe/Paris: local times become UTC', () => {
    const [ev] = cdrEvents('01-pjsip-answer.rx.ami');
    const r = cdrFromEvent('ast1', ev!, new ZoneClock('Europe/Paris'));
    expect(new Date(r.start!).toISOString()).toBe('2026-11-22T03:07:23.000Z');
  });

  test('without the Sequence mapping, a stable negative stand-in keeps two CDRs of one call apart', () => {
    const [ev] = cdrEvents('01-pjsip-answer.rx.ami');
    const lines = ev!.lines.filter(([k]) => k !== 'Sequence' && k !== 'SIPCallID');
    const strip = (extra: Array<[string, string]>): AmiMessage => {
      let m!: AmiMessage;
      const f = new AmiFramer({ banner: () => undefined, message: (x) => { m = x; } }, { expectBanner: false });
      f.push([...lines.map(([k, v]) => (extra.find(([ek]) => ek === k) ?? [k, v])), ['', '']].map(([k, v]) => (k ? `${k}: ${v}` : '')).join('\r\n') + '\r\n');
      return m;
    };
    const a = cdrFromEvent('ast1', strip([]), utc);
    const b = cdrFromEvent('ast1', strip([['DestinationChannel', 'PJSIP/trunk-00000009']]), utc);
    expect(a.sequence).toBeLessThan(0);
    expect(cdrFromEvent('ast1', strip([]), utc).sequence).toBe(a.sequence);
    expect(b.sequence).not.toBe(a.sequence);
    expect(a.sipCallId).toBe('a84b4c76e66710@proxy.lab'); // falls back to UserField
  });

  test('bad values are protocol errors naming the field', () => {
    const [ev] = cdrEvents('01-pjsip-answer.rx.ami');
    const bad = { ...ev!, get: (k: string) => (k.toLowerCase() === 'duration' ? '1x' : ev!.get(k)) } as AmiMessage;
    expect(() => cdrFromEvent('ast1', bad, utc)).toThrowError(/Duration "1x"/);
    const noId = { ...ev!, get: (k: string) => (k.toLowerCase() === 'uniqueid' ? '' : ev!.get(k)) } as AmiMessage;
    let err: unknown;
    try { cdrFromEvent('ast1', noId, utc); } catch (e) { err = e; }
    expect(isGwError(err, 'GW_ERR_AMI_PROTOCOL')).toBe(true);
  });
});

describe('ZoneClock', () => {
  test('DST: New York overlap takes the earlier instant, a gap uses the offset before', () => {
    const ny = new ZoneClock('America/New_York');
    expect(new Date(ny.toUtcMs('2026-11-01 01:30:00')!).toISOString()).toBe('2026-11-01T05:30:00.000Z');
    expect(new Date(ny.toUtcMs('2026-03-08 02:30:00')!).toISOString()).toBe('2026-03-08T07:30:00.000Z');
    expect(new Date(ny.toUtcMs('2026-07-01 12:00:00')!).toISOString()).toBe('2026-07-01T16:00:00.000Z');
    expect(ny.toLocal(Date.parse('2026-07-01T16:00:00Z'))).toBe('2026-07-01 12:00:00');
    expect(ny.toUtcMs('')).toBeNull();
    expect(() => ny.toUtcMs('2026-02-30 00:00:00')).toThrowError(/bad time/);
    expect(() => new ZoneClock('Mars/Olympus')).toThrowError(/unknown time zone/);
  });
});

describe('Master.csv and cdr table', () => {
  const line = '"4242424242","33123456789","15551234567","from-proxy-pjsip","""Alice, Jr"" <33123456789>","PJSIP/proxy-00000000","","Hangup","","2026-11-22 04:07:23","2026-11-22 04:07:23","2026-11-22 04:07:25",1,1,"ANSWERED","DOCUMENTATION","1795320443.0","a84b4c76e66710@proxy.lab"';

  test('cdr_csv quoting: doubled quotes and commas inside a field', () => {
    const f = parseCsvLine(line);
    expect(f).toHaveLength(18);
    expect(f[4]).toBe('"Alice, Jr" <33123456789>');
    expect(f[12]).toBe('1');
    expect(() => parseCsvLine('"abc')).toThrowError(/unterminated/);
  });

  test('a default Master.csv line (18 columns) and one with newcdrcolumns (21)', () => {
    const r = cdrFromCsv('ast1', line, utc);
    expect(r).toMatchObject({ uniqueId: '1795320443.0', accountCode: '4242424242', duration: 1, billableSeconds: 1,
      sipCallId: 'a84b4c76e66710@proxy.lab', origin: 'backfill', start: at('2026-11-22T04:07:23') });
    expect(r.sequence).toBeLessThan(0);
    const r21 = cdrFromCsv('ast1', `${line},"","1795320443.0","7"`, utc);
    expect(r21).toMatchObject({ sequence: 7, linkedId: '1795320443.0' });
    expect(() => cdrFromCsv('ast1', '"a","b"', utc)).toThrowError(/at least 17/);
  });

  test('a cdr table row: end = calldate + duration, answer = end - billsec', () => {
    const r = cdrFromTableRow('ast1', { calldate: '2026-11-22 04:07:30', src: '33123456789', dst: '915550001111', duration: 6,
      billsec: 5, disposition: 'ANSWERED', amaflags: 3, accountcode: '7000000001', uniqueid: '1795320450.4',
      userfield: 'x@proxy.lab', linkedid: '1795320450.4', sequence: 2 }, utc);
    expect(r).toMatchObject({ sequence: 2, amaFlags: 'DOCUMENTATION', start: at('2026-11-22T04:07:30'),
      end: at('2026-11-22T04:07:36'), answer: at('2026-11-22T04:07:31') });
  });
});
