// `a2b-gateway start`: config → logger → gateway; signals: SIGTERM/SIGINT stop gracefully, SIGHUP reloads tables.
import { loadConfig } from './config/load.js';
import { describeError } from './errors.js';
import { startGateway, type Gateway } from './gateway.js';
import { createLogger } from './log.js';

/** Dotted paths whose values differ between two configs. */
export function changedKeys(a: unknown, b: unknown, prefix = ''): string[] {
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null || Array.isArray(a) || Array.isArray(b)) {
    return JSON.stringify(a) === JSON.stringify(b) ? [] : [prefix];
  }
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  return [...keys].flatMap((k) => changedKeys((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], prefix ? `${prefix}.${k}` : k));
}

export async function startFromCli(configFile?: string): Promise<Gateway> {
  const config = loadConfig(configFile ? { file: configFile } : {});
  const log = createLogger({ level: config.log.level, format: config.log.format });
  const gw = await startGateway({ config, log });

  let stopping = false;
  const stop = (signal: string, code = 0): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    // A stop that hangs must not keep the process alive forever: the journal makes a hard exit safe.
    const hard = setTimeout(() => { log.error('graceful stop timed out; exiting'); process.exit(code || 1); }, 40_000);
    hard.unref();
    gw.stop().then(() => process.exit(code), (e: unknown) => { log.error({ err: e }, 'stop failed'); process.exit(1); });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  let current = config;
  process.on('SIGHUP', () => {
    // Config: re-read and validate; the log level applies at once, other changes need a restart (said so).
    try {
      const next = loadConfig(configFile ? { file: configFile } : {});
      log.level = next.log.level;
      const changed = changedKeys(current, next).filter((k) => k !== 'log.level');
      if (changed.length) log.warn({ changed }, 'config changed: these keys take effect after a restart');
      current = next;
    } catch (e) {
      log.error({ err: describeError(e) }, 'config reload refused; the running config stays');
    }
    gw.reload().catch((e: unknown) => log.error({ err: describeError(e) }, 'reload failed; previous tables kept'));
  });
  process.on('uncaughtException', (e) => {
    log.fatal({ err: e }, 'uncaught exception: stopping (dialogs and journal survive the restart)');
    stop('uncaughtException', 1);
  });
  process.on('unhandledRejection', (e) => {
    log.error({ err: e }, 'unhandled promise rejection');
  });
  return gw;
}
