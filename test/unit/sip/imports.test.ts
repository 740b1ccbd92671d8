// The SIP core depends on nothing of the product except errors, log and config types (layout.md).
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const SIP = join(import.meta.dirname, '../../../src/sip');
const ALLOWED_OUTSIDE = new Set(['../errors.js', '../log.js', '../config/schema.js']);

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []);
}

describe('src/sip dependencies', () => {
  it.each(sources(SIP).map((f) => [f.slice(SIP.length + 1), f]))('%s imports only node:, sip/ and errors/log/config', (_name, file) => {
    const text = readFileSync(file, 'utf8');
    const specs = [...text.matchAll(/^\s*(?:import|export)[^'"]*from\s+'([^']+)'/gm)].map((m) => m[1]!);
    for (const s of specs) {
      const ok = s.startsWith('node:') || (s.startsWith('./') && !s.includes('..')) || ALLOWED_OUTSIDE.has(s);
      expect(ok, `${s}`).toBe(true);
    }
  });
});
