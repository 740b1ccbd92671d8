// Rewrites README.md's configuration reference from the schema: npx tsx scripts/config-reference.ts
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { configReferenceMarkdown } from '../src/config/reference.js';

const README = join(import.meta.dirname, '..', 'README.md');
const START = '<!-- config-reference:start -->';
const END = '<!-- config-reference:end -->';
const text = readFileSync(README, 'utf8');
const a = text.indexOf(START);
const b = text.indexOf(END);
if (a < 0 || b < a) throw new Error(`README.md lacks the ${START} … ${END} markers`);
writeFileSync(README, `${text.slice(0, a + START.length)}\n${configReferenceMarkdown()}\n${text.slice(b)}`);
console.log('README.md configuration reference updated');
