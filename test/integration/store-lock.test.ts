// One process per journal stream directory; a crashed owner's lock is taken over. (No record is written, so the
// pool below never connects.)
import { mkdtemp, readFile, readdir, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDb, type Db } from '../../src/db/pool.js';
import { encodeLine } from '../../src/store/journal.js';
import { silentLogger } from '../../src/log.js';
import { openBatchWriter } from '../../src/store/index.js';
import { probeTable } from '../unit/store/fixtures/probe-table.js';

let tmp: string;
let db: Db;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'a2b-store-lock-'));
  db = createDb({ url: 'mysql://nobody:x@127.0.0.1:1/none', poolSize: 1 });
});
afterAll(async () => {
  await db.end();
  await rm(tmp, { recursive: true, force: true });
});

const opts = (dir: string, name = 'probe') => ({ name, spec: probeTable, db, journalDir: dir, log: silentLogger() });

describe('journal directory ownership', () => {
  it('refuses a directory locked by another live process, and releases the lock on close', async () => {
    const dir = join(tmp, 'a');
    await mkdir(join(dir, 'probe'), { recursive: true });
    await writeFile(join(dir, 'probe', 'LOCK'), `${process.ppid}\n`);
    await expect(openBatchWriter(opts(dir))).rejects.toThrow(/in use by process/);

    await writeFile(join(dir, 'probe', 'LOCK'), '4194303\n'); // no such process: a crashed owner
    const w = await openBatchWriter(opts(dir));
    expect((await readFile(join(dir, 'probe', 'LOCK'), 'utf8')).trim()).toBe(String(process.pid));
    await w.close();
    expect(await readdir(join(dir, 'probe'))).toEqual([]);
  });

  it('refuses a writer name that is not a plain directory name', async () => {
    await expect(openBatchWriter(opts(tmp, '../escape'))).rejects.toThrow(/GW_ERR_JOURNAL|writer name/);
  });

  it('sets aside a segment whose header is damaged instead of guessing its columns', async () => {
    const dir = join(tmp, 'b');
    await mkdir(join(dir, 'probe'), { recursive: true });
    await writeFile(join(dir, 'probe', '000000000003.jnl'), `garbage header\n${encodeLine(['k', 'r', 1, 'p'])}`);
    const w = await openBatchWriter(opts(dir));
    expect(w.stats()).toMatchObject({ journalRecords: 0, journalSegments: 0, corruptLines: 2 });
    await w.close();
    const files = await readdir(join(dir, 'probe'));
    expect(files).toHaveLength(1);
    expect(files[0]).toMatch(/^000000000003\.jnl\.\d+\.bad$/);
  });
});
