#!/usr/bin/env node
// a2b-gateway command line. Each subcommand loads its module lazily so `--help` and small tools start fast.
import { Command, CommanderError } from 'commander';
import { describeError, isGwError } from '../errors.js';

function fail(e: unknown): never {
  const code = isGwError(e) ? ` [${e.code}]` : '';
  process.stderr.write(`a2b-gateway: ${describeError(e)}${code}\n`);
  process.exit(isGwError(e, 'GW_ERR_CLI_USAGE') || isGwError(e, 'GW_ERR_CONFIG_INVALID') ? 2 : 1);
}

export function buildCli(): Command {
  const program = new Command('a2b-gateway')
    .description('SIP front proxy, accounting and billing reconciliation for A2Billing/Asterisk')
    .version('0.1.0')
    .showHelpAfterError()
    .exitOverride();

  program.command('start')
    .description('run the gateway (SIP proxy, accounting, AMI connector, nightly reconciliation, management API)')
    .option('-c, --config <file>', 'YAML config file (or A2B_CONFIG)')
    .action(async (o: { config?: string }) => {
      const { startFromCli } = await import('../main.js');
      await startFromCli(o.config);
    });

  program.command('provision')
    .description('create the gateway tables, the views over A2Billing and the gateway MySQL user')
    .requiredOption('--db <url>', 'admin URL of the A2Billing database, mysql://user:pw@host:port/a2billing (or A2B_PROVISION_DB)', process.env.A2B_PROVISION_DB)
    .option('--dry-run', 'print the SQL it would run, change nothing')
    .option('--gateway-user <name>', 'MySQL user for the gateway', 'a2bgw')
    .option('--gateway-host <host>', 'host part of that user', 'localhost')
    .option('--gateway-password <pw>', 'its password (or A2B_GW_PASSWORD); without one the user is not created')
    .action(async (o: { db: string; dryRun?: boolean; gatewayUser: string; gatewayHost: string; gatewayPassword?: string }) => {
      const { provision } = await import('./provision.js');
      await provision({ db: o.db, dryRun: o.dryRun, gatewayUser: o.gatewayUser, gatewayHost: o.gatewayHost, gatewayPassword: o.gatewayPassword ?? process.env.A2B_GW_PASSWORD });
    });

  program.command('check-config')
    .description('validate a config file and print every problem')
    .argument('[file]', 'YAML config file (or A2B_CONFIG)')
    .action(async (file?: string) => {
      const { checkConfig } = await import('./check-config.js');
      process.exitCode = checkConfig(file);
    });

  // Subcommands that parse their own arguments (and print their own help): the rest of argv is handed over as is.
  const passThrough = (cmd: Command, description: string, run: () => Promise<(args: string[]) => Promise<number>>): void => {
    cmd
      .description(description)
      .allowUnknownOption(true)
      .helpOption(false)
      .argument('[args...]')
      .action(async (args: string[]) => {
        process.exitCode = await (await run())(args);
      });
  };
  passThrough(program.command('reconcile'), 'reconcile A2Billing cc_call against gateway and AMI CDRs for a day or a range',
    async () => (await import('./reconcile.js')).runReconcileCli);
  passThrough(program.command('ctl'), 'talk to a running gateway through its management API (health, dispatcher, reload, dialogs)',
    async () => (await import('./ctl.js')).runCtl);
  passThrough(program.command('backfill'), 'import a box\'s durable CDRs (Master.csv or cdr table) for an AMI gap',
    async () => (await import('./backfill.js')).runBackfillCli);
  passThrough(program.command('dialplan'), 'print the Asterisk dialplan and config snippets for your addresses',
    async () => (await import('./dialplan.js')).runDialplanCli);

  program.command('demo')
    .description('run the whole system on embedded defaults: private MariaDB, sample data, gateway, two emulated Asterisk boxes')
    .option('--keep', 'leave everything running until Ctrl-C')
    .action(async (o: { keep?: boolean }) => {
      const { runDemo } = await import('./demo.js');
      process.exitCode = await runDemo({ keep: o.keep === true });
    });
  return program;
}

export async function main(argv = process.argv): Promise<void> {
  try {
    await buildCli().parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      process.exit(e.exitCode === 0 ? 0 : 2);
    }
    fail(e);
  }
}

await main();
