import mysql from 'mysql2/promise';
import { GwError } from '../errors.js';
import { redactUrl } from '../log.js';
import { PING } from './queries/gateway.js';

export type Db = mysql.Pool;
export type DbConn = mysql.PoolConnection;

export interface DbOptions {
  url: string;
  poolSize?: number;
  connectTimeoutMs?: number;
  /** Allow several statements in one query (provisioning only). */
  multipleStatements?: boolean;
}

export function parseDbUrl(url: string): { host: string; port: number; user: string; password: string; database: string } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new GwError('GW_ERR_DB_URL', `"${redactUrl(url)}" is not a URL (expected mysql://user:password@host:port/database)`);
  }
  if (u.protocol !== 'mysql:') throw new GwError('GW_ERR_DB_URL', `scheme must be mysql:// (got ${u.protocol}//)`);
  return {
    host: u.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1',
    port: u.port ? Number(u.port) : 3306,
    user: decodeURIComponent(u.username) || 'root',
    password: decodeURIComponent(u.password),
    database: decodeURIComponent(u.pathname.replace(/^\//, '')),
  };
}

export function createDb(opts: DbOptions): Db {
  const p = parseDbUrl(opts.url);
  return mysql.createPool({
    host: p.host, port: p.port, user: p.user, password: p.password, database: p.database || undefined,
    connectionLimit: opts.poolSize ?? 10,
    connectTimeout: opts.connectTimeoutMs ?? 5000,
    waitForConnections: true,
    // Rows stream back as plain objects; DATETIME as strings avoids the driver's local-time conversion.
    dateStrings: true,
    timezone: 'Z',
    supportBigNumbers: true,
    bigNumberStrings: false,
    multipleStatements: opts.multipleStatements ?? false,
    enableKeepAlive: true,
  });
}

/** One line a person can act on, from a driver error. */
export function dbErrorLine(e: unknown, url?: string): string {
  const err = e as { code?: string; message?: string; errno?: number };
  const where = url ? ` (${redactUrl(url)})` : '';
  switch (err.code) {
    case 'ECONNREFUSED': return `connection refused${where}: is MySQL/MariaDB running and listening there?`;
    case 'ENOTFOUND': case 'EAI_AGAIN': return `host not found${where}`;
    case 'ETIMEDOUT': return `connection timed out${where}`;
    case 'ER_ACCESS_DENIED_ERROR': return `access denied${where}: check user and password`;
    case 'ER_BAD_DB_ERROR': return `database does not exist${where}`;
    case 'ER_DBACCESS_DENIED_ERROR': return `user may not use that database${where}`;
    default: return `${err.code ?? 'error'}: ${err.message ?? String(e)}${where}`;
  }
}

/** Throws GW_ERR_DB_CONNECT with one clear line when the database cannot be reached. */
export async function checkDb(db: Db, url?: string): Promise<void> {
  try {
    await db.query(PING);
  } catch (e) {
    throw new GwError('GW_ERR_DB_CONNECT', dbErrorLine(e, url), { cause: e });
  }
}
