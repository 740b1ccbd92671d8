// `a2b-gateway dialplan --gateway-ip 192.0.2.10 [--channel pjsip|chansip] [--ami-secret S] [--out DIR]`
// Prints (or writes) the Asterisk snippets from dialplan/ with the operator's addresses filled in.
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { Command } from 'commander';
import { GwError } from '../errors.js';
import { projectRoot } from '../paths.js';

export const DIALPLAN_FILES = {
  pjsip: ['extensions-pjsip.conf', 'pjsip.conf', 'manager.conf', 'cdr_manager.conf', 'a2billing.conf.snippet'],
  chansip: ['extensions-chansip.conf', 'sip.conf', 'manager.conf', 'cdr_manager.conf', 'a2billing.conf.snippet'],
} as const;

export function renderDialplan(opts: { gatewayIp: string; channel: 'pjsip' | 'chansip'; amiSecret: string }): Array<{ file: string; text: string }> {
  if (isIP(opts.gatewayIp) === 0) throw new GwError('GW_ERR_CLI_USAGE', `--gateway-ip "${opts.gatewayIp}" is not an IP address`);
  if (!/^[A-Za-z0-9_.+-]{8,}$/.test(opts.amiSecret)) throw new GwError('GW_ERR_CLI_USAGE', '--ami-secret must be at least 8 characters of letters, digits and _.+-');
  return DIALPLAN_FILES[opts.channel].map((file) => ({
    file,
    text: readFileSync(join(projectRoot(), 'dialplan', file), 'utf8')
      .replaceAll('@GATEWAY_IP@', opts.gatewayIp)
      .replaceAll('@AMI_SECRET@', opts.amiSecret),
  }));
}

export async function runDialplanCli(argv: string[], out = (s: string) => process.stdout.write(s)): Promise<number> {
  const cmd = new Command('a2b-gateway dialplan')
    .requiredOption('--gateway-ip <ip>', 'address the gateway uses towards Asterisk')
    .option('--channel <driver>', 'pjsip or chansip', 'pjsip')
    .option('--ami-secret <secret>', 'secret for the read-only AMI user (default: a random one)')
    .option('--out <dir>', 'write the files there instead of printing them')
    .exitOverride();
  cmd.parse(argv, { from: 'user' });
  const o = cmd.opts<{ gatewayIp: string; channel: string; amiSecret?: string; out?: string }>();
  if (o.channel !== 'pjsip' && o.channel !== 'chansip') throw new GwError('GW_ERR_CLI_USAGE', `--channel must be pjsip or chansip (got "${o.channel}")`);
  const files = renderDialplan({ gatewayIp: o.gatewayIp, channel: o.channel, amiSecret: o.amiSecret ?? randomBytes(12).toString('base64url') });
  if (o.out) {
    mkdirSync(o.out, { recursive: true });
    for (const f of files) writeFileSync(join(o.out, f.file), f.text);
    out(`wrote ${files.map((f) => f.file).join(', ')} to ${o.out}\n`);
  } else {
    for (const f of files) out(`;; ===== ${f.file} =====\n${f.text}\n`);
  }
  return 0;
}
