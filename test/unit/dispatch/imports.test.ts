// The dependency rules of layout.md, for the dispatch and mgmt modules: dispatch is a stage (types from
// proxy/hooks only, never the SIP stack, never another stage); mgmt knows only its actions interface.
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

describe('dependency direction', () => {
  it('dispatch imports no transport, no proxy runtime and no other stage', () => {
    const bad = imports('dispatch').filter(({ spec, typeOnly }) =>
      /\/(sip|auth|billing|dialog|acc|ami|reconcile|mgmt|store)\//.test(spec) || (spec.includes('/proxy/') && !(typeOnly && spec.endsWith('/proxy/hooks.js'))));
    expect(bad).toEqual([]);
  });

  it('mgmt imports no stage, no proxy and no SIP code', () => {
    const bad = imports('mgmt').filter(({ spec }) => /\/(sip|proxy|auth|billing|dialog|acc|ami|reconcile|dispatch|store|db)\//.test(spec));
    expect(bad).toEqual([]);
  });

  it('the scanner sees the imports it checks', () => {
    expect(imports('dispatch').some((i) => i.spec === '../proxy/hooks.js' && i.typeOnly)).toBe(true);
    expect(imports('mgmt').some((i) => i.spec === '../metrics.js')).toBe(true);
  });
});
