// `a2b-gateway backfill` against a real MariaDB: a Master.csv import, its rerun, and usage errors naming the field.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { runBackfillCli } from '../../src/cli/backfill.js';
import { createTestDb, type TestDb } from '../helpers/db.js';

let t: TestDb;
let tmp: string;
beforeAll(async () => {
  t = await createTestDb();
  tmp = await mkdtemp(join(tmpdir(), 'ami-cli-'));
});
afterAll(async () => {
  await t.drop();
  await rm(tmp, { recursive: true, force: true });
});

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runBackfillCli(args, { out: (s) => { out += s; }, err: (s) => { err += s; }, env: {} });
  return { code, out, err };
}

test('imports a Master.csv through the gateway user; a rerun adds nothing', async () => {
  const file = join(tmp, 'Master.csv');
  const line = (n: number): string => `"5555000002","100","4420123","from-gateway","""Bob"" <100>","PJSIP/gateway-0000000${n}","","Hangup","","2026-11-22 10:00:00","2026-11-22 10:00:02","2026-11-22 10:01:02",62,60,"ANSWERED","DOCUMENTATION","1795400100.${n}","cid-${n}@gw"`;
  await writeFile(file, `${line(1)}\n${line(2)}\n`);
  const r1 = await run(['backfill', '--box', 'ast1', '--csv', file, '--tz', 'Europe/London', '--db', t.gwUrl]);
  expect(r1).toMatchObject({ code: 0, err: '' });
  expect(r1.out).toBe(`backfill ast1 from ${file}: 2 CDRs read, 2 added, 0 already stored, 0 already received over AMI\n`);
  const [rows] = await t.db.query("SELECT uniqueid, start_time, origin FROM gw_ami_cdr WHERE box = 'ast1' ORDER BY uniqueid");
  expect(rows).toEqual([
    { uniqueid: '1795400100.1', start_time: '2026-11-22 10:00:00', origin: 'backfill' },
    { uniqueid: '1795400100.2', start_time: '2026-11-22 10:00:00', origin: 'backfill' },
  ]);
  expect((await run(['--box', 'ast1', '--csv', file, '--db', t.gwUrl])).out).toContain('0 added, 2 already stored');
});

test('usage errors exit 2 and say what is wrong', async () => {
  expect(await run(['--csv', 'x.csv'])).toMatchObject({ code: 2, err: expect.stringContaining('--box NAME is required') });
  expect(await run(['--box', 'a'])).toMatchObject({ code: 2, err: expect.stringContaining('give --csv FILE, or --from and --to') });
  expect(await run(['--box', 'a', '--csv', 'f', '--tz', 'Mars/Base', '--db', t.gwUrl])).toMatchObject({ code: 2, err: expect.stringContaining('--tz "Mars/Base"') });
  expect(await run(['--box', 'a', '--from', '2026-11-22', '--to', '2026-11-23', '--db', t.gwUrl])).toMatchObject({ code: 2, err: expect.stringContaining('not in ami.boxes') });
  expect(await run(['--box', 'a', '--csv', join(tmp, 'nope.csv'), '--db', t.gwUrl])).toMatchObject({ code: 1, err: expect.stringContaining('cannot read') });
  expect(await run(['--box', 'a', '--csv', 'f'])).toMatchObject({ code: 2, err: expect.stringContaining('no gateway database') });
});
