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

  it('shrinks the share by a quarter per measurement over the target and spreads admissions evenly', () => {
    const a = new AdmissionControl({ targetDelayMs: 200 });
    a.observe(350);
    expect(a.state().admitShare).toBeCloseTo(0.75);
    // exactly three in four, never two refusals in a row
    const seq = Array.from({ length: 40 }, () => a.admit());
    expect(seq.filter(Boolean)).toHaveLength(30);
    for (let i = 1; i < seq.length; i++) expect(seq[i - 1] === false && seq[i] === false).toBe(false);
    expect(a.state()).toMatchObject({ rejected: 10, delayMs: 350 });
  });

  it('refuses every new call once the share falls under the floor, and gives it back step by step', () => {
    const changes: boolean[] = [];
    const a = new AdmissionControl({ targetDelayMs: 100 }, (overloaded) => changes.push(overloaded));
    for (let i = 0; i < 20; i++) a.observe(1000);
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
