// layout.md's dependency rules for the billing and dialog stages: hook TYPES from proxy/hooks only, no SIP stack,
// no proxy runtime, no other stage (they meet in the composition root).
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '../../../src');
function imports(dir: string): Array<{ file: string; spec: string; typeOnly: boolean }> {
  const out: Array<{ file: string; spec: string; typeOnly: boolean }> = [];
  for (const f of readdirSync(join(root, dir))) {
    if (!f.endsWith('.ts')) continue;
    const text = readFileSync(join(root, dir, f), 'utf8');
    for (const m of text.matchAll(/^(?:import|export)\s+(type\s+)?[^'";]*?from\s+'([^']+)'/gm)) out.push({ file: `${dir}/${f}`, spec: m[2]!, typeOnly: Boolean(m[1]) });
  }
  return out;
}
const forbidden = (self: string) => new RegExp(`/(sip|auth|${self === 'billing' ? 'dialog' : 'billing'}|acc|ami|reconcile|mgmt|store|dispatch|emulator|cli)/`);

describe('dependency direction', () => {
  for (const stage of ['billing', 'dialog']) {
    it(`${stage} imports no transport, no proxy runtime and no other stage`, () => {
      const all = imports(stage);
      expect(all.length).toBeGreaterThan(3);
      const bad = all.filter(({ spec, typeOnly }) => forbidden(stage).test(spec) || (spec.includes('/proxy/') && !(typeOnly && spec.endsWith('/proxy/hooks.js'))));
      expect(bad).toEqual([]);
    });
  }
  it('the scanner sees the imports it checks', () => {
    expect(imports('dialog').some((i) => i.spec === '../proxy/hooks.js' && i.typeOnly)).toBe(true);
    expect(imports('billing').some((i) => i.spec === '../db/queries/billing.js')).toBe(true);
  });
});
