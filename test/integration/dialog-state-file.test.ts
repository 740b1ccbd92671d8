// The local state file on a real filesystem: replay order, torn lines after a crash, compaction.
import { appendFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RECORD_VERSION, type DialogRecord } from '../../src/dialog/record.js';
import { STATE_FILE, StateFile } from '../../src/dialog/state-file.js';
import { silentLogger } from '../../src/log.js';

function rec(key: string, updated: number, callerCseq = 1): DialogRecord {
  return {
    v: RECORD_VERSION, key, instance: 'default', expiresAt: updated + 60_000, maxDurationSec: 60, updated,
    info: {
      callId: `${key}@h`, callerTag: 'a', calleeTag: 'b', fromHeader: '<sip:a@h>;tag=a', toHeader: '<sip:b@h>;tag=b',
      callerContact: '<sip:a@h>', calleeContact: '<sip:b@h>', callerRouteSet: [], calleeRouteSet: [],
      callerHop: { ip: '127.0.0.1', port: 5070, proto: 'udp' }, calleeHop: { ip: '127.0.0.1', port: 5080, proto: 'udp' },
      callerCseq, calleeCseq: 1, recordRoute: [], accountcode: '1', targetId: '1', createdAt: updated, answeredAt: updated,
    },
  };
}

describe('StateFile', () => {
  let dir: string;
  beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'a2b-sf-')); });
  afterEach(async () => { await rm(dir, { recursive: true, force: true }); });

  it('replays appends in order: last operation per dialog wins, deletions leave tombstones', async () => {
    const f = new StateFile({ dir: join(dir, 'nested'), log: silentLogger() });
    f.append({ op: 'up', rec: rec('k1', 1000) });
    f.append({ op: 'up', rec: rec('k2', 1000) });
    f.append({ op: 'up', rec: rec('k1', 1001, 9) });
    f.append({ op: 'del', key: 'k2', updated: 1002 });
    await f.close();
    const loaded = await new StateFile({ dir: join(dir, 'nested'), log: silentLogger() }).load();
    expect([...loaded.records.keys()]).toEqual(['k1']);
    expect(loaded.records.get('k1')!.info.callerCseq).toBe(9);
    expect([...loaded.tombstones]).toEqual([['k2', 1002]]);
  });

  it('skips a torn last line (crash in the middle of a write) and damaged records', async () => {
    const f = new StateFile({ dir, log: silentLogger() });
    f.append({ op: 'up', rec: rec('k1', 1000) });
    await f.close();
    await appendFile(join(dir, STATE_FILE), '{"op":"up","rec":{"v":1,"key":"k9"}}\n{"op":"up","rec":{"v":1,"ke');
    const loaded = await new StateFile({ dir, log: silentLogger() }).load();
    expect([...loaded.records.keys()]).toEqual(['k1']);
    expect(loaded.badLines).toBe(2);
  });

  it('compaction replaces the file atomically and later appends follow it', async () => {
    const f = new StateFile({ dir, log: silentLogger() });
    for (let i = 0; i < 50; i++) f.append({ op: 'up', rec: rec('k1', 1000 + i, i) });
    await f.flush();
    expect(f.lines).toBe(50);
    await f.compact([{ op: 'up', rec: rec('k1', 2000, 77) }]);
    f.append({ op: 'up', rec: rec('k3', 2001) });
    await f.close();
    const text = await readFile(join(dir, STATE_FILE), 'utf8');
    expect(text.trim().split('\n')).toHaveLength(2);
    const loaded = await new StateFile({ dir, log: silentLogger() }).load();
    expect(loaded.records.get('k1')!.info.callerCseq).toBe(77);
    expect(loaded.records.has('k3')).toBe(true);
  });

  it('compaction serialises in chunks with the event loop free in between, not in one block', async () => {
    const f = new StateFile({ dir, log: silentLogger() });
    let turn = 0;
    let spinning = true;
    const spin = (): void => { turn++; if (spinning) setImmediate(spin); };
    setImmediate(spin);
    const seen: number[] = [];
    const lines = Array.from({ length: 2000 }, (_, i) => {
      const r = rec(`k${i}`, 1000 + i) as DialogRecord & { toJSON?: () => unknown };
      const plain = rec(`k${i}`, 1000 + i);
      r.toJSON = () => { seen.push(turn); return plain; };
      return { op: 'up' as const, rec: r };
    });
    const done = f.compact(lines);
    expect(seen).toHaveLength(0); // compact() itself returns at once
    await done;
    spinning = false;
    expect(seen).toHaveLength(2000);
    expect(new Set(seen).size).toBeGreaterThanOrEqual(5); // other work ran between the chunks
    await f.close();
    const loaded = await new StateFile({ dir, log: silentLogger() }).load();
    expect(loaded.records.size).toBe(2000);
    expect(f.lines).toBe(2000);
  });

  it('a missing file is an empty state', async () => {
    const loaded = await new StateFile({ dir: join(dir, 'none'), log: silentLogger() }).load();
    expect(loaded.records.size).toBe(0);
  });
});
