import { describe, expect, it } from 'vitest';
import { callRef } from '../../../src/callref.js';
import { arrayCursor, mergeByKey } from '../../../src/reconcile/merge.js';
import { ALICE, BOB, ami, cc, classOf, gw, reconcileRows, retryUid, uid } from './harness.js';

const T = '2026-11-21 10:00:00';

describe('matcher: one class per call', () => {
  it('a call seen identically by the gateway, AMI and A2Billing is matched', async () => {
    const u = uid(T, 11);
    const { results } = await reconcileRows({
      gw: [gw('call-ok')], ami: [ami(u, { callid: 'call-ok' })], cc: [cc(1, u, { custom1: callRef('call-ok') })],
    });
    expect(results).toHaveLength(1);
    expect(results[0]).toMatchObject({ cls: 'matched', amount: 0, gwDuration: 60, amiDuration: 60, billedDuration: 60, uniqueid: u, ccCallId: 1 });
  });

  it('retries: several cc_call rows (uniqueid + 1000000000 per retry) are one call; the answered one is compared', async () => {
    const u = uid(T, 12);
    const { results } = await reconcileRows({
      gw: [gw('call-retry', { dur: 45 })],
      ami: [ami(u, { callid: 'call-retry', billsec: 45 })],
      cc: [
        cc(1, u, { custom1: callRef('call-retry'), terminatecauseid: 5, sessiontime: 0, sessionbill: 0 }),
        cc(2, retryUid(u, 1), { custom1: callRef('call-retry'), terminatecauseid: 6, sessiontime: 0, sessionbill: 0 }),
        cc(3, retryUid(u, 2), { custom1: callRef('call-retry'), sessiontime: 45, sessionbill: 0.0225 }),
      ],
    });
    expect(results).toHaveLength(1);
    expect(results[0]).toMatchObject({ cls: 'matched', billedDuration: 45, ccCallId: 3, uniqueid: u });
  });

  it('retries without a2b_custom1 are joined through the base uniqueid of the AMI record', async () => {
    const u = uid(T, 13);
    const { results, matcher } = await reconcileRows({
      gw: [gw('call-nocustom')],
      ami: [ami(u, { callid: 'call-nocustom' })],
      cc: [cc(1, u, { terminatecauseid: 3, sessiontime: 0, sessionbill: 0 }), cc(2, retryUid(u, 1), {})],
    });
    expect(results).toHaveLength(1);
    expect(results[0]!.cls).toBe('matched');
    expect(matcher.stats.joinedByUniqueid).toBeGreaterThan(0);
  });

  it('several Cdr events for one call (Sequence): the answered ones count, the call is one', async () => {
    const u = uid(T, 14);
    const { results } = await reconcileRows({
      gw: [gw('call-seq', { dur: 30 })],
      ami: [
        ami(u, { callid: 'call-seq', disposition: 'NO ANSWER', billsec: 0 }),
        ami(u, { callid: 'call-seq', disposition: 'ANSWERED', billsec: 30 }),
      ],
      cc: [cc(1, u, { custom1: callRef('call-seq'), sessiontime: 30, sessionbill: 0.015 })],
    });
    expect(results).toHaveLength(1);
    expect(results[0]).toMatchObject({ cls: 'matched', amiDuration: 30 });
  });

  it('an AMI record without the Call-ID still joins its call through the uniqueid', async () => {
    const u = uid(T, 15);
    const { results } = await reconcileRows({
      gw: [gw('call-noamicid')], ami: [ami(u, { callid: '' })], cc: [cc(1, u, { custom1: callRef('call-noamicid') })],
    });
    expect(results).toHaveLength(1);
    expect(results[0]!.cls).toBe('matched');
  });

  it('a short call billed a whole first block is matched: durations compare answered seconds, not billed ones', async () => {
    const u = uid(T, 17);
    const { results } = await reconcileRows({
      gw: [gw('call-2s', { dur: 2 })],
      ami: [ami(u, { callid: 'call-2s', billsec: 2 })],
      cc: [cc(1, u, { custom1: callRef('call-2s'), sessiontime: 60, realSessiontime: 2, sessionbill: 0.03 })],
    });
    expect(results).toHaveLength(1);
    expect(results[0]!.cls).toBe('matched');
  });

  it('duration mismatch beyond the tolerance, with the under-billed money', async () => {
    const u = uid(T, 16);
    const { results } = await reconcileRows({
      gw: [gw('call-short', { dur: 120 })],
      ami: [ami(u, { callid: 'call-short', billsec: 120 })],
      cc: [cc(1, u, { custom1: callRef('call-short'), sessiontime: 60, sessionbill: 0.03 })],
    });
    expect(results[0]).toMatchObject({ cls: 'duration_mismatch', gwDuration: 120, billedDuration: 60 });
    // 4420 rate 0.03/min, 30 s then 6 s blocks: 120 s = 0.06, billed 0.03
    expect(results[0]!.amount).toBeCloseTo(0.03, 5);
    expect(results[0]!.detail).toContain('under-billed by 60s');
  });

  it('within the tolerance is matched', async () => {
    const u = uid(T, 17);
    const { results } = await reconcileRows({
      gw: [gw('call-tol', { dur: 62 })], ami: [ami(u, { callid: 'call-tol' })], cc: [cc(1, u, { custom1: callRef('call-tol') })],
    }, { tolerance: 2 });
    expect(results[0]!.cls).toBe('matched');
  });

  it('account mismatch: A2Billing billed another card than the account code the gateway injected', async () => {
    const u = uid(T, 18);
    const { results } = await reconcileRows({
      gw: [gw('call-wrongcard')], ami: [ami(u, { callid: 'call-wrongcard' })],
      cc: [cc(1, u, { custom1: callRef('call-wrongcard'), cardId: BOB.id, sessionbill: 0.03 })],
    });
    expect(results[0]).toMatchObject({ cls: 'account_mismatch', accountGw: ALICE.username, accountBilled: BOB.username, amount: 0.03 });
  });

  it('answered but unbilled: priced with the card tariff (longest prefix, blocks)', async () => {
    const u = uid(T, 19);
    const { results } = await reconcileRows({
      gw: [gw('call-unbilled', { dur: 95, dstUser: '33612345678' })], ami: [ami(u, { callid: 'call-unbilled', billsec: 95 })],
    });
    // prefix 33: 0.05 connect + 0.10/min in 60 s blocks: 95 s -> 120 s -> 0.05 + 0.20
    expect(results[0]).toMatchObject({ cls: 'unbilled', gwDuration: 95, billedDuration: null, amiDuration: 95 });
    expect(results[0]!.amount).toBeCloseTo(0.25, 5);
  });

  it('answered but A2Billing only has unanswered rows: unbilled', async () => {
    const u = uid(T, 20);
    const { results } = await reconcileRows({
      gw: [gw('call-unb2')], ami: [ami(u, { callid: 'call-unb2' })],
      cc: [cc(1, u, { custom1: callRef('call-unb2'), terminatecauseid: 3, sessiontime: 0, sessionbill: 0 })],
    });
    expect(results[0]!.cls).toBe('unbilled');
  });

  it('bypass: billed and answered on Asterisk, never through the gateway; AMI and cc_call join by uniqueid into ONE call', async () => {
    const u = uid(T, 21);
    const { results } = await reconcileRows({
      ami: [ami(u, { callid: 'direct-to-asterisk', accountcode: BOB.username })],
      cc: [cc(1, u, { cardId: BOB.id, sessionbill: 0.4 })],
    });
    expect(results).toHaveLength(1);
    expect(results[0]).toMatchObject({ cls: 'bypass', amount: 0.4, account: BOB.username, accountBilled: BOB.username });
  });

  it('bypass without a bill is priced from the AMI billsec', async () => {
    const u = uid(T, 22);
    const { results } = await reconcileRows({ ami: [ami(u, { callid: 'direct-2', billsec: 60, dst: '1555' })] });
    expect(results[0]).toMatchObject({ cls: 'bypass' });
    expect(results[0]!.amount).toBeCloseTo(0.02, 5);
  });

  it('unanswered but billed: the gateway saw a failure, A2Billing charged', async () => {
    const u = uid(T, 23);
    const { results } = await reconcileRows({
      gw: [gw('call-busy', { answered: false })],
      cc: [cc(1, u, { custom1: callRef('call-busy'), sessiontime: 30, sessionbill: 0.02 })],
    });
    expect(results[0]).toMatchObject({ cls: 'unanswered_billed', amount: 0.02 });
  });

  it('an unanswered call with no bill is matched, with or without AMI and cc_call rows', async () => {
    const u = uid(T, 24);
    const { results } = await reconcileRows({
      gw: [gw('call-fail-a', { answered: false }), gw('call-fail-b', { answered: false })],
      cc: [cc(1, u, { custom1: callRef('call-fail-b'), terminatecauseid: 2, sessiontime: 0, sessionbill: 0 })],
    });
    expect(results.map((r) => r.cls)).toEqual(['matched', 'matched']);
  });

  it('missing AMI record during a known AMI gap vs outside one', async () => {
    const u1 = uid('2026-11-21 01:10:00', 1);
    const u2 = uid('2026-11-21 03:00:00', 2);
    const sessions = [
      { box: 'box1', instance: 'gw1', connectedAt: '2026-11-20 12:00:00.000', disconnectedAt: '2026-11-21 01:00:00.000' },
      { box: 'box1', instance: 'gw1', connectedAt: '2026-11-21 01:30:00.000', disconnectedAt: null },
    ];
    const { results } = await reconcileRows({
      gw: [gw('call-in-gap', { at: '2026-11-21 01:10:00.000' }), gw('call-no-gap', { at: '2026-11-21 03:00:00.000' }), gw('call-learn', { at: '2026-11-21 04:00:00.000' })],
      ami: [ami(uid('2026-11-21 04:00:00', 3), { callid: 'call-learn', at: '2026-11-21 04:00:00' })],
      cc: [
        cc(1, u1, { custom1: callRef('call-in-gap'), at: '2026-11-21 01:10:02' }),
        cc(2, u2, { custom1: callRef('call-no-gap'), at: '2026-11-21 03:00:02' }),
        cc(3, uid('2026-11-21 04:00:00', 3), { custom1: callRef('call-learn'), at: '2026-11-21 04:00:02' }),
      ],
    }, { sessions });
    expect(classOf(results, 'call-in-gap')).toBe('ami_missing_gap');
    expect(classOf(results, 'call-no-gap')).toBe('ami_missing');
    expect(classOf(results, 'call-learn')).toBe('matched');
    // the box was learned from the matched call on the same destination
    expect(results.find((r) => r.callid === 'call-in-gap')!.box).toBe('box1');
  });

  it('calls crossing midnight belong to the day they started on', async () => {
    const late = uid('2026-11-21 23:59:58', 30);
    const early = uid('2026-11-20 23:59:59', 31);
    const { results, matcher } = await reconcileRows({
      gw: [gw('call-late', { at: '2026-11-21 23:59:58.500', dur: 120 }), gw('call-yesterday', { at: '2026-11-20 23:59:59.000' })],
      ami: [ami(late, { callid: 'call-late', at: '2026-11-21 23:59:58', billsec: 120 }), ami(early, { callid: 'call-yesterday', at: '2026-11-20 23:59:59' })],
      cc: [
        cc(1, late, { custom1: callRef('call-late'), at: '2026-11-22 00:00:20', sessiontime: 120, sessionbill: 0.06 }),
        cc(2, early, { custom1: callRef('call-yesterday'), at: '2026-11-21 00:00:10' }),
      ],
    });
    expect(results.map((r) => [r.callid, r.cls])).toEqual([['call-late', 'matched']]);
    expect(matcher.stats.outOfWindow).toBe(1);
  });

  it('knowing which uniqueids lack a call reference, only joinable groups wait: a day without AMI holds nothing back', async () => {
    const rows = { gw: [] as ReturnType<typeof gw>[], ami: [] as ReturnType<typeof ami>[], cc: [] as ReturnType<typeof cc>[] };
    for (let i = 0; i < 50; i++) {
      rows.gw.push(gw(`noami-${i}`));
      rows.cc.push(cc(i + 1, uid(T, 500 + i), { custom1: callRef(`noami-${i}`) }));
    }
    const u = uid(T, 600);
    rows.gw.push(gw('joined-late'));
    rows.cc.push(cc(99, u, { custom1: callRef('joined-late') }));
    rows.ami.push(ami(u, { callid: '' }));
    const { results, matcher } = await reconcileRows(rows, { uidOnly: true });
    expect(results).toHaveLength(51);
    expect(results.filter((r) => r.cls === 'ami_missing')).toHaveLength(50);
    expect(results.find((r) => r.callid === 'joined-late')!.cls).toBe('matched');
    expect(matcher.stats.pendingPeak).toBe(1);
  });

  it('the mixed day gives the same classes with the uniqueid pre-read', async () => {
    const rows = { gw: [] as ReturnType<typeof gw>[], ami: [] as ReturnType<typeof ami>[], cc: [] as ReturnType<typeof cc>[] };
    for (let i = 0; i < 120; i++) {
      const id = `pre-${i}`;
      const u = uid(T, 700 + i);
      if (i % 13 !== 0) rows.gw.push(gw(id));
      if (i % 7 !== 0) rows.ami.push(ami(u, { callid: i % 4 === 0 ? '' : id }));
      if (i % 5 !== 0) rows.cc.push(cc(i + 1, u, { custom1: i % 3 === 0 && i % 4 !== 0 ? '' : callRef(id) }));
    }
    const a = await reconcileRows(rows);
    const b = await reconcileRows(rows, { uidOnly: true });
    const key = (r: { callid: string; cls: string; uniqueid: string }) => `${r.callid}|${r.uniqueid}|${r.cls}`;
    expect(b.results.map(key).sort()).toEqual(a.results.map(key).sort());
  });

  it('a cc_call row with neither a2b_custom1 nor an AMI record naming the Call-ID cannot be tied to the gateway: unbilled + bypass', async () => {
    const u = uid(T, 40);
    const { results } = await reconcileRows({ gw: [gw('call-untied')], cc: [cc(1, u, {})] });
    expect(results.map((r) => r.cls).sort()).toEqual(['bypass', 'unbilled']);
  });

  it('the merge refuses a source that is not ordered by key', async () => {
    const rows = [gw('b'), gw('a')].sort((x, y) => (x.k < y.k ? 1 : -1));
    await expect(mergeByKey({ gw: arrayCursor(rows), ami: arrayCursor([]), cc: arrayCursor([]) }, () => undefined)).rejects.toThrow(/not ordered/);
  });

  it('every call lands in exactly one class in a mixed day', async () => {
    const rows = { gw: [] as ReturnType<typeof gw>[], ami: [] as ReturnType<typeof ami>[], cc: [] as ReturnType<typeof cc>[] };
    for (let i = 0; i < 200; i++) {
      const id = `mix-${i}`;
      const u = uid(T, 100 + i);
      rows.gw.push(gw(id));
      // Rows without the Call-ID (AMI without userfield, cc_call without a2b_custom1) only where the other
      // Asterisk-side source carries it: with neither, nothing ties them to the gateway's call (see the next test).
      const hasCc = i % 5 !== 0;
      if (i % 7 !== 0) rows.ami.push(ami(u, { callid: i % 11 === 0 && hasCc ? '' : id }));
      const amiHasCallId = i % 7 !== 0 && !(i % 11 === 0 && hasCc);
      if (i % 5 !== 0) rows.cc.push(cc(i + 1, u, { custom1: i % 3 === 0 && amiHasCallId ? '' : callRef(id) }));
    }
    const { results } = await reconcileRows(rows);
    expect(results).toHaveLength(200);
    expect(new Set(results.map((r) => r.callid)).size).toBe(200);
    for (const r of results) {
      const i = Number(r.callid.slice(4));
      const want = i % 5 === 0 ? 'unbilled' : i % 7 === 0 ? 'ami_missing' : 'matched';
      expect([r.callid, r.cls]).toEqual([r.callid, want]);
    }
  });
});
