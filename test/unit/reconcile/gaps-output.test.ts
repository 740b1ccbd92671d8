import { describe, expect, it } from 'vitest';
import { buildGapBook } from '../../../src/reconcile/gaps.js';
import { csvField, csvLine } from '../../../src/reconcile/output.js';
import { baseUniqueid, uidKey } from '../../../src/reconcile/types.js';
import { parseSqlUtc } from '../../../src/reconcile/window.js';

const t = (s: string): number => parseSqlUtc(s);

describe('AMI gaps', () => {
  const from = t('2026-11-21 00:00:00');
  const to = t('2026-11-22 00:00:00');

  it('a box is blind between a disconnect and the next connect of any instance', () => {
    const g = buildGapBook([
      { box: 'b1', instance: 'gw1', connectedAt: '2026-11-20 10:00:00', disconnectedAt: '2026-11-21 05:00:00' },
      { box: 'b1', instance: 'gw1', connectedAt: '2026-11-21 05:10:00', disconnectedAt: null },
      { box: 'b2', instance: 'gw1', connectedAt: '2026-11-20 10:00:00', disconnectedAt: '2026-11-21 06:00:00' },
      { box: 'b2', instance: 'gw2', connectedAt: '2026-11-21 05:00:00', disconnectedAt: '2026-11-21 07:00:00' },
    ], from, to, ['b1', 'b2', 'b3'], 0);
    expect(g.gaps.get('b1')).toEqual([{ from: t('2026-11-21 05:00:00'), to: t('2026-11-21 05:10:00') }]);
    expect(g.gaps.get('b2')).toEqual([{ from: t('2026-11-21 07:00:00'), to }]);
    expect(g.gaps.get('b3')).toEqual([{ from, to }]); // configured, never connected
    expect(g.inGap('b1', t('2026-11-21 05:05:00'))).toBe(true);
    expect(g.inGap('b1', t('2026-11-21 05:15:00'))).toBe(false);
    expect(g.inGap(undefined, t('2026-11-21 05:15:00'))).toBe(true); // some box (b3) was blind
  });

  it('a session whose disconnect was never written ends where the instance reconnected', () => {
    const g = buildGapBook([
      { box: 'b1', instance: 'gw1', connectedAt: '2026-11-21 01:00:00', disconnectedAt: null },
      { box: 'b1', instance: 'gw1', connectedAt: '2026-11-21 02:00:00', disconnectedAt: null },
    ], from, to, ['b1'], 0);
    expect(g.gaps.get('b1')).toEqual([{ from, to: t('2026-11-21 01:00:00') }]);
  });
});

describe('uniqueids', () => {
  it('removes A2Billing\'s +1000000000 retry offsets', () => {
    const start = t('2026-11-21 10:00:05') / 1000;
    const u = `${Math.floor(t('2026-11-21 10:00:00') / 1000)}.42`;
    expect(baseUniqueid(u, start)).toBe(u);
    expect(baseUniqueid(`${Number(u.split('.')[0]) + 1e9}.42`, start)).toBe(u);
    expect(baseUniqueid(`${Number(u.split('.')[0]) + 3e9}.42`, start)).toBe(u);
    expect(baseUniqueid('box1-1763719200.42', start)).toBe('box1-1763719200.42');
    expect(uidKey('1.5')).toBe('u312E35');
  });
});

describe('CSV', () => {
  it('quotes and defuses spreadsheet formulas in attacker-controlled fields', () => {
    expect(csvField('a,b')).toBe('"a,b"');
    expect(csvField('say "hi"')).toBe('"say ""hi"""');
    expect(csvField('=HYPERLINK("x")')).toBe('"\'=HYPERLINK(""x"")"');
    expect(csvField('-1+2')).toBe("'-1+2");
    expect(csvField(null)).toBe('');
    expect(csvField(1.5)).toBe('1.5');
    const line = csvLine({ cls: 'unbilled', start: '2026-11-21 10:00:00.000', callid: 'x\r\ny', callref: 'r', box: 'b', uniqueid: 'u', ccCallId: null,
      accountGw: 'a', accountBilled: '', cardId: null, gwDuration: 60, amiDuration: null, billedDuration: null, amount: 0.25, detail: 'd', account: 'a' });
    expect(line).toBe('unbilled,2026-11-21 10:00:00.000,a,a,,"x\r\ny",r,b,u,,60,,,0.25,d\r\n');
  });
});
