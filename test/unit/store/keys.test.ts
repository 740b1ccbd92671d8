// Idempotency and dialog keys are stored (journal lines, gw_* unique keys, gw_dialog.dlg_key): a journal written by
// one version is replayed by the next, so the keys must never change. These values come from the first
// implementation (one hash update per piece); any rewrite for speed must reproduce them.
import { describe, expect, it } from 'vitest';
import { cloneDialogInfo, dialogKey } from '../../../src/dialog/record.js';
import type { DialogInfo } from '../../../src/proxy/hooks.js';
import { recKey } from '../../../src/store/spec.js';

describe('stored keys are stable across versions', () => {
  it('recKey', () => {
    expect(recKey('acc', 'INVITE', 'a84b4c76e66710@pc33.atlanta.com', '1928301774', '314159', 1764658800123)).toBe('094eada08fea3cf1e25f2574f08ae6f0');
    expect(recKey('cdr', 'ü-call', '', 0)).toBe('d64c53a0b635eafd01bd76a42a4fabc8');
    // length prefixes keep ("ab","c") and ("a","bc") apart
    expect(recKey('ab', 'c')).not.toBe(recKey('a', 'bc'));
  });

  it('dialogKey', () => {
    expect(dialogKey('a84b4c76e66710@pc33.atlanta.com', '1928301774', '314159')).toBe('04041604d1f81ff50c381f23c4aa92c6');
  });
});

describe('cloneDialogInfo', () => {
  const info: DialogInfo = {
    callId: 'c1', callerTag: 'ft', calleeTag: 'tt', fromHeader: '<sip:a@x>;tag=ft', toHeader: '<sip:b@y>;tag=tt',
    callerContact: 'sip:a@198.51.100.1', calleeContact: 'sip:b@10.0.0.5', callerRouteSet: ['<sip:p1;lr>'], calleeRouteSet: [],
    callerHop: { ip: '198.51.100.1', port: 5060, proto: 'udp' }, calleeHop: { ip: '10.0.0.5', port: 5060, proto: 'udp' },
    callerCseq: 1, calleeCseq: 0, recordRoute: ['<sip:gw;lr>'], accountcode: '4242', targetId: 'ast1', createdAt: 1, answeredAt: 2,
  };

  it('is a deep copy: changing the copy leaves the original alone', () => {
    const c = cloneDialogInfo(info);
    expect(c).toEqual(info);
    c.callerRouteSet.push('x');
    c.callerHop.port = 1;
    c.recordRoute[0] = 'y';
    c.callerCseq = 9;
    expect(info.callerRouteSet).toEqual(['<sip:p1;lr>']);
    expect(info.callerHop.port).toBe(5060);
    expect(info.recordRoute).toEqual(['<sip:gw;lr>']);
    expect(info.callerCseq).toBe(1);
  });

  it('does not throw on a restored record that lacks a list', () => {
    const partial = { ...info, recordRoute: undefined } as unknown as DialogInfo;
    expect(cloneDialogInfo(partial).recordRoute).toEqual([]);
  });
});
