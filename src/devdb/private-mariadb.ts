// A private, throw-away MariaDB for tests and the demo: own datadir in a temp folder, loopback only,
// a free port, no effect on any system instance. Installs Debian's mariadb-server when mariadbd is missing.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GwError } from '../errors.js';

export interface PrivateMariaDb {
  /** mysql://root@127.0.0.1:PORT/ (no database part) */
  rootUrl: string;
  port: number;
  socket: string;
  dataDir: string;
  pid: number;
  /** Stops the server but keeps its data (an outage); start() brings it back on the same port. */
  halt(): Promise<void>;
  start(): Promise<void>;
  /** Stops the server and removes its data. */
  stop(): Promise<void>;
}

const SERVER_CANDIDATES = ['/usr/sbin/mariadbd', '/usr/sbin/mysqld', '/usr/bin/mariadbd'];

export function findMariadbd(): string | undefined {
  return SERVER_CANDIDATES.find((p) => existsSync(p));
}

/** apt-get install mariadb-server mariadb-client when the server binary is missing (needs root, as CI is). */
export function ensureMariadbInstalled(log: (msg: string) => void = () => {}): string {
  const found = findMariadbd();
  if (found) return found;
  log('mariadbd not found: installing mariadb-server from Debian packages (apt-get)');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const sudo = process.getuid?.() === 0 ? [] : ['sudo', '-n'];
  const run = (args: string[]): void => {
    const cmd = [...sudo, ...args];
    const r = spawnSync(cmd[0]!, cmd.slice(1), { env, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
    if (r.status !== 0) throw new GwError('GW_ERR_PRIVATE_DB', `${args.join(' ')} failed: ${(r.stderr ?? '').trim().split('\n').slice(-3).join(' | ')}`);
  };
  run(['apt-get', 'update', '-qq']);
  run(['apt-get', 'install', '-y', '-qq', '--no-install-recommends', 'mariadb-server', 'mariadb-client']);
  const after = findMariadbd();
  if (!after) throw new GwError('GW_ERR_PRIVATE_DB', 'mariadb-server installed but mariadbd still not found');
  return after;
}

export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const addr = s.address();
      const p = typeof addr === 'object' && addr ? addr.port : 0;
      s.close(() => resolve(p));
    });
  });
}

async function waitReady(child: ChildProcess, socket: string, errLog: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new GwError('GW_ERR_PRIVATE_DB', `mariadbd exited with code ${child.exitCode}; see ${errLog}`);
    const r = spawnSync('mariadb-admin', ['--no-defaults', `--socket=${socket}`, '-uroot', 'ping'], { stdio: 'ignore' });
    if (r.status === 0) return;
    await new Promise((res) => setTimeout(res, 150));
  }
  throw new GwError('GW_ERR_PRIVATE_DB', `mariadbd did not become ready in ${timeoutMs} ms; see ${errLog}`);
}

export async function startPrivateMariaDb(opts: { log?: (msg: string) => void; baseDir?: string } = {}): Promise<PrivateMariaDb> {
  const log = opts.log ?? (() => {});
  const mariadbd = ensureMariadbInstalled(log);
  const dir = mkdtempSync(join(opts.baseDir ?? tmpdir(), 'a2b-mariadb-'));
  const dataDir = join(dir, 'data');
  const socket = join(dir, 'mysqld.sock');
  const errLog = join(dir, 'error.log');
  const port = await freePort();
  const user = process.getuid?.() === 0 ? ['--user=root'] : [];
  const tmp = join(dir, 'tmp');
  mkdirSync(tmp);
  // Own tmpdir: concurrent instances (parallel test files) otherwise collide on temporary table files in /tmp.
  const init = spawnSync('mariadb-install-db', ['--no-defaults', `--datadir=${dataDir}`, `--tmpdir=${tmp}`, '--auth-root-authentication-method=normal', '--skip-test-db', ...user], { encoding: 'utf8' });
  if (init.status !== 0) throw new GwError('GW_ERR_PRIVATE_DB', `mariadb-install-db failed: ${(init.stderr || init.stdout).trim().split('\n').slice(-3).join(' | ')}`);
  const cnf = join(dir, 'my.cnf');
  writeFileSync(cnf, [
    '[mysqld]', `datadir=${dataDir}`, `tmpdir=${tmp}`, `socket=${socket}`, `port=${port}`, 'bind-address=127.0.0.1', `log-error=${errLog}`,
    `pid-file=${join(dir, 'mysqld.pid')}`, 'skip-name-resolve', 'innodb_buffer_pool_size=256M', 'innodb_flush_log_at_trx_commit=2',
    'innodb_log_file_size=128M', 'max_connections=500', 'character-set-server=utf8mb4', 'collation-server=utf8mb4_general_ci',
    'sql_mode=STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION', 'skip-log-bin', '',
  ].join('\n'));
  const launch = async (): Promise<ChildProcess> => {
    const c = spawn(mariadbd, [`--defaults-file=${cnf}`, ...user], { stdio: 'ignore', detached: false });
    try {
      await waitReady(c, socket, errLog, 60_000);
    } catch (e) {
      c.kill('SIGKILL'); // a server that never became ready must not outlive the failed start
      throw e;
    }
    return c;
  };
  let child = await launch();
  // root over TCP without a password: the instance listens on loopback only and lives for one run.
  const grant = spawnSync('mariadb', ['--no-defaults', `--socket=${socket}`, '-uroot', '-e',
    "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY ''; GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION; FLUSH PRIVILEGES;"], { encoding: 'utf8' });
  if (grant.status !== 0) {
    child.kill('SIGKILL');
    throw new GwError('GW_ERR_PRIVATE_DB', `cannot grant root over TCP: ${grant.stderr}`);
  }
  log(`private MariaDB on 127.0.0.1:${port} (datadir ${dataDir})`);
  let stopped = false;
  const halt = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((res) => child.once('exit', () => res()));
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(t);
  };
  return {
    rootUrl: `mysql://root@127.0.0.1:${port}/`,
    port, socket, dataDir,
    get pid() { return child.pid ?? 0; },
    halt,
    async start() {
      if (stopped) throw new GwError('GW_ERR_PRIVATE_DB', 'this private MariaDB was removed');
      if (child.exitCode === null && child.signalCode === null) return;
      child = await launch();
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await halt();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
