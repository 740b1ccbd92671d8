import pino, { type Logger, type LoggerOptions } from 'pino';

export type { Logger };

export interface LogOptions {
  level?: string;
  /** 'json' (default) or 'pretty'; 'auto' picks pretty when stdout is a terminal. */
  format?: 'json' | 'pretty' | 'auto';
  name?: string;
}

// Paths pino blanks before a line is written: anything that can carry a credential.
export const REDACT_PATHS = [
  'password', 'secret', 'token', 'authorization', 'proxyAuthorization', 'dbUrl', 'url',
  '*.password', '*.secret', '*.token', '*.authorization', '*.proxyAuthorization', '*.dbUrl', '*.url',
  'db.url', 'config.db.url', 'headers.authorization', 'headers["proxy-authorization"]',
  'ami.*.secret', 'config.ami.*.secret', 'auth.nonceSecret', 'config.auth.nonceSecret', 'mgmt.token', 'config.mgmt.token',
];

/** Removes the password from a mysql:// URL so it can be shown in a message. */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/@]*):[^@]*@/i, '$1:***@');
}

export function createLogger(opts: LogOptions = {}, destination?: pino.DestinationStream): Logger {
  const format = opts.format ?? 'auto';
  const pretty = format === 'pretty' || (format === 'auto' && process.stdout.isTTY === true);
  const base: LoggerOptions = {
    level: opts.level ?? 'info',
    name: opts.name ?? 'a2b-gateway',
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
  };
  if (destination) return pino(base, destination);
  if (pretty) {
    return pino({ ...base, transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l' } } });
  }
  return pino(base);
}

/** A logger that writes nothing, for tests and tools that print their own output. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
