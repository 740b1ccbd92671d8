// The Asterisk side and its emulator must agree on every header and variable name, or the tests and the
// demo would prove something production does not do.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ACCOUNTCODE_HEADER, CALLREF_HEADER } from '../../src/callref.js';
import { renderDialplan } from '../../src/cli/dialplan.js';
import { DEFAULT_MAPPINGS } from '../../src/emulator/cdr-event.js';
import { ACCOUNTCODE_RE } from '../../src/emulator/uas.js';

const dir = join(import.meta.dirname, '..', '..', 'dialplan');
const read = (f: string): string => readFileSync(join(dir, f), 'utf8');
const pjsip = read('extensions-pjsip.conf');
const chansip = read('extensions-chansip.conf');

describe('dialplan ↔ gateway ↔ emulator', () => {
  it('reads exactly the headers the gateway adds, in both channel drivers', () => {
    const pj = new Set([...pjsip.matchAll(/PJSIP_HEADER\(read,([^)]+)\)/g)].map((m) => m[1]));
    const cs = new Set([...chansip.matchAll(/SIP_HEADER\(([^)]+)\)/g)].map((m) => m[1]));
    expect(pj).toEqual(new Set([ACCOUNTCODE_HEADER, CALLREF_HEADER]));
    expect(cs).toEqual(new Set([ACCOUNTCODE_HEADER, CALLREF_HEADER]));
  });

  it('refuses the same account codes as the emulator', () => {
    for (const text of [pjsip, chansip]) {
      const re = /REGEX\("([^"]+)"/.exec(text)?.[1];
      expect(re).toBe(ACCOUNTCODE_RE.source);
      expect(text).toMatch(/GotoIf\(\$\["\$\{A2B_ACCOUNTCODE\}" = ""\]\?no-accountcode,1\)/);
      expect(text).toMatch(/no-accountcode,1,Log\(WARNING/);
    }
  });

  it('sets the account code, the CDR Call-ID, A2B_CUSTOM1 and then runs the A2Billing AGI, in that order', () => {
    for (const text of [pjsip, chansip]) {
      const order = ['Set(CHANNEL(accountcode)=${A2B_ACCOUNTCODE})', 'Set(CDR(userfield)=', 'Set(CDR(sipcallid)=', 'Set(A2B_CUSTOM1=', 'AGI(a2billing.php,1)'];
      const at = order.map((s) => text.indexOf(s));
      expect(at.every((i) => i > 0)).toBe(true);
      expect([...at].sort((a, b) => a - b)).toEqual(at);
      const code = text.split('\n').filter((l) => !l.trim().startsWith(';')).join('\n');
      expect(code).not.toContain('CDR(accountcode)'); // deprecated on Asterisk 20
    }
  });

  it('maps the CDR variables reconciliation joins on, as the emulator sends them', () => {
    const mappings = [...read('cdr_manager.conf').matchAll(/^(\w+)\s*=>\s*(\w+)/gm)].map((m) => [m[1]!, m[2]!] as const);
    expect(mappings).toEqual([['linkedid', 'LinkedID'], ['sequence', 'Sequence'], ['sipcallid', 'SIPCallID']]);
    for (const [, key] of mappings) expect(DEFAULT_MAPPINGS).toContain(key);
    expect(pjsip).toContain('CDR(sipcallid)');
  });

  it('gives the gateway a read-only cdr AMI user and keeps caller-ID authentication off', () => {
    const manager = read('manager.conf');
    expect(manager).toMatch(/^read = cdr$/m);
    expect(manager).toMatch(/^write =\s*$/m);
    expect(read('a2billing.conf.snippet')).toMatch(/^cid_enable = NO$/m);
  });

  it('the dialplan command fills in the operator address and refuses a bad one', () => {
    const files = renderDialplan({ gatewayIp: '192.0.2.10', channel: 'pjsip', amiSecret: 'secret-secret' });
    expect(files.map((f) => f.file)).toEqual(['extensions-pjsip.conf', 'pjsip.conf', 'manager.conf', 'cdr_manager.conf', 'a2billing.conf.snippet']);
    expect(files.find((f) => f.file === 'pjsip.conf')!.text).toContain('match = 192.0.2.10');
    expect(files.some((f) => f.text.includes('@GATEWAY_IP@') || f.text.includes('@AMI_SECRET@'))).toBe(false);
    expect(() => renderDialplan({ gatewayIp: '192.0.2.300', channel: 'pjsip', amiSecret: 'secret-secret' })).toThrow(/--gateway-ip "192.0.2.300" is not an IP address/);
  });
});
