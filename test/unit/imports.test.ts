// The dependency rules of ARCHITECTURE.md, checked on the source text.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = resolve(import.meta.dirname, '..', '..', 'src');

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : [];
  });
}

interface Edge { from: string; to: string; typeOnly: boolean }

function edges(): Edge[] {
  const out: Edge[] = [];
  const re = /^\s*(import|export)\s+(type\s+)?(?:[^'"]*?\s+from\s+)?['"](\.{1,2}\/[^'"]+)['"]/gm;
  const dyn = /import\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)/g;
  for (const f of files(SRC)) {
    const text = readFileSync(f, 'utf8');
    for (const m of text.matchAll(re)) out.push({ from: relative(SRC, f), to: relative(SRC, resolve(dirname(f), m[3]!)).replace(/\.js$/, '.ts'), typeOnly: Boolean(m[2]) });
    for (const m of text.matchAll(dyn)) out.push({ from: relative(SRC, f), to: relative(SRC, resolve(dirname(f), m[1]!)).replace(/\.js$/, '.ts'), typeOnly: false });
  }
  return out;
}

const area = (p: string): string => (p.includes('/') ? p.split('/')[0]! : p.replace(/\.ts$/, ''));
const STAGES = ['auth', 'billing', 'dispatch', 'dialog', 'acc', 'store'];
const all = edges();

describe('dependency direction', () => {
  it('finds the imports it checks', () => {
    expect(all.length).toBeGreaterThan(100);
  });

  it('the SIP core imports nothing of the product', () => {
    const bad = all.filter((e) => area(e.from) === 'sip' && !['sip', 'errors', 'log', 'config', 'metrics'].includes(area(e.to)));
    expect(bad).toEqual([]);
  });

  it('stages never import each other, the proxy runtime or the SIP stack', () => {
    const bad = all.filter((e) => {
      const a = area(e.from);
      const b = area(e.to);
      if (!STAGES.includes(a) || a === b) return false;
      if (b === 'proxy') return !(e.typeOnly && e.to === 'proxy/hooks.ts');
      if (b === 'sip') return true;
      // acc and ami may use the shared journaled writer in store/
      return STAGES.includes(b) && b !== 'store';
    });
    expect(bad).toEqual([]);
  });

  it('ami and reconcile never import sip or proxy', () => {
    const bad = all.filter((e) => ['ami', 'reconcile'].includes(area(e.from)) && ['sip', 'proxy'].includes(area(e.to)));
    expect(bad).toEqual([]);
  });

  it('only the composition root and the CLI construct the whole gateway', () => {
    const bad = all.filter((e) => e.to === 'gateway.ts' && e.from !== 'main.ts' && !e.from.startsWith('cli/'));
    expect(bad).toEqual([]);
  });
});
