// Management HTTP interface (node:http, JSON). Loopback by default; every endpoint requires
// `Authorization: Bearer <mgmt.token>` when a token is configured (compared in constant time).
// The server knows only the MgmtActions interface: main.ts hands in whichever providers exist, and an
// endpoint whose provider is missing answers 501, so the server can be built before the other stages.
//
//   GET    /health                      {status:"ok", uptimeSec, ...health()}
//   GET    /metrics                     Prometheus text exposition
//   GET    /dispatcher                  {destinations:[...]}
//   POST   /dispatcher/{id}/state       body {state: "active"|"inactive"|"probing"|"disabled"|0..3, persist?: boolean}
//   POST   /reload/dispatcher|auth|credentials
//   GET    /dialogs                     {dialogs:[...]}
//   DELETE /dialogs/{callId}            (URL-encoded Call-ID) ends the dialog with BYE to both sides
//   GET    /reconcile/last              the last reconciliation run, 404 when there is none
// Errors: {error: "<what is wrong>", status}.
import { createHash, timingSafeEqual } from 'node:crypto';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { GwError, describeError, isGwError } from '../errors.js';
import type { Logger } from '../log.js';
import { DESTINATION_STATES, type Metrics } from '../metrics.js';

export type AdminState = (typeof DESTINATION_STATES)[number];

/** Providers the server calls. Every one is optional. Return values are serialised as JSON. */
export interface MgmtActions {
  /** Extra health facts (db, ami, ...); may set status "degraded". */
  health?: () => Record<string, unknown> | Promise<Record<string, unknown>>;
  /** Prometheus exposition. */
  metrics?: Pick<Metrics, 'text' | 'contentType'>;
  dispatcher?: {
    list(): unknown[];
    /** undefined → unknown id (404). */
    setState(id: string, state: AdminState, opts: { persist: boolean }): unknown | undefined | Promise<unknown | undefined>;
  };
  reloadDispatcher?: () => Promise<unknown>;
  reloadAuth?: () => Promise<unknown>;
  reloadCredentials?: () => Promise<unknown>;
  listDialogs?: () => unknown[] | Promise<unknown[]>;
  /** false → no such dialog (404). */
  endDialog?: (callId: string) => boolean | Promise<boolean>;
  /** undefined → no run yet (404). */
  lastReconcile?: () => unknown | Promise<unknown>;
}

export interface MgmtServerOptions {
  host: string;
  port: number;
  token?: string | undefined;
  log: Logger;
  actions: MgmtActions;
  /** Counts requests in a2b_mgmt_requests_total. */
  metrics?: Metrics;
  maxBodyBytes?: number;
}

const LOOPBACK = /^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|::1|localhost)$/;
/** Host header values a local client sends to a loopback server (anything else is a DNS-rebinding page). */
const LOOPBACK_HOST_HEADER = /^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|\[::1\]|localhost)(:\d{1,5})?$/i;

export function isLoopbackHost(host: string): boolean {
  return LOOPBACK.test(host);
}

class HttpError extends Error {
  constructor(readonly status: number, message: string, readonly headers: Record<string, string> = {}) {
    super(message);
  }
}

type Handler = (req: IncomingMessage, params: string[]) => Promise<Reply>;
interface Reply { status: number; body: unknown; contentType?: string }
interface Route { pattern: RegExp; template: string; methods: Record<string, Handler> }

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

export class MgmtServer {
  private readonly opts: MgmtServerOptions;
  private readonly server: Server;
  private readonly routes: Route[];
  private readonly tokenDigest: Buffer | undefined;
  private readonly startedAt = Date.now();
  private bound: AddressInfo | undefined;

  constructor(opts: MgmtServerOptions) {
    if (!opts.token && !isLoopbackHost(opts.host)) {
      throw new GwError('GW_ERR_CONFIG_INVALID', `mgmt.token is required when mgmt.host (${opts.host}) is not a loopback address`);
    }
    this.opts = opts;
    this.tokenDigest = opts.token ? digest(opts.token) : undefined;
    this.routes = this.buildRoutes();
    this.server = createServer((req, res) => { void this.handle(req, res); });
    this.server.headersTimeout = 10_000;
    this.server.requestTimeout = 30_000;
    this.server.keepAliveTimeout = 5_000;
  }

  /** Binds host:port (port 0 = ephemeral). Resolves with the bound address. */
  listen(): Promise<{ host: string; port: number; url: string }> {
    return new Promise((resolve, reject) => {
      const onError = (e: Error) => reject(new GwError('GW_ERR_MGMT', `cannot listen on ${this.opts.host}:${this.opts.port}: ${e.message}`, { cause: e }));
      this.server.once('error', onError);
      this.server.listen(this.opts.port, this.opts.host, () => {
        this.server.off('error', onError);
        // A later server error (e.g. EMFILE on accept) must be logged, not thrown into the event loop.
        this.server.on('error', (e) => this.opts.log.error({ err: describeError(e) }, 'management interface error'));
        this.bound = this.server.address() as AddressInfo;
        this.opts.log.info({ host: this.bound.address, port: this.bound.port, auth: this.tokenDigest ? 'bearer' : 'none' }, 'management interface listening');
        resolve({ host: this.bound.address, port: this.bound.port, url: this.url() });
      });
    });
  }

  url(): string {
    if (!this.bound) throw new GwError('GW_ERR_MGMT', 'server is not listening');
    const h = this.bound.family === 'IPv6' ? `[${this.bound.address}]` : this.bound.address;
    return `http://${h}:${this.bound.port}`;
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (!this.server.listening) { resolve(); return; }
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  // ------------------------------------------------------------------ request handling

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let template = 'unknown';
    let reply: Reply;
    let headers: Record<string, string> = {};
    try {
      // Path only; the query string is ignored. Not parsed with URL() so "//host/x" cannot become a host.
      const rawUrl = req.url ?? '/';
      const q = rawUrl.indexOf('?');
      const path = q >= 0 ? rawUrl.slice(0, q) : rawUrl;
      const found = this.match(path);
      if (found) template = found.route.template;
      // Authentication before anything else is revealed (404/405 included).
      this.authorize(req);
      if (!found) throw new HttpError(404, `no such endpoint: ${req.method} ${truncate(path)}`);
      const handler = found.route.methods[req.method ?? ''];
      if (!handler) {
        const allow = Object.keys(found.route.methods).join(', ');
        throw new HttpError(405, `method ${req.method} not allowed on ${template} (allowed: ${allow})`, { Allow: allow });
      }
      reply = await handler(req, found.params);
    } catch (e) {
      if (e instanceof HttpError) {
        reply = { status: e.status, body: { error: e.message, status: e.status } };
        headers = e.headers;
      } else {
        this.opts.log.error({ err: describeError(e), route: template }, 'management request failed');
        reply = { status: 500, body: { error: describeError(e), status: 500, ...(isGwError(e) ? { code: e.code } : {}) } };
      }
    }
    this.opts.metrics?.mgmtRequests.inc({ route: template, status: String(reply.status) });
    // Drain an unread body so keep-alive connections stay usable.
    if (!req.complete) req.resume();
    const text = reply.contentType ? String(reply.body) : JSON.stringify(reply.body) + '\n';
    res.writeHead(reply.status, {
      'Content-Type': reply.contentType ?? 'application/json; charset=utf-8',
      'Content-Length': Buffer.byteLength(text),
      'Cache-Control': 'no-store',
      ...headers,
    });
    res.end(text);
  }

  private authorize(req: IncomingMessage): void {
    if (!this.tokenDigest) {
      // No token (loopback only): a web page the operator opens could still reach us, cross-site (a no-cors POST
      // with a body of no type) or through DNS rebinding. ctl, curl and Prometheus send no Origin and a loopback Host.
      if (req.headers.origin !== undefined) throw new HttpError(403, 'requests from web pages are refused (set mgmt.token to use a browser)');
      if (!LOOPBACK_HOST_HEADER.test(req.headers.host ?? '')) throw new HttpError(403, 'Host must be a loopback address when mgmt.token is not set');
      return;
    }
    const h = req.headers.authorization ?? '';
    const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(h);
    const challenge = { 'WWW-Authenticate': 'Bearer realm="a2b-gateway"' };
    if (!m) throw new HttpError(401, 'missing bearer token (Authorization: Bearer <mgmt.token>)', challenge);
    // Comparing fixed-length digests keeps the comparison constant-time whatever the token length.
    if (!timingSafeEqual(digest(m[1]!), this.tokenDigest)) throw new HttpError(401, 'invalid bearer token', challenge);
  }

  private match(path: string): { route: Route; params: string[] } | undefined {
    for (const route of this.routes) {
      const m = route.pattern.exec(path);
      if (m) return { route, params: m.slice(1) };
    }
    return undefined;
  }

  private need<K extends keyof MgmtActions>(name: K, what: string): NonNullable<MgmtActions[K]> {
    const a = this.opts.actions[name];
    if (!a) throw new HttpError(501, `${what} is not available in this process`);
    return a as NonNullable<MgmtActions[K]>;
  }

  private buildRoutes(): Route[] {
    const a = this.opts.actions;
    const reload = (what: 'dispatcher' | 'auth' | 'credentials') => async (): Promise<Reply> => {
      const fn = this.need(what === 'dispatcher' ? 'reloadDispatcher' : what === 'auth' ? 'reloadAuth' : 'reloadCredentials', `reloading ${what}`);
      const result = await fn();
      this.opts.log.info({ what }, 'reload requested over mgmt');
      return { status: 200, body: { reloaded: what, result: result ?? null } };
    };
    return [
      { pattern: /^\/health\/?$/, template: '/health', methods: { GET: async () => {
        let extra: Record<string, unknown> = {};
        try {
          if (a.health) extra = await a.health();
        } catch (e) {
          // A health check that cannot even run is itself the answer: not healthy.
          extra = { status: 'error', error: describeError(e) };
        }
        const status = typeof extra.status === 'string' ? extra.status : 'ok';
        return { status: status === 'ok' ? 200 : 503, body: { uptimeSec: Math.round((Date.now() - this.startedAt) / 1000), ...extra, status } };
      } } },
      { pattern: /^\/metrics\/?$/, template: '/metrics', methods: { GET: async () => {
        const m = this.need('metrics', 'metrics');
        return { status: 200, body: await m.text(), contentType: m.contentType };
      } } },
      { pattern: /^\/dispatcher\/?$/, template: '/dispatcher', methods: { GET: async () =>
        ({ status: 200, body: { destinations: this.need('dispatcher', 'the dispatcher').list() } }) } },
      { pattern: /^\/dispatcher\/([^/]+)\/state\/?$/, template: '/dispatcher/:id/state', methods: { POST: async (req, [rawId]) => {
        const disp = this.need('dispatcher', 'the dispatcher');
        const id = decodeParam(rawId!);
        if (!/^\d{1,10}$/.test(id)) throw new HttpError(400, `destination id "${truncate(id)}" must be a number (gw_dispatcher.id)`);
        const body = await readJson(req, this.opts.maxBodyBytes ?? 65_536);
        const state = parseAdminState(body.state);
        if (!state) throw new HttpError(400, `field "state" must be one of ${DESTINATION_STATES.join(', ')} (or 0-3), got ${truncate(JSON.stringify(body.state) ?? 'nothing')}`);
        if (body.persist !== undefined && typeof body.persist !== 'boolean') throw new HttpError(400, 'field "persist" must be true or false');
        const view = await disp.setState(id, state, { persist: body.persist === true });
        if (view === undefined) throw new HttpError(404, `no destination with id ${id}`);
        this.opts.log.info({ id, state }, 'destination state set over mgmt');
        return { status: 200, body: { destination: view } };
      } } },
      { pattern: /^\/reload\/dispatcher\/?$/, template: '/reload/dispatcher', methods: { POST: reload('dispatcher') } },
      { pattern: /^\/reload\/auth\/?$/, template: '/reload/auth', methods: { POST: reload('auth') } },
      { pattern: /^\/reload\/credentials\/?$/, template: '/reload/credentials', methods: { POST: reload('credentials') } },
      { pattern: /^\/dialogs\/?$/, template: '/dialogs', methods: { GET: async () =>
        ({ status: 200, body: { dialogs: await this.need('listDialogs', 'the dialog list')() } }) } },
      { pattern: /^\/dialogs\/([^/]+)\/?$/, template: '/dialogs/:callId', methods: { DELETE: async (_req, [raw]) => {
        const end = this.need('endDialog', 'ending dialogs');
        const callId = decodeParam(raw!);
        if (callId.length === 0 || callId.length > 255) throw new HttpError(400, 'Call-ID must be 1 to 255 characters');
        const ended = await end(callId);
        if (!ended) throw new HttpError(404, `no dialog with Call-ID "${truncate(callId)}"`);
        this.opts.log.info({ callId }, 'dialog ended over mgmt');
        return { status: 200, body: { ended: callId } };
      } } },
      { pattern: /^\/reconcile\/last\/?$/, template: '/reconcile/last', methods: { GET: async () => {
        const last = await this.need('lastReconcile', 'reconciliation')();
        if (last === undefined || last === null) throw new HttpError(404, 'no reconciliation run yet');
        return { status: 200, body: { run: last } };
      } } },
    ];
  }
}

export function createMgmtServer(opts: MgmtServerOptions): MgmtServer {
  return new MgmtServer(opts);
}

function parseAdminState(v: unknown): AdminState | undefined {
  if (typeof v === 'number' && Number.isInteger(v)) return DESTINATION_STATES[v];
  if (typeof v !== 'string') return undefined;
  const s = v.trim().toLowerCase();
  if (/^[0-3]$/.test(s)) return DESTINATION_STATES[Number(s)];
  return (DESTINATION_STATES as readonly string[]).includes(s) ? (s as AdminState) : undefined;
}

function decodeParam(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new HttpError(400, `path parameter "${truncate(raw)}" is not valid URL encoding`);
  }
}

function truncate(s: string, n = 80): string {
  return s.length > n ? `${s.slice(0, n)}…` : s;
}

/** Reads a JSON object body (empty body = {}). 413 over the limit, 400 for bad JSON or a non-object, 415 for other types. */
async function readJson(req: IncomingMessage, limit: number): Promise<Record<string, unknown>> {
  const type = req.headers['content-type'];
  if (type && !/^application\/json\b/i.test(type)) throw new HttpError(415, `body must be application/json, got ${truncate(type)}`);
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) throw new HttpError(413, `body larger than ${limit} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new HttpError(413, `body larger than ${limit} bytes`);
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new HttpError(400, `body is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new HttpError(400, 'body must be a JSON object');
  return parsed as Record<string, unknown>;
}
