// Summarises a V8 .cpuprofile: self time by function (and by file), top N.
//   npx tsx bench/prof-summary.ts FILE.cpuprofile [--top 40] [--by file|fn]
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount: number;
  children?: number[];
}
interface Profile { nodes: Node[]; startTime: number; endTime: number; samples: number[]; timeDeltas: number[] }

/**
 * Sample counting instead of time deltas: on a loaded host the main thread is often descheduled, and V8 charges
 * the whole gap to the stack it resumes in (a syscall that woke another task: sendmsg, fdatasync). Pending
 * profiler signals coalesce, so one sample ≈ one sampling interval of CPU; `--count` gives the CPU view.
 */
export function countWeighted(p: Profile, intervalUs: number): Profile {
  return { ...p, timeDeltas: p.timeDeltas.map(() => intervalUs) };
}

/** Drops the samples of the first `skipSec` seconds (start-up: module loading, config, database). */
export function skipStart(p: Profile, skipSec: number): Profile {
  let t = 0;
  let i = 0;
  while (i < p.samples.length && t < skipSec * 1e6) t += p.timeDeltas[i++] ?? 0;
  return { ...p, samples: p.samples.slice(i), timeDeltas: p.timeDeltas.slice(i), startTime: p.startTime + t };
}

export function summarise(p: Profile, by: 'fn' | 'file' | 'pkg'): Array<{ key: string; ms: number; pct: number }> {
  const self = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) self.set(p.samples[i]!, (self.get(p.samples[i]!) ?? 0) + (p.timeDeltas[i] ?? 0));
  const agg = new Map<string, number>();
  let total = 0;
  for (const n of p.nodes) {
    const us = self.get(n.id) ?? 0;
    total += us;
    const url = n.callFrame.url.replace(/^file:\/\//, '').replace(/^.*\/work\/main\//, '');
    const file = url || '(native)';
    const key = by === 'file' ? file
      : by === 'pkg' ? (/node_modules\/((@[^/]+\/)?[^/]+)/.exec(file)?.[1] ?? (file.startsWith('node:') ? file : file.split('/').slice(0, 3).join('/')))
      : `${n.callFrame.functionName || '(anon)'} ${file}:${n.callFrame.lineNumber + 1}`;
    agg.set(key, (agg.get(key) ?? 0) + us);
  }
  return [...agg].map(([key, us]) => ({ key, ms: us / 1000, pct: (100 * us) / Math.max(1, total) })).sort((a, b) => b.ms - a.ms);
}

/** Self time of functions whose name matches, split by their caller chain (depth levels up). */
export function callers(p: Profile, name: string, depth: number): Array<{ key: string; ms: number }> {
  const parent = new Map<number, Node>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n);
  const self = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) self.set(p.samples[i]!, (self.get(p.samples[i]!) ?? 0) + (p.timeDeltas[i] ?? 0));
  const agg = new Map<string, number>();
  const label = (n: Node): string => `${n.callFrame.functionName || '(anon)'}@${n.callFrame.url.replace(/^.*\/(dist|node_modules)\//, '').replace(/^file:\/\//, '')}:${n.callFrame.lineNumber + 1}`;
  for (const n of p.nodes) {
    if (n.callFrame.functionName !== name) continue;
    const chain: string[] = [];
    let cur: Node | undefined = parent.get(n.id);
    for (let d = 0; d < depth && cur; d++, cur = parent.get(cur.id)) chain.push(label(cur));
    const k = chain.join(' < ');
    agg.set(k, (agg.get(k) ?? 0) + (self.get(n.id) ?? 0));
  }
  return [...agg].map(([key, us]) => ({ key, ms: us / 1000 })).sort((a, b) => b.ms - a.ms);
}

/** Inclusive time by function (a function recursing into itself counted once per sample). */
export function inclusive(p: Profile): Array<{ key: string; ms: number }> {
  const parent = new Map<number, Node>();
  const byId = new Map<number, Node>();
  for (const n of p.nodes) { byId.set(n.id, n); for (const c of n.children ?? []) parent.set(c, n); }
  const agg = new Map<string, number>();
  for (let i = 0; i < p.samples.length; i++) {
    const seen = new Set<string>();
    for (let n: Node | undefined = byId.get(p.samples[i]!); n; n = parent.get(n.id)) {
      const k = `${n.callFrame.functionName || '(anon)'} ${n.callFrame.url.replace(/^.*\/(dist|node_modules)\//, '')}:${n.callFrame.lineNumber + 1}`;
      if (seen.has(k)) continue;
      seen.add(k);
      agg.set(k, (agg.get(k) ?? 0) + (p.timeDeltas[i] ?? 0));
    }
  }
  return [...agg].map(([key, us]) => ({ key, ms: us / 1000 })).sort((a, b) => b.ms - a.ms);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '40' }, by: { type: 'string', default: 'fn' }, callers: { type: 'string' }, skip: { type: 'string', default: '0' }, depth: { type: 'string', default: '4' }, count: { type: 'boolean' }, interval: { type: 'string', default: '1000' } } });
  for (const f of positionals) {
    const raw = skipStart(JSON.parse(readFileSync(f, 'utf8')) as Profile, Number(values.skip));
    const p = values.count ? countWeighted(raw, Number(values.interval)) : raw;
    if (values.callers) {
      for (const r of callers(p, values.callers, Number(values.depth)).slice(0, Number(values.top))) console.log(`${r.ms.toFixed(0).padStart(8)} ms  ${r.key}`);
      continue;
    }
    if (values.by === 'incl') {
      for (const r of inclusive(p).slice(0, Number(values.top))) console.log(`${r.ms.toFixed(0).padStart(8)} ms  ${r.key}`);
      continue;
    }
    const rows = summarise(p, values.by as 'fn' | 'file' | 'pkg');
    console.log(`${f}: ${((p.endTime - p.startTime) / 1e6).toFixed(1)} s profiled`);
    for (const r of rows.slice(0, Number(values.top))) console.log(`${r.ms.toFixed(0).padStart(8)} ms ${r.pct.toFixed(1).padStart(5)}%  ${r.key}`);
  }
}
