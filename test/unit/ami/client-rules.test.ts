import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { reconnectDelay } from '../../../src/ami/client.js';

test('reconnect back-off doubles from the minimum, is capped, and keeps at least half of it whatever the jitter', () => {
  expect([0, 1, 2, 3, 10].map((n) => reconnectDelay(n, 500, 30_000, 0))).toEqual([250, 500, 1000, 2000, 15_000]);
  expect([0, 1, 2, 3, 10].map((n) => reconnectDelay(n, 500, 30_000, 0.999999))).toEqual([500, 1000, 2000, 4000, 30_000]);
  expect(reconnectDelay(1000, 500, 30_000, 0.5)).toBe(22_500); // huge attempt counts do not overflow
});

test('src/ami imports nothing of the SIP stack or the proxy (layout: ami/ never imports sip/ or proxy/)', () => {
  const dir = join(import.meta.dirname, '../../../src/ami');
  for (const f of readdirSync(dir)) {
    const text = readFileSync(join(dir, f), 'utf8');
    for (const m of text.matchAll(/from '([^']+)'/g)) expect(m[1], `${f}`).not.toMatch(/\/(sip|proxy|emulator)\//);
    expect(text, f).not.toMatch(/from 'asterisk-manager'|require\('asterisk-manager'\)/);
  }
});
