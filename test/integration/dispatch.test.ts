// Loading and reloading gw_dispatcher from a real MariaDB, read by the least-privilege gateway user.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDispatch, dispatcherMgmtProvider, type DispatchStage } from '../../src/dispatch/index.js';
import { readDispatcherRows } from '../../src/dispatch/store.js';
import { createDb, type Db } from '../../src/db/pool.js';
import { configSchema } from '../../src/config/schema.js';
import { silentLogger } from '../../src/log.js';
import { createMetrics } from '../../src/metrics.js';
import type { RequestFacts, Target } from '../../src/proxy/hooks.js';
import { createTestDb, type TestDb } from '../helpers/db.js';

const facts = (callId: string) => ({ callId, fromUser: 'alice' }) as RequestFacts;
const ids = (ts: Target[]) => ts.map((t) => t.id).sort();

describe('dispatcher loading from gw_dispatcher', () => {
  let t: TestDb;
  let gw: Db;
  let stage: DispatchStage;
  const metrics = createMetrics();
  const probes: string[] = [];
  const whitelists: string[][] = [];

  beforeAll(async () => {
    t = await createTestDb();
    gw = createDb({ url: t.gwUrl, poolSize: 2 });
    await t.db.query(
      `INSERT INTO gw_dispatcher (id, setid, destination, state, weight, priority, attrs, description) VALUES
        (1, 1, 'sip:10.0.0.1:5060;transport=udp', 0, 1, 0, '', 'ast1'),
        (2, 1, 'sip:10.0.0.2:5060;transport=tcp', 0, 2, 5, 'duid=b', 'ast2'),
        (3, 1, 'sip:10.0.0.3', 3, 1, 0, '', 'ast3 (maintenance)'),
        (4, 2, 'sip:[2001:db8::4]:5080;transport=tcp', 0, 1, 0, '', 'other set')`,
    );
    stage = createDispatch({
      config: configSchema.parse({ dispatch: { probeIntervalSec: 3600 } }).dispatch,
      db: gw,
      probe: async (target) => { probes.push(target.id); return 200; },
      log: silentLogger(),
      metrics,
      onLoaded: () => whitelists.push(stage.dispatcher.hosts().sort()),
    });
  });
  afterAll(async () => {
    stage?.stop();
    await gw?.end();
    await t?.drop();
  });

  it('reads every row with its columns', async () => {
    const rows = await readDispatcherRows(gw);
    expect(rows).toHaveLength(4);
    expect(rows[1]).toEqual({ id: 2, setid: 1, destination: 'sip:10.0.0.2:5060;transport=tcp', state: 0, weight: 2, priority: 5, attrs: 'duid=b', description: 'ast2' });
  });

  it('loads at start, routes over active destinations and probes all but disabled ones', async () => {
    const summary = await stage.start();
    expect(summary).toMatchObject({ sets: 2, destinations: 4, added: 4, problems: [] });
    expect(ids(stage.dispatcher.select(1, facts('c1')))).toEqual(['1', '2']);
    expect(stage.dispatcher.select(2, facts('c1'))).toEqual([{ id: '4', uri: 'sip:[2001:db8::4]:5080;transport=tcp', host: '2001:db8::4', port: 5080, proto: 'tcp' }]);
    await new Promise((r) => setImmediate(r));
    expect(probes.sort()).toEqual(['1', '2', '4']);
    expect(stage.dispatcher.get('3')!.state).toBe('disabled');
    expect(whitelists).toEqual([['10.0.0.1', '10.0.0.2', '10.0.0.3', '2001:db8::4']]);
  });

  it('reloads without dropping calls: surviving destinations keep state and active calls', async () => {
    const r = stage.dispatcher.route(facts('in-progress'), undefined);
    const held = r.kind === 'targets' ? r.targets[0]!.id : '';
    stage.dispatcher.setState('1', 'inactive');
    await t.db.query(`INSERT INTO gw_dispatcher (id, setid, destination, weight) VALUES (5, 1, 'sip:10.0.0.5:5060', 1)`);
    await t.db.query('DELETE FROM gw_dispatcher WHERE id = 4');
    await t.db.query(`UPDATE gw_dispatcher SET weight = 9, description = 'ast2 bigger' WHERE id = 2`);
    const summary = await stage.store.reload();
    expect(summary).toMatchObject({ sets: 1, destinations: 4, kept: 3, added: 1, removed: 1 });
    expect(stage.dispatcher.get('1')!.state).toBe('inactive');
    expect(stage.dispatcher.get('2')).toMatchObject({ weight: 9, description: 'ast2 bigger' });
    expect(stage.dispatcher.get(held)!.activeCalls).toBe(1);
    expect(ids(stage.dispatcher.select(1, facts('c2')))).toEqual(['2', '5']);
    expect(stage.dispatcher.select(2, facts('c2'))).toEqual([]);
    stage.dispatcher.onCallEvent({ type: 'ended', callId: 'in-progress', fromTag: 'a', toTag: 'b', reason: 'bye-caller', at: Date.now() });
    expect(stage.dispatcher.get(held)!.activeCalls).toBe(0);
  });

  it('applies a state changed in the table on reload (the operator wins)', async () => {
    await t.db.query('UPDATE gw_dispatcher SET state = 0 WHERE id = 3');
    await stage.store.reload();
    expect(stage.dispatcher.get('3')!.state).toBe('active');
    expect(ids(stage.dispatcher.select(1, facts('c3')))).toEqual(['2', '3', '5']);
  });

  it('persists an administrative state through the mgmt provider when asked', async () => {
    const provider = dispatcherMgmtProvider(stage);
    expect(await provider.setState('5', 'disabled', { persist: true })).toMatchObject({ id: '5', state: 'disabled' });
    const [rows] = await t.db.query('SELECT state FROM gw_dispatcher WHERE id = 5');
    expect(rows).toEqual([{ state: 3 }]);
    await provider.setState('2', 'inactive', { persist: false });
    const [rows2] = await t.db.query('SELECT state FROM gw_dispatcher WHERE id = 2');
    expect(rows2).toEqual([{ state: 0 }]);
    // a reload keeps both: 5 from the table, 2 from runtime (its column did not change)
    await stage.store.reload();
    expect([stage.dispatcher.get('5')!.state, stage.dispatcher.get('2')!.state]).toEqual(['disabled', 'inactive']);
    expect(await provider.setState('77', 'active', { persist: true })).toBeUndefined();
  });

  it('keeps the current destinations when the database cannot be read, and counts the failure', async () => {
    const broken = createDb({ url: t.gwUrl.replace(/\/[^/]+$/, '/no_such_db_xyz'), poolSize: 1, connectTimeoutMs: 2000 });
    const other = createDispatch({ config: configSchema.parse({}).dispatch, db: broken, probe: async () => 200, log: silentLogger(), metrics });
    other.dispatcher.load([{ id: 1, setid: 1, destination: 'sip:10.1.1.1', state: 0, weight: 1, priority: 0, attrs: '', description: '' }]);
    await expect(other.store.reload()).rejects.toMatchObject({ code: 'GW_ERR_DB_QUERY' });
    expect(ids(other.dispatcher.select(1, facts('x')))).toEqual(['1']);
    await broken.end();
    expect(await metrics.text()).toMatch(/a2b_dispatcher_reloads_total\{result="error"\} 1/);
  });

  it('shares one read between concurrent reloads', async () => {
    const a = stage.store.reload();
    const b = stage.store.reload();
    expect(a).toBe(b);
    await a;
  });
});
