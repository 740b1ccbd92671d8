// The demo's core, as `npm run demo` runs it: every call gets its expected answer and the reconciliation
// report lists exactly the faults the demo injected.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runDemoCore } from '../../src/cli/demo.js';

describe('npm run demo', () => {
  it('ends with a reconciliation report that lists exactly the injected faults', async () => {
    const lines: string[] = [];
    const r = await runDemoCore({ out: (l) => lines.push(l), reportDir: mkdtempSync(join(tmpdir(), 'a2b-demo-test-')) });
    expect(r.calls.filter((c) => c.status !== c.expect)).toEqual([]);
    expect(r.found).toEqual(r.expected);
    expect(r.expected).toEqual({ unbilled: 1, duration_mismatch: 1, account_mismatch: 1, bypass: 1, ami_missing_gap: 1 });
    expect(r.ok).toBe(true);
    expect(r.reportFiles?.html).toMatch(/\.html$/);
    expect(lines.join('\n')).toContain('the report lists exactly the injected faults');
  }, 90_000);
});
