import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, validateConfig } from '../../../src/config/load.js';

function problems(fn: () => unknown): string[] {
  try {
    fn();
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
  throw new Error('expected a ConfigError');
}

function yamlFile(text: string): string {
  const f = join(mkdtempSync(join(tmpdir(), 'a2b-cfg-')), 'gw.yaml');
  writeFileSync(f, text);
  return f;
}

describe('config', () => {
  it('an empty config gives documented defaults', () => {
    const c = validateConfig({});
    expect(c.sip.t1Ms).toBe(500);
    expect(c.sip.inviteTimeoutMs).toBe(30000);
    expect(c.dispatch.defaultAlgorithm).toBe('hash-callid');
    expect(c.mgmt.host).toBe('127.0.0.1');
    expect(c.auth.algorithms).toEqual(['SHA-256', 'MD5']);
  });

  it('lists every bad field at once, each by its path', () => {
    const p = problems(() => validateConfig({
      sip: { listen: [{ proto: 'sctp', port: 70000 }], t1Ms: 0 },
      db: { url: 'postgres://x/y' },
      dispatcher: {},
    }));
    expect(p).toEqual(expect.arrayContaining([
      'dispatcher: unknown key',
      expect.stringMatching(/^sip\.listen\[0\]\.proto: /),
      expect.stringMatching(/^sip\.listen\[0\]\.port: /),
      expect.stringMatching(/^sip\.t1Ms: /),
      expect.stringMatching(/^db\.url: must be a mysql:\/\//),
    ]));
    expect(p).toHaveLength(5);
  });

  it('sip.lingerMs: unset by default (the RFC timers); too short a value says what to use', () => {
    expect(validateConfig({}).sip.lingerMs).toBeUndefined();
    expect(validateConfig({ sip: { lingerMs: 5000 } }).sip.lingerMs).toBe(5000);
    expect(problems(() => validateConfig({ sip: { lingerMs: 200 } }))).toEqual(["sip.lingerMs: must be at least 1000 (ms); 5000 matches Kamailio's wt_timer"]);
  });

  it('requires a management token when bound beyond loopback', () => {
    expect(problems(() => validateConfig({ mgmt: { host: '0.0.0.0' } }))).toEqual([
      'mgmt.token: is required when mgmt.host (0.0.0.0) is not a loopback address',
    ]);
  });

  it('reads YAML and lets the environment override it', () => {
    const f = yamlFile('db:\n  url: mysql://a:b@db1/a2billing\nsip:\n  t1Ms: 250\n');
    const c = loadConfig({ file: f, env: { A2B_DB_URL: 'mysql://a:b@db2/a2billing', A2B_CFG__sip__t2Ms: '2000', A2B_CFG__abuse__pike__enabled: 'false' } });
    expect(c.db.url).toBe('mysql://a:b@db2/a2billing');
    expect(c.sip.t1Ms).toBe(250);
    expect(c.sip.t2Ms).toBe(2000);
    expect(c.abuse.pike.enabled).toBe(false);
  });

  it('keeps string keys from the environment verbatim (an all-digit token is not a number)', () => {
    const c = loadConfig({ env: {
      A2B_MGMT_TOKEN: '12345678901234567890123', A2B_NONCE_SECRET: '{"looks":"like JSON"}xx', A2B_CFG__sip__routeSecret: '0000000000000000',
      A2B_MGMT_PORT: '9090',
    } });
    expect(c.mgmt.token).toBe('12345678901234567890123');
    expect(c.auth.nonceSecret).toBe('{"looks":"like JSON"}xx');
    expect(c.sip.routeSecret).toBe('0000000000000000');
    expect(c.mgmt.port).toBe(9090);
  });

  it('refuses an unknown time zone in every zone key, so check-config catches it', () => {
    expect(problems(() => validateConfig({
      reconcile: { timezone: 'Europe/Madird' },
      billing: { timezone: 'CEST' },
      ami: { boxes: [{ name: 'a1', host: '10.0.0.1', username: 'u', secret: 's', timezone: 'Mars/Olympus' }] },
    }))).toEqual(expect.arrayContaining([
      expect.stringMatching(/^reconcile\.timezone: is not a known IANA timezone/),
      expect.stringMatching(/^billing\.timezone: is not a known IANA timezone/),
      expect.stringMatching(/^ami\.boxes\[0\]\.timezone: is not a known IANA timezone/),
    ]));
    expect(validateConfig({ reconcile: { timezone: 'Europe/Madrid' } }).reconcile.timezone).toBe('Europe/Madrid');
  });

  it('says which file is broken and why', () => {
    expect(problems(() => loadConfig({ file: yamlFile('sip: [unclosed\n'), env: {} }))[0]).toMatch(/^YAML: /);
    expect(problems(() => loadConfig({ file: yamlFile('- a\n- b\n'), env: {} }))[0]).toMatch(/top level must be a mapping/);
    expect(() => loadConfig({ file: '/nonexistent/gw.yaml', env: {} })).toThrow(/configuration file cannot be read: \/nonexistent\/gw.yaml/);
  });
});
