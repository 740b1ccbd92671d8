import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AddressTable, type AddressRow } from '../../../src/auth/address.js';
import { formatIp, makePrefix, parseCidr, parseIp, PrefixTable } from '../../../src/auth/ip.js';

function row(id: string, ip: string, mask: number, accountcode: string, extra: Partial<AddressRow> = {}): AddressRow {
  return { id, grp: 1, ip_addr: ip, mask, port: 0, proto: 'any', tag: accountcode, accountcode, card_id: 1, description: '', ...extra };
}

describe('parseIp', () => {
  it('reads IPv4 strictly', () => {
    expect(parseIp('192.0.2.1')).toEqual({ v: 4, n: 0xc0000201 });
    expect(parseIp('0.0.0.0')).toEqual({ v: 4, n: 0 });
    expect(parseIp('255.255.255.255')).toEqual({ v: 4, n: 0xffffffff });
    for (const bad of ['256.0.0.1', '1.2.3', '1.2.3.4.5', '01.2.3.4', '1..2.3', '1.2.3.4.', '', ' 1.2.3.4', '1.2.3.a', 'localhost']) {
      expect(parseIp(bad), bad).toBeUndefined();
    }
  });

  it('reads IPv6 with ::, embedded IPv4, brackets and zone ids', () => {
    expect(parseIp('::1')).toEqual({ v: 6, n: 1n });
    expect(parseIp('2001:db8::1')).toEqual({ v: 6, n: (0x20010db8n << 96n) | 1n });
    expect(parseIp('[2001:db8::1]')).toEqual(parseIp('2001:db8::1'));
    expect(parseIp('fe80::1%eth0')).toEqual({ v: 6, n: (0xfe80n << 112n) | 1n });
    expect(parseIp('2001:DB8:0:0:0:0:0:1')).toEqual(parseIp('2001:db8::1'));
    expect(parseIp('64:ff9b::192.0.2.33')).toEqual({ v: 6, n: (0x64n << 112n) | (0xff9bn << 96n) | 0xc0000221n });
    for (const bad of ['1::2::3', '12345::1', '1:2:3:4:5:6:7:8:9', 'g::1', ':::', '1:2:3:4:5:6:7', '::ffff:300.1.1.1']) {
      expect(parseIp(bad), bad).toBeUndefined();
    }
  });

  it('treats IPv4-mapped IPv6 as IPv4', () => {
    expect(parseIp('::ffff:192.0.2.1')).toEqual({ v: 4, n: 0xc0000201 });
    expect(parseIp('::FFFF:c000:201')).toEqual({ v: 4, n: 0xc0000201 });
  });

  it('round-trips through formatIp', () => {
    fc.assert(fc.property(fc.ipV4(), (s) => formatIp(parseIp(s)!) === s));
    fc.assert(fc.property(fc.ipV6(), (s) => {
      const p = parseIp(s);
      return p !== undefined && (p.v === 4 || parseIp(formatIp(p))!.n === p.n);
    }));
  });

  it('never throws on junk', () => {
    fc.assert(fc.property(fc.string({ maxLength: 60 }), (s) => { parseIp(s); return true; }));
  });
});

describe('prefixes', () => {
  it('clears host bits and maps ::ffff:0:0/96+ to IPv4', () => {
    expect(makePrefix('10.1.2.3', 8)).toEqual({ ip: { v: 4, n: 0x0a000000 }, len: 8 });
    expect(makePrefix('::ffff:10.1.2.3', 120)).toEqual({ ip: { v: 4, n: 0x0a010200 }, len: 24 });
    expect(makePrefix('::ffff:10.1.2.3', 64)).toBeUndefined();
    expect(makePrefix('10.0.0.0', 33)).toBeUndefined();
    expect(makePrefix('2001:db8::', 129)).toBeUndefined();
    expect(parseCidr('2001:db8::/32')?.len).toBe(32);
    expect(parseCidr('192.0.2.7')).toEqual({ ip: { v: 4, n: 0xc0000207 }, len: 32 });
    expect(parseCidr('192.0.2.0/x')).toBeUndefined();
  });

  it('matches the longest prefix, /0 included', () => {
    const t = new PrefixTable<string>([
      { prefix: parseCidr('0.0.0.0/0')!, value: 'default' },
      { prefix: parseCidr('10.0.0.0/8')!, value: 'ten' },
      { prefix: parseCidr('10.1.0.0/16')!, value: 'ten-one' },
      { prefix: parseCidr('10.1.2.3/32')!, value: 'host' },
    ]);
    expect(t.lookup(parseIp('10.1.2.3')!)).toBe('host');
    expect(t.lookup(parseIp('10.1.2.4')!)).toBe('ten-one');
    expect(t.lookup(parseIp('10.2.0.1')!)).toBe('ten');
    expect(t.lookup(parseIp('11.0.0.1')!)).toBe('default');
    expect(t.lookup(parseIp('::1')!)).toBeUndefined();
  });
});

describe('AddressTable', () => {
  it('yields the account code and card id of the longest matching prefix', () => {
    const { table, rejected } = AddressTable.build([
      row('t1', '203.0.113.0', 24, 'ACC24', { card_id: 24 }),
      row('t2', '203.0.113.128', 25, 'ACC25', { card_id: 25 }),
      row('p3', '203.0.113.200', 32, 'ACC32', { card_id: '32' }),
    ]);
    expect(rejected).toEqual([]);
    expect(table.match('203.0.113.200', 5060, 'udp')).toMatchObject({ accountcode: 'ACC32', cardId: 32 });
    expect(table.match('203.0.113.201', 5060, 'udp')).toMatchObject({ accountcode: 'ACC25', cardId: 25 });
    expect(table.match('203.0.113.1', 5060, 'tcp')).toMatchObject({ accountcode: 'ACC24', cardId: 24 });
    expect(table.match('203.0.114.1', 5060, 'udp')).toBeUndefined();
    expect(table.match('::ffff:203.0.113.200', 5060, 'udp')?.accountcode).toBe('ACC32');
  });

  it('matches IPv6 ranges and hosts', () => {
    const { table } = AddressTable.build([
      row('a', '2001:db8::', 32, 'V6-32'),
      row('b', '2001:db8:1::', 48, 'V6-48'),
      row('c', '2001:db8:1::5', 128, 'V6-HOST'),
      row('d', '::ffff:198.51.100.0', 120, 'MAPPED'),
    ]);
    expect(table.match('2001:db8:1::5', 5060, 'udp')?.accountcode).toBe('V6-HOST');
    expect(table.match('2001:db8:1::6', 5060, 'udp')?.accountcode).toBe('V6-48');
    expect(table.match('2001:db8:2::1', 5060, 'udp')?.accountcode).toBe('V6-32');
    expect(table.match('2001:db9::1', 5060, 'udp')).toBeUndefined();
    // a mapped row is an IPv4 row: plain IPv4 sources match it
    expect(table.match('198.51.100.9', 5060, 'udp')?.accountcode).toBe('MAPPED');
  });

  it('prefers a specific port and proto at equal prefix, and falls back to shorter prefixes when they do not fit', () => {
    const { table } = AddressTable.build([
      row('1', '192.0.2.10', 32, 'ANY'),
      row('2', '192.0.2.10', 32, 'PORT', { port: 5070 }),
      row('3', '192.0.2.10', 32, 'TCP', { proto: 'tcp' }),
      row('4', '192.0.2.10', 32, 'PORT-TCP', { port: 5070, proto: 'tcp' }),
      row('5', '192.0.2.0', 24, 'NET'),
      row('6', '192.0.2.20', 32, 'ONLY-5080', { port: 5080 }),
    ]);
    expect(table.match('192.0.2.10', 5070, 'tcp')?.accountcode).toBe('PORT-TCP');
    expect(table.match('192.0.2.10', 5070, 'udp')?.accountcode).toBe('PORT');
    expect(table.match('192.0.2.10', 5060, 'tcp')?.accountcode).toBe('TCP');
    expect(table.match('192.0.2.10', 5060, 'udp')?.accountcode).toBe('ANY');
    expect(table.match('192.0.2.20', 5080, 'udp')?.accountcode).toBe('ONLY-5080');
    expect(table.match('192.0.2.20', 5060, 'udp')?.accountcode).toBe('NET');
  });

  it('gives the same answers whatever the row order', () => {
    const rows: AddressRow[] = [
      row('t1', '10.0.0.0', 8, 'A'), row('t2', '10.1.0.0', 16, 'B'), row('t3', '10.1.1.0', 24, 'C', { proto: 'udp' }),
      row('t4', '10.1.1.0', 24, 'D'), row('t5', '10.1.1.7', 32, 'E', { port: 5062 }), row('t6', '10.1.1.0', 24, 'F', { grp: 0 }),
      row('t7', '2001:db8::', 32, 'G'), row('t8', '2001:db8::', 32, 'H', { proto: 'tcp', port: 5061 }),
    ];
    const probes: Array<[string, number, 'udp' | 'tcp']> = [
      ['10.1.1.7', 5062, 'tcp'], ['10.1.1.7', 5060, 'udp'], ['10.1.1.7', 5060, 'tcp'], ['10.1.2.1', 1, 'udp'], ['10.9.9.9', 1, 'tcp'],
      ['2001:db8::1', 5061, 'tcp'], ['2001:db8::1', 5061, 'udp'], ['11.0.0.1', 5060, 'udp'],
    ];
    const answer = (rs: AddressRow[]) => {
      const { table } = AddressTable.build(rs);
      return probes.map(([ip, port, proto]) => table.match(ip, port, proto)?.accountcode);
    };
    const expected = answer(rows);
    expect(expected).toEqual(['E', 'C', 'F', 'B', 'A', 'H', 'G', undefined]);
    fc.assert(fc.property(fc.shuffledSubarray(rows, { minLength: rows.length, maxLength: rows.length }), (shuffled) => {
      expect(answer(shuffled)).toEqual(expected);
    }), { numRuns: 200 });
  });

  it('skips bad rows with a reason, filters groups and reports conflicting duplicates', () => {
    const { table, rejected, conflicts } = AddressTable.build([
      row('ok', '192.0.2.1', 32, 'A'),
      row('badip', '192.0.2.300', 32, 'A'),
      row('badmask', '192.0.2.0', 40, 'A'),
      row('badport', '192.0.2.2', 32, 'A', { port: 70000 }),
      row('badproto', '192.0.2.3', 32, 'A', { proto: 'sctp' }),
      row('noacc', '192.0.2.4', 32, ''),
      row('dup1', '192.0.2.9', 32, 'X'),
      row('dup2', '192.0.2.9', 32, 'Y'),
      row('other-group', '192.0.2.5', 32, 'G', { grp: 7 }),
    ], { groups: [1] });
    expect(rejected.map((r) => r.id).sort()).toEqual(['badip', 'badmask', 'badport', 'badproto', 'noacc']);
    expect(conflicts).toEqual([{ cidr: '192.0.2.9/32', ids: ['dup1', 'dup2'] }]);
    expect(table.match('192.0.2.9', 5060, 'udp')?.accountcode).toBe('X');
    expect(table.match('192.0.2.5', 5060, 'udp')).toBeUndefined();
    expect(table.size).toBe(3);
  });

  it('agrees with a brute-force scan over random rows and sources (IPv4 and IPv6)', () => {
    const v4Row = fc.record({
      a: fc.integer({ min: 0, max: 3 }), b: fc.integer({ min: 0, max: 3 }), c: fc.integer({ min: 0, max: 255 }),
      mask: fc.integer({ min: 0, max: 32 }), port: fc.constantFrom(0, 0, 5060, 5061), proto: fc.constantFrom('any', 'any', 'udp', 'tcp'),
      grp: fc.integer({ min: 0, max: 2 }),
    }).map((r) => ({ ...r, ip: `10.${r.a}.${r.b}.${r.c}` }));
    const v6Row = fc.record({
      g: fc.integer({ min: 0, max: 3 }), h: fc.integer({ min: 0, max: 0xffff }),
      mask: fc.integer({ min: 0, max: 128 }), port: fc.constantFrom(0, 5060), proto: fc.constantFrom('any', 'udp', 'tcp'),
      grp: fc.integer({ min: 0, max: 2 }),
    }).map((r) => ({ ...r, ip: `2001:db8:${r.g}::${r.h.toString(16)}` }));
    const probe = fc.record({
      ip: fc.oneof(
        fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 255 })).map(([a, b, c]) => `10.${a}.${b}.${c}`),
        fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 0xffff })).map(([g, h]) => `2001:db8:${g}::${h.toString(16)}`),
      ),
      port: fc.constantFrom(5060, 5061, 5070), proto: fc.constantFrom('udp' as const, 'tcp' as const),
    });
    fc.assert(fc.property(fc.array(fc.oneof(v4Row, v6Row), { maxLength: 40 }), fc.array(probe, { minLength: 1, maxLength: 20 }), (specs, probes) => {
      const rows = specs.map((r, i) => row(`r${String(i).padStart(3, '0')}`, r.ip, r.mask, `acc${i}`, { port: r.port, proto: r.proto, grp: r.grp }));
      const { table } = AddressTable.build(rows);
      for (const p of probes) {
        const src = parseIp(p.ip)!;
        let best: { len: number; rank: number; grp: number; id: string; acc: string } | undefined;
        for (const r of rows) {
          const pre = makePrefix(r.ip_addr, Number(r.mask))!;
          if (pre.ip.v !== src.v) continue;
          const bits = pre.ip.v === 4 ? 32 : 128;
          const shift = BigInt(bits - pre.len);
          if ((BigInt(src.n) >> shift) !== (BigInt(pre.ip.n) >> shift)) continue;
          if (!(r.port === 0 || r.port === p.port) || !(r.proto === 'any' || r.proto === p.proto)) continue;
          const cand = { len: pre.len, rank: (r.port !== 0 ? 2 : 0) + (r.proto !== 'any' ? 1 : 0), grp: Number(r.grp), id: String(r.id), acc: r.accountcode };
          const better = !best || cand.len > best.len || (cand.len === best.len && (cand.rank > best.rank || (cand.rank === best.rank && (cand.grp < best.grp || (cand.grp === best.grp && cand.id < best.id)))));
          if (better) best = cand;
        }
        expect(table.match(p.ip, p.port, p.proto)?.accountcode).toBe(best?.acc);
      }
    }), { numRuns: 300 });
  });
});
