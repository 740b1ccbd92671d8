// README.md must stay true to the code: its configuration reference is the schema's, and every
// command it lists exists in the CLI.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { configKeys, configReferenceMarkdown } from '../../../src/config/reference.js';

const README = readFileSync(join(import.meta.dirname, '..', '..', '..', 'README.md'), 'utf8');

describe('README', () => {
  it('has the configuration reference generated from the schema (run scripts/config-reference.ts)', () => {
    const section = README.split('<!-- config-reference:start -->')[1]?.split('<!-- config-reference:end -->')[0]?.trim();
    expect(section).toBe(configReferenceMarkdown());
    expect(configKeys().length).toBeGreaterThan(60);
  });

  it('names only config keys that exist', () => {
    const known = new Set(configKeys().map((k) => k.path));
    const prefixes = new Set([...known].flatMap((k) => k.split('.').map((_, i, a) => a.slice(0, i + 1).join('.'))));
    const mentioned = [...README.matchAll(/`((?:log|db|sip|auth|abuse|dispatch|acc|dialog|billing|ami|reconcile|mgmt)\.[A-Za-z.]+)`/g)].map((m) => m[1]!).filter((k) => !/\.(conf|ts|sql|yaml|md)$/.test(k));
    expect(mentioned.length).toBeGreaterThan(5);
    for (const k of mentioned) expect(prefixes.has(k), k).toBe(true);
  });

  it('lists only subcommands the CLI has', async () => {
    const src = readFileSync(join(import.meta.dirname, '..', '..', '..', 'src', 'cli', 'main.ts'), 'utf8');
    const cli = new Set([...src.matchAll(/\.command\('([a-z-]+)'\)/g)].map((m) => m[1]!));
    const used = new Set([...README.matchAll(/`a2b-gateway ([a-z-]+)/g)].map((m) => m[1]!));
    for (const c of used) expect(cli.has(c), c).toBe(true);
    expect(used.size).toBeGreaterThanOrEqual(8);
  });
});
