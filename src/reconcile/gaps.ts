// When was a box's AMI blind? gw_ami_session holds the intervals each gateway instance was connected to a
// box; a box is covered while at least one instance is connected. Everything else inside the range is a gap.
// A session whose disconnect was never recorded (the process died) ends where the same instance's next
// session starts; with no next session it is taken as still connected.

import { parseSqlUtc } from './window.js';

export interface AmiSessionRow {
  box: string;
  instance: string;
  connectedAt: string;
  disconnectedAt: string | null;
}

export interface Interval {
  from: number;
  to: number;
}

export interface GapBook {
  /** Gaps per known box (ms, clipped to the range). */
  readonly gaps: ReadonlyMap<string, readonly Interval[]>;
  /** Was `box` blind at `t` (± slack)? With box undefined: was any known box blind? */
  inGap(box: string | undefined, t: number): boolean;
}

function mergeIntervals(xs: Interval[]): Interval[] {
  xs.sort((a, b) => a.from - b.from);
  const out: Interval[] = [];
  for (const x of xs) {
    const last = out[out.length - 1];
    if (last && x.from <= last.to) last.to = Math.max(last.to, x.to);
    else out.push({ ...x });
  }
  return out;
}

/**
 * knownBoxes: boxes that should have been connected during the range (configured boxes, and boxes with a
 * session in the range). A known box without any session in the range was blind for all of it.
 */
export function buildGapBook(sessions: readonly AmiSessionRow[], rangeStart: number, rangeEnd: number, knownBoxes: Iterable<string>, slackMs = 2000): GapBook {
  const byInstance = new Map<string, AmiSessionRow[]>();
  for (const s of sessions) {
    const key = `${s.box}\u0000${s.instance}`;
    let l = byInstance.get(key);
    if (!l) byInstance.set(key, (l = []));
    l.push(s);
  }
  const covered = new Map<string, Interval[]>();
  for (const b of knownBoxes) covered.set(b, []);
  for (const list of byInstance.values()) {
    list.sort((a, b) => (a.connectedAt < b.connectedAt ? -1 : a.connectedAt > b.connectedAt ? 1 : 0));
    list.forEach((s, i) => {
      const from = parseSqlUtc(s.connectedAt);
      let to = parseSqlUtc(s.disconnectedAt);
      if (Number.isNaN(to)) to = i + 1 < list.length ? parseSqlUtc(list[i + 1]!.connectedAt) : Infinity;
      if (Number.isNaN(from)) return;
      let c = covered.get(s.box);
      if (!c) covered.set(s.box, (c = []));
      c.push({ from, to });
    });
  }
  const gaps = new Map<string, Interval[]>();
  for (const [box, cov] of covered) {
    const merged = mergeIntervals(cov);
    const g: Interval[] = [];
    let cursor = rangeStart;
    for (const iv of merged) {
      if (iv.to <= cursor) continue;
      if (iv.from >= rangeEnd) break;
      if (iv.from > cursor) g.push({ from: cursor, to: Math.min(iv.from, rangeEnd) });
      cursor = Math.max(cursor, iv.to);
    }
    if (cursor < rangeEnd) g.push({ from: cursor, to: rangeEnd });
    gaps.set(box, g);
  }
  const hit = (list: readonly Interval[] | undefined, t: number): boolean =>
    !!list && list.some((iv) => t >= iv.from - slackMs && t < iv.to + slackMs);
  return {
    gaps,
    inGap(box, t) {
      if (Number.isNaN(t)) return false;
      if (box !== undefined && gaps.has(box)) return hit(gaps.get(box), t);
      for (const list of gaps.values()) if (hit(list, t)) return true;
      return false;
    },
  };
}
