import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { billedSeconds, callCost, retryUniqueId } from '../../../src/emulator/a2billing.js';
import { cdrEventFields, wireMessage, type EmuCdr } from '../../../src/emulator/cdr-event.js';

const capture = (name: string): string => readFileSync(join(import.meta.dirname, '../../fixtures/ami', name), 'latin1');
const cdrBlock = (text: string): string => {
  const at = text.indexOf('Event: Cdr\r\n');
  return text.slice(at, text.indexOf('\r\n\r\n', at) + 4);
};

describe('the emulator writes Cdr events byte for byte like Asterisk 20', () => {
  test('01 chan_pjsip', () => {
    const c: EmuCdr = {
      accountCode: '4242424242', source: '33123456789', destination: '15551234567', destinationContext: 'from-proxy-pjsip',
      callerId: '"" <33123456789>', channel: 'PJSIP/proxy-00000000', destinationChannel: '', lastApplication: 'Hangup', lastData: '',
      startTime: '2026-11-22 04:07:23', answerTime: '2026-11-22 04:07:23', endTime: '2026-11-22 04:07:25', duration: 1,
      billableSeconds: 1, disposition: 'ANSWERED', amaFlags: 'DOCUMENTATION', uniqueId: '1795320443.0', userField: 'a84b4c76e66710@proxy.lab',
      extras: { LinkedID: '1795320443.0', Sequence: '0', SIPCallID: 'a84b4c76e66710@proxy.lab', TalkTime: '', DialStatus: '' },
    };
    expect(wireMessage(cdrEventFields(c))).toBe(cdrBlock(capture('01-pjsip-answer.rx.ami')));
  });

  test('03 A2Billing-like Dial', () => {
    const c: EmuCdr = {
      accountCode: '7000000001', source: '33123456789', destination: '915550001111', destinationContext: 'from-proxy-pjsip',
      callerId: '"" <33123456789>', channel: 'PJSIP/proxy-00000001', destinationChannel: 'PJSIP/trunk-00000002', lastApplication: 'Dial',
      lastData: 'PJSIP/15550001111@trunk,30', startTime: '2026-11-22 04:07:30', answerTime: '2026-11-22 04:07:30',
      endTime: '2026-11-22 04:07:36', duration: 5, billableSeconds: 5, disposition: 'ANSWERED', amaFlags: 'DOCUMENTATION',
      uniqueId: '1795320450.4', userField: '5b8e1a47c2d94f3a9c0e7d21f4a6b8c3@proxy.lab',
      extras: { LinkedID: '1795320450.4', Sequence: '2', SIPCallID: '5b8e1a47c2d94f3a9c0e7d21f4a6b8c3@proxy.lab', TalkTime: '5', DialStatus: 'ANSWER' },
    };
    expect(wireMessage(cdrEventFields(c))).toBe(cdrBlock(capture('03-pjsip-a2blike-dial.rx.ami')));
  });

  test('only the configured mappings follow UserField', () => {
    const keys = cdrEventFields({ extras: {} } as unknown as EmuCdr, ['LinkedID']).map(([k]) => k);
    expect(keys.slice(-3)).toEqual(['UniqueID', 'UserField', 'LinkedID']);
  });
});

describe('A2Billing rating rules', () => {
  test('billed seconds: initial block, then whole billing blocks; nothing when not answered', () => {
    expect(billedSeconds(0, 30, 6)).toBe(0);
    expect(billedSeconds(1, 30, 6)).toBe(30);
    expect(billedSeconds(30, 30, 6)).toBe(30);
    expect(billedSeconds(31, 30, 6)).toBe(36);
    expect(billedSeconds(61, 60, 60)).toBe(120);
    expect(billedSeconds(7, 0, 0)).toBe(7);
  });

  test('cost: rate per minute on billed seconds plus the connect charge', () => {
    const rate = { id: 5, idtariffplan: 1, idtariffgroup: 1, dialprefix: '33', rateinitial: 0.1, initblock: 60, billingblock: 60, connectcharge: 0.05, disconnectcharge: 0 };
    expect(callCost(rate, 60)).toBeCloseTo(0.15, 5);
    expect(callCost(rate, 0)).toBe(0);
    expect(callCost(undefined, 60)).toBe(0);
  });

  test('a retry inside one call adds 1000000000 to the uniqueid', () => {
    expect(retryUniqueId('1795320443.5', 0)).toBe('1795320443.5');
    expect(retryUniqueId('1795320443.5', 1)).toBe('2795320443.5');
    expect(retryUniqueId('1795320443.5', 2)).toBe('3795320443.5');
  });
});
