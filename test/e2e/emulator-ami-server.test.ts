// The emulator's AMI server, byte for byte, from a raw TCP client: what a real Asterisk 20 sends.
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { EmulatedAmiServer } from '../../src/emulator/ami-server.js';

let srv: EmulatedAmiServer;
beforeAll(async () => {
  srv = new EmulatedAmiServer({ users: [{ username: 'ops', secret: 'ops-secret', read: ['cdr', 'system'] }], version: 'Asterisk 20.20.1 built by root' });
  await srv.start();
});
afterAll(() => srv.stop());

/** A raw session: everything received as text, and whether the server closed it. */
async function session(): Promise<{ sock: Socket; text: () => string; closed: Promise<void>; until: (s: string) => Promise<void> }> {
  const sock = connect(srv.port, '127.0.0.1');
  let buf = '';
  const waiters: Array<() => void> = [];
  sock.on('data', (d) => { buf += String(d); waiters.splice(0).forEach((w) => w()); });
  const closed = new Promise<void>((r) => sock.on('close', () => r()));
  await new Promise((r) => sock.once('connect', r));
  const until = async (s: string): Promise<void> => {
    const end = Date.now() + 2000;
    while (!buf.includes(s)) {
      if (Date.now() > end) throw new Error(`never got ${JSON.stringify(s)}; got ${JSON.stringify(buf)}`);
      await new Promise<void>((r) => { waiters.push(r); setTimeout(r, 50); });
    }
  };
  return { sock, text: () => buf, closed, until };
}

test('banner without a blank line, login, FullyBooted, Ping, Command, unknown action, Logoff then close', async () => {
  const s = await session();
  await s.until('\r\n');
  expect(s.text()).toBe('Asterisk Call Manager/9.0.0\r\n');
  s.sock.write('Action: Login\r\nActionID: login-1\r\nUsername: ops\r\nSecret: ops-secret\r\n\r\n');
  await s.until('Fully Booted\r\n\r\n');
  expect(s.text()).toMatch(/^Asterisk Call Manager\/9\.0\.0\r\nResponse: Success\r\nActionID: login-1\r\nMessage: Authentication accepted\r\n\r\nEvent: FullyBooted\r\nPrivilege: system,all\r\nUptime: \d+\r\nLastReload: \d+\r\nStatus: Fully Booted\r\n\r\n$/);
  const mark = s.text().length;
  s.sock.write('Action: Ping\r\nActionID: ping-1\r\n\r\nAction: Command\r\nActionID: cmd-1\r\nCommand: core show version\r\n\r\nAction: QueueStatus\r\nActionID: q-1\r\n\r\n');
  await s.until('ListCommands');
  expect(s.text().slice(mark)).toMatch(new RegExp([
    'Response: Success\\r\\nActionID: ping-1\\r\\nPing: Pong\\r\\nTimestamp: \\d{10}\\.\\d{6}\\r\\n\\r\\n',
    'Response: Success\\r\\nActionID: cmd-1\\r\\nMessage: Command output follows\\r\\nOutput: Asterisk 20\\.20\\.1 built by root\\r\\n\\r\\n',
    'Response: Error\\r\\nActionID: q-1\\r\\nMessage: Invalid/unknown command: QueueStatus\\. Use Action: ListCommands to show available commands\\.\\r\\n\\r\\n$',
  ].join('')));
  s.sock.write('Action: Logoff\r\nActionID: logoff-1\r\n\r\n');
  await s.closed;
  expect(s.text().endsWith('Response: Goodbye\r\nActionID: logoff-1\r\nMessage: Thanks for all the fish.\r\n\r\n')).toBe(true);
});

test('actions before login are refused; a wrong secret ends the session', async () => {
  const s = await session();
  s.sock.write('Action: Ping\r\nActionID: p\r\n\r\nAction: Login\r\nActionID: l\r\nUsername: ops\r\nSecret: nope\r\n\r\n');
  await s.closed;
  expect(s.text()).toBe('Asterisk Call Manager/9.0.0\r\nResponse: Error\r\nActionID: p\r\nMessage: Permission denied\r\n\r\n' +
    'Response: Error\r\nActionID: l\r\nMessage: Authentication failed\r\n\r\n');
  expect(srv.record.logins.at(-1)).toMatchObject({ username: 'ops', ok: false });
  expect(JSON.stringify(srv.record.actions)).not.toContain('nope'); // secrets are not kept in the record
});

test('Events: cdr narrows the stream; Cdr events go only to sessions that may read them', async () => {
  const a = await session();
  a.sock.write('Action: Login\r\nActionID: 1\r\nUsername: ops\r\nSecret: ops-secret\r\nEvents: cdr\r\n\r\n');
  await a.until('accepted\r\n\r\n');
  expect(a.text()).not.toContain('FullyBooted');
  expect(srv.postEvent([['Event', 'Reload'], ['Privilege', 'system,all'], ['Module', 'x']])).toBe(0);
  expect(srv.postEvent([['Event', 'Cdr'], ['Privilege', 'cdr,all'], ['UniqueID', '1.1']])).toBe(1);
  await a.until('UniqueID: 1.1\r\n\r\n');
  a.sock.end();
  await a.closed;
});
