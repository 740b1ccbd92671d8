// Deterministic property tests of the AMI framer: any chunking of real bytes frames the same, and arbitrary
// bytes only ever end in messages or a GW_ERR_AMI_PROTOCOL error (never another exception, never unbounded memory).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { expect, test } from 'vitest';
import { AmiFramer, type AmiMessage } from '../../../src/ami/protocol.js';
import { isGwError } from '../../../src/errors.js';

const bytes = readFileSync(join(import.meta.dirname, '../../fixtures/ami/02-chansip-answer.rx.ami'));

function frameChunks(chunks: Buffer[], max?: number): string {
  const out: AmiMessage[] = [];
  const f = new AmiFramer({ banner: () => undefined, message: (m) => out.push(m) }, { maxMessageChars: max });
  for (const c of chunks) f.push(c);
  return JSON.stringify(out.map((m) => m.lines));
}

const whole = frameChunks([bytes]);

test('any chunking of a real capture frames exactly like the whole', () => {
  fc.assert(fc.property(fc.uniqueArray(fc.integer({ min: 1, max: bytes.length - 1 }), { maxLength: 40 }), (cuts) => {
    const points = [0, ...cuts.sort((a, b) => a - b), bytes.length];
    const chunks = points.slice(1).map((end, i) => bytes.subarray(points[i], end));
    return frameChunks(chunks) === whole;
  }), { seed: 20261122, numRuns: 300 });
});

test('arbitrary bytes after the banner: messages or a protocol error, nothing else', () => {
  const line = fc.oneof(
    fc.constantFrom('Event: Cdr', 'Response: Success', 'ActionID: 1', 'Key:', ': value', '', 'Output: x', '::::', 'UniqueID: 1.2'),
    fc.string({ maxLength: 40 }),
  );
  fc.assert(fc.property(fc.array(line, { maxLength: 50 }), fc.constantFrom('\r\n', '\n'), fc.integer({ min: 1, max: 64 }), (lines, eol, chunk) => {
    const data = Buffer.from(`Asterisk Call Manager/9.0.0\r\n${lines.join(eol)}${eol}${eol}`);
    const chunks: Buffer[] = [];
    for (let i = 0; i < data.length; i += chunk) chunks.push(data.subarray(i, i + chunk));
    try {
      frameChunks(chunks, 512);
    } catch (e) {
      if (!isGwError(e, 'GW_ERR_AMI_PROTOCOL')) throw e;
    }
    return true;
  }), { seed: 7, numRuns: 300 });
  expect(() => frameChunks([Buffer.from(`Asterisk Call Manager/9.0.0\r\nK: ${'v'.repeat(600)}\r\n\r\n`)], 512)).toThrowError(/longer than 512/);
});
