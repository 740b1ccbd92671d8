// CPU time and memory of a process tree from /proc (Linux): the steadier figure on a shared host.
import { readdirSync, readFileSync } from 'node:fs';

const TICK_MS = 10; // USER_HZ is 100 on Linux

function children(pid: number): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(d));
    } catch { /* gone */ }
  }
  return out;
}

export function treePids(root: number): number[] {
  const all = [root];
  for (let i = 0; i < all.length; i++) all.push(...children(all[i]!));
  return all;
}

/** user+system CPU milliseconds of the whole tree (children that exited are not counted, so sample the live tree). */
export function cpuMs(root: number): number {
  let ticks = 0;
  for (const p of treePids(root)) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(f[11]) + Number(f[12]);
    } catch { /* gone */ }
  }
  return ticks * TICK_MS;
}

/** Proportional set size of the tree in MB (shared pages split between processes, so forks are not double-counted). */
export function pssMb(root: number): number {
  let kb = 0;
  for (const p of treePids(root)) {
    try {
      const m = /^Pss:\s+(\d+)/m.exec(readFileSync(`/proc/${p}/smaps_rollup`, 'utf8'));
      kb += m ? Number(m[1]) : 0;
    } catch { /* gone */ }
  }
  return Math.round(kb / 1024);
}

/** user and system CPU milliseconds of the tree, separately (system time is mostly the UDP/loopback path). */
export function cpuSplitMs(root: number): { user: number; sys: number } {
  let u = 0;
  let k = 0;
  for (const p of treePids(root)) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      u += Number(f[11]);
      k += Number(f[12]);
    } catch { /* gone */ }
  }
  return { user: u * TICK_MS, sys: k * TICK_MS };
}
