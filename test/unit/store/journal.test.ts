import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { batchInsertSql } from '../../../src/db/queries/store.js';
import { decodeLine, encodeLine, parseSegment, segmentName, segmentSeq } from '../../../src/store/journal.js';
import { clip, defineTable, recKey, sqlDateTime } from '../../../src/store/spec.js';

const header = { v: 1, table: 't', columns: ['k', 'n', 's'], keyColumns: ['k'], onDuplicate: 'ignore' };

describe('journal lines', () => {
  it('round-trips a row with newlines, quotes and non-ASCII text on one line', () => {
    const row = ['k1', 42, 'a\nb "c" \u00e9\u4e2d', null];
    const line = encodeLine(row);
    expect(line.endsWith('\n')).toBe(true);
    expect(line.indexOf('\n')).toBe(line.length - 1);
    expect(decodeLine(line.slice(0, -1))).toEqual(row);
  });

  it('refuses a line whose checksum does not match its JSON', () => {
    const line = encodeLine(['k1', 1, 'x']).slice(0, -1);
    expect(decodeLine(line.replace('"x"', '"y"'))).toBeUndefined();
    expect(decodeLine('zzzz')).toBeUndefined();
  });

  it('parses a segment and skips a torn final line and a corrupted middle line, counting both', () => {
    const good = [['a', 1, 'x'], ['b', 2, 'y'], ['c', 3, 'z']];
    const lines = [encodeLine(header), ...good.map((r) => encodeLine(r))];
    lines[2] = lines[2]!.replace('"y"', '"Y"'); // bit rot in the middle
    const torn = encodeLine(['d', 4, 'w']).slice(0, 12);
    const p = parseSegment(lines.join('') + torn);
    expect(p.header).toEqual(header);
    expect(p.rows).toEqual([good[0], good[2]]);
    expect(p.bad).toBe(2);
    expect(p.torn).toBe(true);
  });

  it('refuses rows of the wrong width or with non-scalar values', () => {
    const p = parseSegment(encodeLine(header) + encodeLine(['a', 1]) + encodeLine(['a', { x: 1 }, 's']) + encodeLine(['a', 1, 's']));
    expect(p.rows).toEqual([['a', 1, 's']]);
    expect(p.bad).toBe(2);
  });

  it('has no rows without a valid header', () => {
    const p = parseSegment(encodeLine(['a', 1, 's']));
    expect(p.header).toBeUndefined();
    expect(p.rows).toEqual([]);
    expect(p.bad).toBe(1);
    expect(parseSegment('')).toEqual({ header: undefined, rows: [], bad: 0, torn: false });
  });

  it('names segments so that name order is replay order', () => {
    expect(segmentName(7)).toBe('000000000007.jnl');
    expect(segmentSeq('000000000007.jnl')).toBe(7);
    expect(segmentSeq('dead-letter.jsonl')).toBeUndefined();
    expect(segmentSeq('000000000007.jnl.bad')).toBeUndefined();
    expect([segmentName(10), segmentName(9)].sort()).toEqual([segmentName(9), segmentName(10)]);
  });
});

describe('table specs and SQL', () => {
  it('builds one parameterised multi-row INSERT IGNORE', () => {
    expect(batchInsertSql('t', ['k', 'n'], ['k'], 2, 'ignore')).toBe('INSERT IGNORE INTO `t` (`k`, `n`) VALUES (?, ?), (?, ?)');
    expect(batchInsertSql('t', ['k', 'n', 's'], ['k'], 1, 'update'))
      .toBe('INSERT IGNORE INTO `t` (`k`, `n`, `s`) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE `n` = VALUES(`n`), `s` = VALUES(`s`)');
  });

  it('refuses identifiers that are not plain names and keys that are not written', () => {
    const ok = { table: 'gw_x', columns: ['a', 'b'], keyColumns: ['a'], toRow: () => [] };
    expect(() => defineTable(ok)).not.toThrow();
    expect(() => defineTable({ ...ok, table: 'x`; DROP' })).toThrow(/GW_ERR_JOURNAL|bad table/);
    expect(() => defineTable({ ...ok, columns: ['a', 'b c'] })).toThrow(/bad column/);
    expect(() => defineTable({ ...ok, columns: ['a', 'a'] })).toThrow(/duplicate column/);
    expect(() => defineTable({ ...ok, keyColumns: ['z'] })).toThrow(/not written/);
  });

  it('derives 32-hex keys that do not collide across part boundaries', () => {
    expect(recKey('ab', 'c')).toMatch(/^[0-9a-f]{32}$/);
    expect(recKey('ab', 'c')).not.toBe(recKey('a', 'bc'));
    expect(recKey('x', 1)).toBe(recKey('x', '1'));
  });

  it('formats DATETIME(3) in UTC and clips long strings', () => {
    expect(sqlDateTime(Date.UTC(2026, 0, 2, 3, 4, 5, 67))).toBe('2026-01-02 03:04:05.067');
    expect(clip('abcdef', 3)).toBe('abc');
    expect(clip(undefined, 3)).toBe('');
  });
});

describe('journal properties', () => {

  const value = fc.oneof(fc.string({ unit: 'binary', maxLength: 40 }), fc.integer(), fc.constant(null));
  const rows = fc.array(fc.tuple(value, value, value), { minLength: 1, maxLength: 30 });
  const segment = (rs: unknown[][]): string => encodeLine(header) + rs.map((r) => encodeLine(r)).join('');

  /** True when `got` is `want` with some elements left out, order kept. */
  const isSubsequence = (got: unknown[], want: unknown[]): boolean => {
    let j = 0;
    for (const g of got) {
      while (j < want.length && JSON.stringify(want[j]) !== JSON.stringify(g)) j++;
      if (j === want.length) return false;
      j++;
    }
    return true;
  };

  it('a segment cut anywhere (a crash mid-write) yields a prefix of its rows and at most one damaged line', () => {
    fc.assert(fc.property(rows, fc.nat(), (rs, cut) => {
      const text = segment(rs);
      const p = parseSegment(text.slice(0, cut % (text.length + 1)));
      expect(p.rows).toEqual(rs.slice(0, p.rows.length));
      expect(p.bad).toBeLessThanOrEqual(1);
    }), { numRuns: 300 });
  });

  it('one corrupted character never produces a row that was not written', () => {
    fc.assert(fc.property(rows, fc.nat(), fc.integer({ min: 1, max: 0xffff }), (rs, pos, code) => {
      const text = segment(rs);
      const i = pos % text.length;
      const damaged = text.slice(0, i) + String.fromCharCode(code) + text.slice(i + 1);
      const p = parseSegment(damaged);
      if (damaged !== text) expect(isSubsequence(p.rows, rs)).toBe(true);
    }), { numRuns: 500 });
  });
});
