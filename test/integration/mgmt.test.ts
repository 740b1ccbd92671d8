// The management interface over a real loopback socket, with a real Dispatcher and metrics registry.
import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Dispatcher } from '../../src/dispatch/dispatcher.js';
import { createMgmtServer, type MgmtServer } from '../../src/mgmt/server.js';
import { configSchema } from '../../src/config/schema.js';
import { silentLogger } from '../../src/log.js';
import { createMetrics } from '../../src/metrics.js';
import { parsePrometheusText } from '../unit/mgmt/prom-text.js';
import type { RequestFacts } from '../../src/proxy/hooks.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const json = (r: Response): Promise<any> => r.json();
const TOKEN = 'test-token-0123456789abcdef';

describe('management HTTP interface', () => {
  const metrics = createMetrics({ processMetrics: true });
  const dispatcher = new Dispatcher({ config: configSchema.parse({}).dispatch, log: silentLogger(), metrics });
  dispatcher.load([1, 2, 3].map((id) => ({ id, setid: 1, destination: `sip:10.0.0.${id}:5060;transport=udp`, state: 0, weight: 1, priority: 0, attrs: '', description: `asterisk ${id}` })));
  metrics.setDispatcherSource(() => dispatcher.gaugeViews());
  const dialogs = new Map([['a84b4c76e66710@pc33.atlanta.example.com', { callId: 'a84b4c76e66710@pc33.atlanta.example.com', accountcode: '1234567890' }]]);
  const reloads: string[] = [];
  let server: MgmtServer;
  let base: string;

  const req = (path: string, init: RequestInit & { token?: string | null } = {}) => {
    const headers = new Headers(init.headers);
    if (init.token !== null) headers.set('authorization', `Bearer ${init.token ?? TOKEN}`);
    return fetch(base + path, { ...init, headers });
  };
  const post = (path: string, body: unknown) => req(path, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });

  beforeAll(async () => {
    server = createMgmtServer({
      host: '127.0.0.1', port: 0, token: TOKEN, log: silentLogger(), metrics,
      actions: {
        health: () => ({ db: 'up' }),
        metrics,
        dispatcher: { list: () => dispatcher.list(), setState: (id, state) => dispatcher.setState(id, state) },
        reloadDispatcher: async () => { reloads.push('dispatcher'); return { destinations: 3 }; },
        reloadAuth: async () => { reloads.push('auth'); return undefined; },
        listDialogs: () => [...dialogs.values()],
        endDialog: (callId) => dialogs.delete(callId),
      },
    });
    base = (await server.listen()).url;
  });
  afterAll(async () => { await server.close(); });

  it('answers /health', async () => {
    const res = await req('/health');
    expect(res.status).toBe(200);
    expect(await json(res)).toMatchObject({ status: 'ok', db: 'up', uptimeSec: expect.any(Number) });
  });

  it('rejects requests without the token or with a wrong one (401), on every endpoint', async () => {
    for (const path of ['/health', '/metrics', '/dispatcher', '/no/such/thing']) {
      const none = await req(path, { token: null });
      expect(none.status).toBe(401);
      expect(none.headers.get('www-authenticate')).toMatch(/^Bearer /);
      expect((await json(none)).error).toMatch(/missing bearer token/);
      const wrong = await req(path, { token: TOKEN.slice(0, -1) + 'X' });
      expect(wrong.status).toBe(401);
      expect((await json(wrong)).error).toBe('invalid bearer token');
    }
    expect((await req('/health', { token: null, headers: { authorization: `Basic ${Buffer.from(`x:${TOKEN}`).toString('base64')}` } })).status).toBe(401);
  });

  it('serves /metrics as valid Prometheus exposition text including dispatcher state', async () => {
    dispatcher.route({ callId: 'scrape-1', fromUser: 'u' } as RequestFacts, undefined);
    const res = await req('/metrics');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const families = parsePrometheusText(await res.text());
    expect(families.get('a2b_dispatcher_destination_state')!.samples.filter((s) => s.value === 1).map((s) => s.labels.state)).toEqual(['active', 'active', 'active']);
    expect(families.get('a2b_dispatcher_selections_total')!.samples.reduce((a, s) => a + s.value, 0)).toBe(1);
    expect(families.get('a2b_mgmt_requests_total')!.samples.some((s) => s.labels.route === '/health' && s.labels.status === '401')).toBe(true);
  });

  it('lists destinations and takes one out of rotation at once when set disabled', async () => {
    const list = await json(await req('/dispatcher'));
    expect(list.destinations.map((d: { id: string; state: string }) => `${d.id}:${d.state}`)).toEqual(['1:active', '2:active', '3:active']);
    const victim = dispatcher.select(1, { callId: 'sticky', fromUser: 'u' })[0]!.id;
    const res = await post(`/dispatcher/${victim}/state`, { state: 'disabled' });
    expect(res.status).toBe(200);
    expect((await json(res)).destination).toMatchObject({ id: victim, state: 'disabled' });
    // the very next routing decision no longer contains it
    for (let i = 0; i < 200; i++) expect(dispatcher.select(1, { callId: `after-${i}`, fromUser: 'u' }).map((t) => t.id)).not.toContain(victim);
    expect((await json(await req('/dispatcher'))).destinations.find((d: { id: string }) => d.id === victim).state).toBe('disabled');
    expect((await post(`/dispatcher/${victim}/state`, { state: 0 })).status).toBe(200);
    expect(dispatcher.get(victim)!.state).toBe('active');
  });

  it('answers bad requests with 4xx and a JSON error naming the problem', async () => {
    const cases: Array<[Promise<Response>, number, RegExp]> = [
      [post('/dispatcher/1/state', { state: 'asleep' }), 400, /field "state" must be one of active, inactive, probing, disabled/],
      [post('/dispatcher/1/state', {}), 400, /field "state"/],
      [post('/dispatcher/abc/state', { state: 'active' }), 400, /destination id "abc" must be a number/],
      [post('/dispatcher/99/state', { state: 'active' }), 404, /no destination with id 99/],
      [req('/dispatcher/1/state', { method: 'POST', body: '{"state":', headers: { 'content-type': 'application/json' } }), 400, /body is not valid JSON/],
      [req('/dispatcher/1/state', { method: 'POST', body: '[1]', headers: { 'content-type': 'application/json' } }), 400, /JSON object/],
      [req('/dispatcher/1/state', { method: 'POST', body: 'state=active', headers: { 'content-type': 'application/x-www-form-urlencoded' } }), 415, /application\/json/],
      [req('/dispatcher/1/state', { method: 'POST', body: JSON.stringify({ state: 'x'.repeat(70_000) }), headers: { 'content-type': 'application/json' } }), 413, /larger than/],
      [req('/dispatcher', { method: 'DELETE' }), 405, /method DELETE not allowed on \/dispatcher \(allowed: GET\)/],
      [req('/nothing/here'), 404, /no such endpoint: GET \/nothing\/here/],
      [post('/reload/everything', {}), 404, /no such endpoint/],
      [post('/reload/credentials', {}), 501, /reloading credentials is not available/],
      [req('/reconcile/last'), 501, /reconciliation is not available/],
      [req('/dialogs/%E0%A4%A', { method: 'DELETE' }), 400, /not valid URL encoding/],
      [req('/dialogs/unknown%40host', { method: 'DELETE' }), 404, /no dialog with Call-ID "unknown@host"/],
    ];
    for (const [p, status, msg] of cases) {
      const res = await p;
      const body = await json(res);
      expect({ status: res.status, error: body.error }).toEqual({ status, error: expect.stringMatching(msg) });
    }
  });

  it('runs reloads through the handed-in functions', async () => {
    const res = await post('/reload/dispatcher', {});
    expect(await json(res)).toEqual({ reloaded: 'dispatcher', result: { destinations: 3 } });
    expect((await post('/reload/auth', {})).status).toBe(200);
    expect(reloads).toEqual(['dispatcher', 'auth']);
  });

  it('lists dialogs and ends one by URL-encoded Call-ID', async () => {
    expect((await json(await req('/dialogs'))).dialogs).toHaveLength(1);
    const res = await req(`/dialogs/${encodeURIComponent('a84b4c76e66710@pc33.atlanta.example.com')}`, { method: 'DELETE' });
    expect(res.status).toBe(200);
    expect(await json(res)).toEqual({ ended: 'a84b4c76e66710@pc33.atlanta.example.com' });
    expect(dialogs.size).toBe(0);
  });

  it('without a token, refuses what a web page could send: an Origin (cross-site) or a foreign Host (DNS rebinding)', async () => {
    const ended: string[] = [];
    const open = createMgmtServer({ host: '127.0.0.1', port: 0, log: silentLogger(), actions: { endDialog: (id) => { ended.push(id); return true; } } });
    const { url, port } = await open.listen();
    try {
      const cross = await fetch(`${url}/dialogs/x`, { method: 'DELETE', headers: { origin: 'https://evil.example' } });
      expect(cross.status).toBe(403);
      const rebound = await new Promise<number>((resolve, reject) => {
        const r = httpRequest({ host: '127.0.0.1', port, path: '/dialogs/x', method: 'DELETE', headers: { host: `evil.example:${port}` } }, (res) => { res.resume(); resolve(res.statusCode!); });
        r.on('error', reject);
        r.end();
      });
      expect(rebound).toBe(403);
      expect(ended).toEqual([]);
      expect((await fetch(`${url}/dialogs/x`, { method: 'DELETE' })).status).toBe(200);
      expect(ended).toEqual(['x']);
    } finally {
      await open.close();
    }
  });

  it('refuses to start on a non-loopback address without a token', () => {
    expect(() => createMgmtServer({ host: '0.0.0.0', port: 0, log: silentLogger(), actions: {} })).toThrow(/mgmt.token is required/);
  });

  it('serves without authentication on loopback when no token is configured; health can report degraded', async () => {
    const open = createMgmtServer({ host: '127.0.0.1', port: 0, log: silentLogger(), actions: { health: () => ({ status: 'degraded', db: 'down' }) } });
    const { url } = await open.listen();
    try {
      const res = await fetch(`${url}/health`);
      expect(res.status).toBe(503);
      expect(await json(res)).toMatchObject({ status: 'degraded', db: 'down' });
      expect((await fetch(`${url}/metrics`)).status).toBe(501);
    } finally {
      await open.close();
    }
    const failing = createMgmtServer({ host: '127.0.0.1', port: 0, log: silentLogger(), actions: { health: () => { throw new Error('pool closed'); } } });
    const f = await failing.listen();
    try {
      const res = await fetch(`${f.url}/health`);
      expect(res.status).toBe(503);
      expect(await json(res)).toMatchObject({ status: 'error', error: 'pool closed' });
    } finally {
      await failing.close();
    }
  });
});
