// An AMI server speaking Asterisk 20's wire format, for tests and the demo. Its own tiny reader on purpose: a test
// double must not share the bugs of the client it checks. Replies are worded as Asterisk words them (manager.c):
// banner without a blank line after it, Login → "Authentication accepted" / "Authentication failed" (then close),
// actions before login → "Permission denied", unknown → "Invalid/unknown command: X. Use Action: ListCommands ...",
// Ping → Ping: Pong + Timestamp, Logoff → Goodbye + "Thanks for all the fish." then close.
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { wireMessage } from './cdr-event.js';

export interface AmiUser {
  username: string;
  secret: string;
  /** Read classes (manager.conf `read`), e.g. ['cdr','call','system']. Default ['cdr']. */
  read?: string[];
}

export interface AmiServerOptions {
  host?: string;
  port?: number;
  users: AmiUser[];
  banner?: string;
  /** Asterisk version printed by `core show version`. */
  version?: string;
  now?: () => number;
}

/** How the server treats Ping (for heartbeat tests): answer, or swallow it like a hung box. */
export type PingMode = 'answer' | 'ignore';

interface Session {
  socket: Socket;
  buf: string;
  user: AmiUser | undefined;
  /** Event classes this session receives; undefined = everything its user may read. */
  mask: Set<string> | undefined;
  actions: Array<Record<string, string>>;
}

export interface AmiServerRecord {
  /** Every action received, lower-cased keys, with the session number. */
  actions: Array<{ session: number; action: Record<string, string> }>;
  logins: Array<{ session: number; username: string; ok: boolean; events: string | undefined }>;
  /** Events posted, and to how many sessions each went. */
  events: Array<{ name: string; deliveredTo: number }>;
  /** Times (ms) the server dropped every connection (fault injection). */
  drops: number[];
}

export class EmulatedAmiServer {
  private readonly server: Server;
  private readonly sessions = new Map<number, Session>();
  private nextSession = 0;
  private readonly opts: Required<Omit<AmiServerOptions, 'port' | 'host'>> & { host: string; port: number };
  private pingMode: PingMode = 'answer';
  private refuseUntil = 0;
  readonly record: AmiServerRecord = { actions: [], logins: [], events: [], drops: [] };
  private readonly startedAt: number;

  constructor(opts: AmiServerOptions) {
    this.opts = {
      host: opts.host ?? '127.0.0.1', port: opts.port ?? 0, users: opts.users,
      banner: opts.banner ?? 'Asterisk Call Manager/9.0.0',
      version: opts.version ?? 'Asterisk 20.20.1 built by a2b-gateway emulator on a x86_64 running Linux',
      now: opts.now ?? Date.now,
    };
    this.startedAt = this.opts.now();
    this.server = createServer((s) => this.accept(s));
  }

  async start(): Promise<{ host: string; port: number }> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.opts.port, this.opts.host, () => { this.server.off('error', reject); resolve(); });
    });
    return { host: this.opts.host, port: this.port };
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  get host(): string {
    return this.opts.host;
  }

  /** Number of logged-in sessions. */
  get loggedIn(): number {
    let n = 0;
    for (const s of this.sessions.values()) if (s.user) n++;
    return n;
  }

  setPingMode(mode: PingMode): void {
    this.pingMode = mode;
  }

  /**
   * Fault: drops every AMI connection now and, for `blindMs`, closes new ones at once (as if the box's manager
   * were down), so events posted meanwhile reach no one.
   */
  dropConnections(blindMs = 0): void {
    this.record.drops.push(this.opts.now());
    this.refuseUntil = this.opts.now() + blindMs;
    for (const s of this.sessions.values()) s.socket.destroy();
    this.sessions.clear();
  }

  /** Posts an event (fields in wire order, starting with Event and Privilege) to every session allowed to see it. */
  postEvent(fields: ReadonlyArray<readonly [string, string]>): number {
    const name = fields[0]?.[1] ?? '';
    const privilege = fields.find(([k]) => k === 'Privilege')?.[1] ?? '';
    const cls = privilege.split(',')[0] ?? '';
    const wire = wireMessage(fields);
    let delivered = 0;
    for (const s of this.sessions.values()) {
      if (!s.user || s.socket.destroyed) continue;
      const read = s.user.read ?? ['cdr'];
      if (!read.includes(cls) && !read.includes('all')) continue;
      if (s.mask && !s.mask.has(cls) && !s.mask.has('all')) continue;
      s.socket.write(wire);
      delivered++;
    }
    this.record.events.push({ name, deliveredTo: delivered });
    return delivered;
  }

  async stop(): Promise<void> {
    for (const s of this.sessions.values()) s.socket.destroy();
    this.sessions.clear();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(socket: Socket): void {
    if (this.opts.now() < this.refuseUntil) {
      socket.destroy();
      return;
    }
    const id = ++this.nextSession;
    const s: Session = { socket, buf: '', user: undefined, mask: undefined, actions: [] };
    this.sessions.set(id, s);
    socket.setNoDelay(true);
    socket.setEncoding('utf8');
    socket.on('error', () => undefined);
    socket.on('close', () => this.sessions.delete(id));
    socket.on('data', (d: string) => {
      s.buf += d;
      if (s.buf.length > 65536) { socket.destroy(); return; }
      for (;;) {
        const end = s.buf.indexOf('\r\n\r\n');
        if (end < 0) break;
        const block = s.buf.slice(0, end);
        s.buf = s.buf.slice(end + 4);
        const msg: Record<string, string> = {};
        for (const line of block.split('\r\n')) {
          const c = line.indexOf(':');
          if (c <= 0) continue;
          const k = line.slice(0, c).trim().toLowerCase();
          if (!(k in msg)) msg[k] = line.slice(c + 1).trim();
        }
        this.record.actions.push({ session: id, action: msg.secret === undefined ? msg : { ...msg, secret: '***' } });
        this.handle(id, s, msg);
      }
    });
    socket.write(`${this.opts.banner}\r\n`);
  }

  private reply(s: Session, m: Record<string, string>, fields: Array<[string, string]>): void {
    const out: Array<[string, string]> = [fields[0]!];
    if (m.actionid !== undefined) out.push(['ActionID', m.actionid]);
    out.push(...fields.slice(1));
    s.socket.write(wireMessage(out));
  }

  private handle(id: number, s: Session, m: Record<string, string>): void {
    const action = m.action;
    if (action === undefined || action === '') {
      this.reply(s, m, [['Response', 'Error'], ['Message', 'Missing action in request']]);
      return;
    }
    const a = action.toLowerCase();
    if (!s.user && a !== 'login' && a !== 'logoff' && a !== 'challenge') {
      this.reply(s, m, [['Response', 'Error'], ['Message', 'Permission denied']]);
      return;
    }
    switch (a) {
      case 'login': {
        const u = this.opts.users.find((x) => x.username === m.username && x.secret === m.secret);
        this.record.logins.push({ session: id, username: m.username ?? '', ok: !!u, events: m.events });
        if (!u) {
          // manager.c: authentication failure ends the session.
          this.reply(s, m, [['Response', 'Error'], ['Message', 'Authentication failed']]);
          s.socket.end();
          return;
        }
        s.user = u;
        s.mask = parseEventMask(m.events);
        this.reply(s, m, [['Response', 'Success'], ['Message', 'Authentication accepted']]);
        const read = u.read ?? ['cdr'];
        if ((read.includes('system') || read.includes('all')) && (!s.mask || s.mask.has('system') || s.mask.has('all'))) {
          const up = String(Math.floor((this.opts.now() - this.startedAt) / 1000));
          s.socket.write(wireMessage([['Event', 'FullyBooted'], ['Privilege', 'system,all'], ['Uptime', up], ['LastReload', up], ['Status', 'Fully Booted']]));
        }
        return;
      }
      case 'logoff':
        this.reply(s, m, [['Response', 'Goodbye'], ['Message', 'Thanks for all the fish.']]);
        s.socket.end();
        return;
      case 'ping': {
        if (this.pingMode === 'ignore') return;
        const now = this.opts.now();
        const ts = `${Math.floor(now / 1000)}.${String((now % 1000) * 1000 + Math.floor(Math.random() * 1000)).padStart(6, '0')}`;
        this.reply(s, m, [['Response', 'Success'], ['Ping', 'Pong'], ['Timestamp', ts]]);
        return;
      }
      case 'events': {
        s.mask = parseEventMask(m.eventmask);
        this.reply(s, m, [['Response', 'Success'], ['Events', s.mask && s.mask.size === 0 ? 'Off' : 'On']]);
        return;
      }
      case 'command': {
        const cmd = (m.command ?? '').trim();
        if (cmd === 'core show version') {
          this.reply(s, m, [['Response', 'Success'], ['Message', 'Command output follows'], ['Output', this.opts.version]]);
        } else if (cmd === 'core show uptime') {
          const sec = Math.floor((this.opts.now() - this.startedAt) / 1000);
          this.reply(s, m, [['Response', 'Success'], ['Message', 'Command output follows'],
            ['Output', `System uptime: ${sec} second${sec === 1 ? '' : 's'}`], ['Output', `Last reload: ${sec} second${sec === 1 ? '' : 's'}`]]);
        } else {
          this.reply(s, m, [['Response', 'Error'], ['Message', 'Command output follows'],
            ['Output', `No such command '${cmd}' (type 'core show help ${cmd}' for other possible commands)`]]);
        }
        return;
      }
      default:
        this.reply(s, m, [['Response', 'Error'], ['Message', `Invalid/unknown command: ${action}. Use Action: ListCommands to show available commands.`]]);
    }
  }
}

/** `Events:` header → event classes (undefined = on = everything readable; empty set = off). */
function parseEventMask(v: string | undefined): Set<string> | undefined {
  if (v === undefined) return undefined;
  const t = v.trim().toLowerCase();
  if (t === 'on' || t === 'yes' || t === 'true' || t === '1') return undefined;
  if (t === 'off' || t === 'no' || t === 'false' || t === '0' || t === '') return new Set();
  return new Set(t.split(',').map((x) => x.trim()).filter(Boolean));
}
