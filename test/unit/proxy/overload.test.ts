// The admission control of new calls: how the admitted share follows the measured queue delay, and that
// admissions are spread evenly (a credit counter, not chance).
import { describe, expect, it } from 'vitest';
import { AdmissionControl } from '../../../src/proxy/overload.js';

function admitted(a: AdmissionControl, n: number): number {
  let k = 0;
  for (let i = 0; i < n; i++) if (a.admit()) k++;
  return k;
}

describe('AdmissionControl', () => {
  it('admits every new call while the queue delay stays under the target', () => {
    const a = new AdmissionControl({ targetDelayMs: 200 });
    for (const ms of [0, 3, 90, 150, 199, 200]) a.observe(ms);
    expect(a.state().admitShare).toBe(1);
    expect(admitted(a, 1000)).toBe(1000);
    expect(a.state().rejected).toBe(0);
  });

  it('ignores one measurement over the target, then shrinks the share by target/delay and spreads admissions evenly', () => {
    const a = new AdmissionControl({ targetDelayMs: 200 });
    a.observe(900); // one GC pause
    a.observe(20);
    a.observe(250);
    expect(a.state().admitShare).toBe(1);
    a.observe(250);
    expect(a.state().admitShare).toBeCloseTo(0.8);
    // exactly four in five, never two refusals in a row
    const seq = Array.from({ length: 40 }, () => a.admit());
    expect(seq.filter(Boolean)).toHaveLength(32);
    for (let i = 1; i < seq.length; i++) expect(seq[i - 1] === false && seq[i] === false).toBe(false);
    expect(a.state()).toMatchObject({ rejected: 8, delayMs: 250 });
    // far over the target: halved; just over: trimmed by a tenth
    a.observe(2000);
    expect(a.state().admitShare).toBeCloseTo(0.4);
    a.observe(205);
    expect(a.state().admitShare).toBeCloseTo(0.36);
  });

  it('refuses every new call once the share falls under the floor, and gives it back step by step', () => {
    const changes: boolean[] = [];
    const a = new AdmissionControl({ targetDelayMs: 100 }, (overloaded) => changes.push(overloaded));
    for (let i = 0; i < 25; i++) a.observe(1000);
    expect(a.state().admitShare).toBe(0);
    expect(admitted(a, 100)).toBe(0);
    // between half the target and the target: hold
    a.observe(80);
    expect(a.state().admitShare).toBe(0);
    // under half the target: +0.05 per measurement, back to all after 20
    a.observe(10);
    expect(a.state().admitShare).toBeCloseTo(0.05);
    for (let i = 0; i < 18; i++) a.observe(10);
    expect(a.state().admitShare).toBeLessThan(1);
    a.observe(10);
    expect(a.state().admitShare).toBe(1);
    expect(admitted(a, 50)).toBe(50);
    expect(changes).toEqual([true, false]);
    expect(a.state().rejected).toBe(100);
  });
});
