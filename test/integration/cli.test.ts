// The command line as an operator meets it: exit codes and messages a person can act on.
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const CLI = join(import.meta.dirname, '..', '..', 'src', 'cli', 'main.ts');
const exec = promisify(execFile);

async function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await exec(process.execPath, ['--import', 'tsx', CLI, ...args], { encoding: 'utf8', env: { ...process.env, A2B_CONFIG: '' } });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, stdout: x.stdout, stderr: x.stderr };
  }
}

function file(text: string): string {
  const f = join(mkdtempSync(join(tmpdir(), 'a2b-cli-')), 'gateway.yaml');
  writeFileSync(f, text);
  return f;
}

describe('a2b-gateway CLI', () => {
  it('check-config lists every problem by field and exits 1', async () => {
    const r = await run(['check-config', file('sip:\n  listen:\n    - { proto: sctp, port: 5060 }\nmgmt:\n  host: 0.0.0.0\nauthh: {}\n')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('authh: unknown key');
    expect(r.stderr).toContain('sip.listen[0].proto: Invalid option: expected one of "udp"|"tcp"');
  });

  it('check-config accepts a good file', async () => {
    const r = await run(['check-config', file('db:\n  url: mysql://a:b@127.0.0.1/a2billing\nauth:\n  nonceSecret: 0123456789abcdef0123\n')]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^config OK: .*gateway\.yaml: 2 SIP listener\(s\), 0 AMI box\(es\), db set/);
  });

  it('an unknown command or a missing option is a usage error (exit 2)', async () => {
    expect((await run(['frobnicate'])).code).toBe(2);
    const r = await run(['provision']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("required option '--db <url>' not specified");
  });

  it('the dialplan command prints the snippets for an address', async () => {
    const r = await run(['dialplan', '--gateway-ip', '198.51.100.7']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(';; ===== pjsip.conf =====');
    expect(r.stdout).toContain('match = 198.51.100.7');
  });
});
