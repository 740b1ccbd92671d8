// reconcile/ never imports sip/ or proxy/ (layout.md), and its matcher and report stay pure (no I/O modules).
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const dir = join(import.meta.dirname, '../../../src/reconcile');
const importsOf = (f: string): string[] => [...readFileSync(join(dir, f), 'utf8').matchAll(/^import[^'"]*['"]([^'"]+)['"]/gm)].map((m) => m[1]!);

describe('reconcile dependencies', () => {
  it('never imports the SIP stack or the proxy', () => {
    expect(importsOf('matcher.ts')).toContain('../callref.js'); // the scan sees imports at all
    expect(importsOf('job.ts')).toContain('./source.js');
    for (const f of readdirSync(dir).filter((x) => x.endsWith('.ts'))) {
      for (const i of importsOf(f)) expect([f, i]).not.toEqual([f, expect.stringMatching(/(^|\/)(sip|proxy)\//)]);
    }
  });

  it('keeps the matcher, rating, gaps, window, summary and report free of I/O', () => {
    for (const f of ['matcher.ts', 'rating.ts', 'gaps.ts', 'window.ts', 'summary.ts', 'report-html.ts', 'types.ts', 'merge.ts']) {
      for (const i of importsOf(f)) expect([f, i]).not.toEqual([f, expect.stringMatching(/^(node:(fs|net|http|child_process)|mysql2)|\/db\/|source\.js|store\.js|output\.js/)]);
    }
  });
});
