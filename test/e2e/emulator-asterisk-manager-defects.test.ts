// Why src/ami has its own client: the defects of asterisk-manager 0.2.0 that NOTES-ami.md / the README name,
// reproduced against the emulator's AMI server and a hung peer. If a new version fixes them, this file says so.
import { createRequire } from 'node:module';
import { createServer, Socket, type AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, expect, test, vi } from 'vitest';
import { EmulatedAmiServer } from '../../src/emulator/ami-server.js';

interface LegacyManager {
  options: { username: string; password: string; events: boolean };
  connect(port: number, host: string, cb?: () => void): void;
  login(cb: (err?: unknown) => void): void;
  action(a: Record<string, string>, cb?: (err: unknown, res: unknown) => void): string;
  disconnect(): void;
}
const Manager = createRequire(import.meta.url)('asterisk-manager') as new () => LegacyManager;

const cleanups: Array<() => Promise<unknown> | void> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
  vi.restoreAllMocks();
});

test('login() sends "Event: off", a header Asterisk ignores (it reads Events:), so the stream is never narrowed', async () => {
  const ast = new EmulatedAmiServer({ users: [{ username: 'u', secret: 's', read: ['cdr', 'system'] }] });
  await ast.start();
  cleanups.push(() => ast.stop());
  const m = new Manager();
  Object.assign(m.options, { username: 'u', password: 's', events: false });
  await new Promise<void>((resolve, reject) => m.connect(ast.port, '127.0.0.1', () => m.login((e) => (e ? reject(e) : resolve()))));
  cleanups.push(() => m.disconnect());
  const login = ast.record.actions.find((a) => a.action.action === 'login')!.action;
  expect(login.event).toBe('off');
  expect(login.events).toBeUndefined();
  expect(ast.record.logins[0]!.events).toBeUndefined(); // → every class the user may read (FullyBooted arrived)
});

test('after disconnect() an action never calls back, and against a hung peer the socket is never closed', async () => {
  vi.spyOn(console, 'log').mockImplementation(() => undefined); // the package logs its own errors
  const peers: Socket[] = [];
  // A hung Asterisk: accepts and answers the login, then never answers nor closes (allowHalfOpen: no auto-close).
  const srv = createServer({ allowHalfOpen: true }, (s) => {
    peers.push(s);
    s.write('Asterisk Call Manager/9.0.0\r\n');
    s.on('data', (d) => {
      const id = /ActionID: (\S+)/i.exec(String(d))?.[1];
      if (/action: login/i.test(String(d)) && id) s.write(`Response: Success\r\nActionID: ${id}\r\nMessage: Authentication accepted\r\n\r\n`);
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise((r) => { for (const p of peers) p.destroy(); srv.close(r); }));
  const m = new Manager();
  Object.assign(m.options, { username: 'u', password: 'p', events: false });
  await new Promise<void>((resolve) => m.connect((srv.address() as AddressInfo).port, '127.0.0.1', () => m.login(() => resolve())));
  m.disconnect(); // what a heartbeat failure could do
  let called = false;
  m.action({ action: 'ping' }, () => { called = true; });
  await sleep(300);
  expect(called).toBe(false);
  // The peer saw our FIN but our side is still open: the package cannot destroy it (the socket is private).
  expect(peers[0]!.readableEnded).toBe(true);
  expect(peers[0]!.destroyed).toBe(false);
  peers[0]!.write('Event: Cdr\r\nPrivilege: cdr,all\r\nUniqueID: 1.1\r\n\r\n');
  await sleep(50);
  expect(peers[0]!.destroyed).toBe(false); // no reset came back: the client's socket is still open, data still lands
});
