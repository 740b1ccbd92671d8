// One supervised AMI connection to one Asterisk box: login (with `Events:` narrowing), a Ping heartbeat with a
// deadline, reconnect with capped exponential back-off and jitter, actions with time-outs that fail fast while
// disconnected, and Cdr events turned into typed CdrRecords. Our own small client rather than asterisk-manager
// 0.2.0: README "Why not asterisk-manager" lists the defects that forced it (test/e2e/emulator-asterisk-manager-defects.test.ts).
import { EventEmitter } from 'node:events';
import { connect as netConnect, type Socket } from 'node:net';
import { GwError, describeError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { cdrFromEvent, type CdrRecord } from './cdr.js';
import { AmiFramer, AmiMessage, serializeMessage } from './protocol.js';
import { ZoneClock } from './time.js';

export interface AmiClientOptions {
  box: string;
  host: string;
  port: number;
  username: string;
  secret: string;
  /** Value of the Login `Events:` header: 'cdr' narrows the stream to the cdr class ('on' = all the user may read). */
  events?: string;
  /** IANA zone of the box's clock, for CDR times (default UTC). */
  timezone?: string;
  pingIntervalMs?: number;
  pingTimeoutMs?: number;
  actionTimeoutMs?: number;
  /** TCP connect + banner + login response (default actionTimeoutMs). */
  connectTimeoutMs?: number;
  reconnectMinMs?: number;
  reconnectMaxMs?: number;
  log?: Logger;
  metrics?: Metrics;
  /** Source of jitter in [0,1) (tests pass a fixed one). */
  random?: () => number;
}

export type AmiState = 'idle' | 'connecting' | 'up' | 'waiting' | 'failed' | 'stopped';

export interface AmiUp { box: string; at: number; banner: string }
export interface AmiDown { box: string; at: number; upSince: number; reason: string }

export interface AmiClientEvents {
  /** Logged in (after every successful (re)connect). */
  up: [AmiUp];
  /** A logged-in connection ended (reason: heartbeat, closed by peer, stop, ...). */
  down: [AmiDown];
  cdr: [CdrRecord];
  /** Every event, Cdr included, keys readable in any case. */
  event: [AmiMessage];
  /** The box refused the credentials; the client stops (retrying a wrong secret only trips the box's guards). */
  loginFailed: [GwError];
  /** A Cdr event that could not be read (logged and counted; the stream goes on). */
  badCdr: [GwError, AmiMessage];
  state: [AmiState];
}

interface Pending {
  resolve(m: AmiMessage): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
}

/**
 * Delay before reconnect attempt n (0-based): min·2^n capped at max, with "equal jitter" — half fixed, half random —
 * so a gateway restarted next to many boxes (or many gateways after a box restart) do not reconnect in lock-step.
 */
export function reconnectDelay(attempt: number, minMs: number, maxMs: number, random: number): number {
  const base = Math.min(maxMs, minMs * 2 ** Math.min(attempt, 30));
  return Math.round(base / 2 + random * (base / 2));
}

const KNOWN_EVENT_LABELS = new Set(['Cdr', 'FullyBooted', 'Shutdown', 'Reload', 'CEL', 'Hangup', 'Newchannel']);

export class AmiClient extends EventEmitter<AmiClientEvents> {
  readonly box: string;
  private readonly o: Required<Omit<AmiClientOptions, 'log' | 'metrics' | 'timezone' | 'random'>>;
  private readonly log: Logger | undefined;
  private readonly metrics: Metrics | undefined;
  private readonly random: () => number;
  private readonly clock: ZoneClock;

  private _state: AmiState = 'idle';
  private socket: Socket | undefined;
  private framer: AmiFramer | undefined;
  private pending = new Map<string, Pending>();
  private actionSeq = 0;
  private attempt = 0;
  private upSince = 0;
  private banner = '';
  private lastError = '';
  private connectTimer: NodeJS.Timeout | undefined;
  private pingTimer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private closed: Promise<void> = Promise.resolve();

  constructor(opts: AmiClientOptions) {
    super();
    this.box = opts.box;
    const actionTimeoutMs = opts.actionTimeoutMs ?? 10_000;
    this.o = {
      box: opts.box, host: opts.host, port: opts.port, username: opts.username, secret: opts.secret,
      events: opts.events ?? 'cdr',
      pingIntervalMs: opts.pingIntervalMs ?? 10_000,
      pingTimeoutMs: opts.pingTimeoutMs ?? 5_000,
      actionTimeoutMs,
      connectTimeoutMs: opts.connectTimeoutMs ?? actionTimeoutMs,
      reconnectMinMs: opts.reconnectMinMs ?? 500,
      reconnectMaxMs: opts.reconnectMaxMs ?? 30_000,
    };
    this.log = opts.log?.child({ box: opts.box });
    this.metrics = opts.metrics;
    this.random = opts.random ?? Math.random;
    this.clock = new ZoneClock(opts.timezone ?? 'UTC');
  }

  get state(): AmiState {
    return this._state;
  }

  get connected(): boolean {
    return this._state === 'up';
  }

  /** Starts the supervised connection (returns at once; listen for 'up', or await whenUp()). */
  start(): void {
    if (this._state !== 'idle') return;
    this.connectNow();
  }

  /** Resolves when logged in; rejects with GW_ERR_AMI_LOGIN on refused credentials, GW_ERR_AMI_TIMEOUT after timeoutMs. */
  whenUp(timeoutMs = 30_000): Promise<void> {
    if (this._state === 'up') return Promise.resolve();
    if (this._state === 'failed') return Promise.reject(new GwError('GW_ERR_AMI_LOGIN', `box ${this.box}: ${this.lastError}`));
    if (this._state === 'stopped') return Promise.reject(new GwError('GW_ERR_AMI_DISCONNECTED', `box ${this.box}: client stopped`));
    return new Promise((resolve, reject) => {
      const done = (): void => { clearTimeout(t); this.off('up', onUp); this.off('loginFailed', onFail); this.off('state', onState); };
      const onUp = (): void => { done(); resolve(); };
      const onFail = (e: GwError): void => { done(); reject(e); };
      const onState = (s: AmiState): void => {
        if (s === 'stopped') { done(); reject(new GwError('GW_ERR_AMI_DISCONNECTED', `box ${this.box}: client stopped`)); }
      };
      const t = setTimeout(() => {
        done();
        reject(new GwError('GW_ERR_AMI_TIMEOUT', `box ${this.box}: not logged in after ${timeoutMs} ms (${this.lastError || 'no answer'})`));
      }, timeoutMs);
      this.on('up', onUp);
      this.on('loginFailed', onFail);
      this.on('state', onState);
    });
  }

  /**
   * Sends an action and resolves with its response. Rejects at once with GW_ERR_AMI_DISCONNECTED when not logged
   * in (the action is not queued: a caller must not believe a stale action will still run), GW_ERR_AMI_TIMEOUT
   * after the deadline, GW_ERR_AMI_ACTION when Asterisk answers `Response: Error`.
   */
  action(name: string, fields: Record<string, string> = {}, opts: { timeoutMs?: number } = {}): Promise<AmiMessage> {
    if (this._state !== 'up') {
      return Promise.reject(new GwError('GW_ERR_AMI_DISCONNECTED', `box ${this.box}: ${name} not sent (${this._state})`));
    }
    return this.send(name, fields, opts.timeoutMs ?? this.o.actionTimeoutMs);
  }

  /** Ping round trip in ms. */
  async ping(timeoutMs = this.o.pingTimeoutMs): Promise<number> {
    const t0 = performance.now();
    const r = await this.action('Ping', {}, { timeoutMs });
    if (r.get('Ping') !== 'Pong' && r.response !== 'Success') throw new GwError('GW_ERR_AMI_PROTOCOL', 'Ping answered without Pong');
    return performance.now() - t0;
  }

  /** A CLI command; resolves with its output lines. */
  async command(cmd: string, opts: { timeoutMs?: number } = {}): Promise<string[]> {
    const r = await this.action('Command', { Command: cmd }, opts);
    return r.getAll('Output');
  }

  /** Logs off (when up; waits up to logoffTimeoutMs for the Goodbye, 0 = skip), closes the socket and every timer. Idempotent. */
  async stop(opts: { logoffTimeoutMs?: number } = {}): Promise<void> {
    const logoffMs = Math.min(opts.logoffTimeoutMs ?? 1000, this.o.actionTimeoutMs);
    if (this._state === 'stopped') return this.closed;
    const wasUp = this._state === 'up';
    this.setState('stopped');
    clearTimeout(this.retryTimer);
    clearTimeout(this.pingTimer);
    if (wasUp && logoffMs > 0) {
      await this.send('Logoff', {}, logoffMs).catch(() => undefined);
    }
    this.teardown('stopped');
    return this.closed;
  }

  // --- internals ---

  private setState(s: AmiState): void {
    if (this._state === s) return;
    this._state = s;
    this.emit('state', s);
  }

  private connectNow(): void {
    this.setState('connecting');
    this.banner = '';
    this.lastError = ''; // reasons belong to one attempt
    const socket = netConnect({ host: this.o.host, port: this.o.port });
    this.socket = socket;
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 30_000);
    let closedResolve!: () => void;
    this.closed = new Promise((r) => { closedResolve = r; });
    this.framer = new AmiFramer({
      banner: (line) => this.onBanner(line),
      message: (m) => this.onMessage(m),
    });
    this.connectTimer = setTimeout(() => {
      this.lastError = `no login within ${this.o.connectTimeoutMs} ms`;
      this.teardown(this.lastError);
    }, this.o.connectTimeoutMs);
    socket.on('data', (chunk: Buffer) => {
      if (this.socket !== socket) return;
      try {
        this.framer!.push(chunk);
      } catch (e) {
        this.lastError = describeError(e);
        this.log?.warn({ err: this.lastError }, 'AMI protocol error; dropping the connection');
        this.teardown(this.lastError);
      }
    });
    socket.on('error', (e: NodeJS.ErrnoException) => {
      this.lastError = e.code ? `${e.code}: ${e.message}` : e.message;
    });
    socket.on('close', () => {
      closedResolve();
      if (this.socket === socket) this.teardown(this.lastError || 'connection closed by the box');
    });
  }

  private onBanner(line: string): void {
    this.banner = line;
    const fields: Record<string, string> = { Username: this.o.username, Secret: this.o.secret };
    if (this.o.events) fields.Events = this.o.events;
    this.send('Login', fields, this.o.connectTimeoutMs).then(() => this.onLoggedIn(), (e: unknown) => {
      if (e instanceof GwError && e.code === 'GW_ERR_AMI_ACTION') {
        const err = new GwError('GW_ERR_AMI_LOGIN', `box ${this.box} (${this.o.host}:${this.o.port}) refused user "${this.o.username}": ${e.details?.message ?? e.message}`);
        this.lastError = err.message;
        this.metrics?.amiConnects.inc({ box: this.box, result: 'error' });
        this.log?.error({ err: err.message }, 'AMI login refused; not retrying until restarted');
        this.setState('failed');
        this.teardown('login refused');
        this.emit('loginFailed', err);
      }
      // Anything else (time-out, close) is handled by teardown's reconnect.
    });
  }

  private onLoggedIn(): void {
    if (this._state !== 'connecting') return;
    clearTimeout(this.connectTimer);
    this.attempt = 0;
    this.upSince = Date.now();
    this.lastError = '';
    this.setState('up');
    this.metrics?.amiConnects.inc({ box: this.box, result: 'ok' });
    this.metrics?.amiConnectionUp.set({ box: this.box }, 1);
    this.log?.info({ banner: this.banner }, 'AMI logged in');
    this.emit('up', { box: this.box, at: this.upSince, banner: this.banner });
    this.schedulePing();
  }

  private schedulePing(): void {
    clearTimeout(this.pingTimer);
    this.pingTimer = setTimeout(() => {
      if (this._state !== 'up') return;
      this.send('Ping', {}, this.o.pingTimeoutMs).then(
        () => this.schedulePing(),
        (e: unknown) => {
          if (this._state !== 'up') return;
          if (e instanceof GwError && e.code === 'GW_ERR_AMI_TIMEOUT') {
            this.lastError = `heartbeat: no answer to Ping within ${this.o.pingTimeoutMs} ms`;
            this.teardown(this.lastError);
          } else {
            this.schedulePing(); // an Error answer still proves the box is alive
          }
        },
      );
    }, this.o.pingIntervalMs);
  }

  private send(name: string, fields: Record<string, string>, timeoutMs: number): Promise<AmiMessage> {
    const socket = this.socket;
    if (!socket || socket.destroyed) {
      return Promise.reject(new GwError('GW_ERR_AMI_DISCONNECTED', `box ${this.box}: ${name} not sent`));
    }
    const id = `${this.box}-${++this.actionSeq}`;
    let wire: string;
    try {
      wire = serializeMessage([['Action', name], ['ActionID', id], ...Object.entries(fields)]);
    } catch (e) {
      return Promise.reject(e);
    }
    return new Promise<AmiMessage>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new GwError('GW_ERR_AMI_TIMEOUT', `box ${this.box}: ${name} unanswered after ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      socket.write(wire);
    });
  }

  private onMessage(m: AmiMessage): void {
    const id = m.actionId;
    if (m.response !== undefined && id !== undefined) {
      const p = this.pending.get(id);
      if (p) {
        this.pending.delete(id);
        clearTimeout(p.timer);
        if (m.response.toLowerCase() === 'error') {
          const message = m.get('Message') ?? '';
          p.reject(new GwError('GW_ERR_AMI_ACTION', `box ${this.box}: ${message}`, { details: { message } }));
        } else {
          p.resolve(m);
        }
      }
      return;
    }
    const name = m.event;
    if (name === undefined) return;
    this.metrics?.amiEvents.inc({ box: this.box, event: KNOWN_EVENT_LABELS.has(name) ? name : 'other' });
    this.emit('event', m);
    if (name === 'Cdr') {
      let rec: CdrRecord;
      try {
        rec = cdrFromEvent(this.box, m, this.clock);
      } catch (e) {
        const err = e instanceof GwError ? e : new GwError('GW_ERR_AMI_PROTOCOL', describeError(e));
        this.log?.warn({ err: err.message, uniqueId: m.get('UniqueID') }, 'unreadable Cdr event');
        this.emit('badCdr', err, m);
        return;
      }
      this.emit('cdr', rec);
    }
  }

  /** Ends the current connection (if any), fails its pending actions, and schedules the next attempt. */
  private teardown(why: string): void {
    if (this.socket === undefined && this._state === 'waiting') return; // already torn down (timer and close raced)
    const reason = this._state === 'stopped' ? 'stopped' : why;
    clearTimeout(this.connectTimer);
    clearTimeout(this.pingTimer);
    const socket = this.socket;
    this.socket = undefined;
    this.framer = undefined;
    if (socket) socket.destroy();
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new GwError('GW_ERR_AMI_DISCONNECTED', `box ${this.box}: connection lost (${reason})`));
      this.pending.delete(id);
    }
    const wasUp = this.upSince !== 0;
    if (wasUp) {
      const down: AmiDown = { box: this.box, at: Date.now(), upSince: this.upSince, reason };
      this.upSince = 0;
      this.metrics?.amiConnectionUp.set({ box: this.box }, 0);
      this.log?.warn({ reason }, 'AMI connection down');
      this.emit('down', down);
    } else if (this._state === 'connecting') {
      this.metrics?.amiConnects.inc({ box: this.box, result: 'error' });
    }
    if (this._state === 'stopped' || this._state === 'failed') return;
    const delay = reconnectDelay(this.attempt, this.o.reconnectMinMs, this.o.reconnectMaxMs, this.random());
    this.attempt++;
    this.setState('waiting');
    this.log?.debug({ delay, attempt: this.attempt, reason }, 'AMI reconnect scheduled');
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      if (this._state === 'waiting') this.connectNow();
    }, delay);
  }
}
