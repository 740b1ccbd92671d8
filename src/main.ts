// `a2b-gateway start`: config → logger → gateway; signals: SIGTERM/SIGINT stop gracefully, SIGHUP reloads tables.
import { loadConfig } from './config/load.js';
import { describeError } from './errors.js';
import { startGateway, type Gateway } from './gateway.js';
import { createLogger } from './log.js';

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
  process.on('SIGHUP', () => {
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
