// `a2b-gateway demo` (npm run demo): the whole system on embedded defaults. A private MariaDB with sample
// A2Billing data, the gateway, two emulated Asterisk/A2Billing boxes (real SIP, real AMI), a mix of calls with
// faults injected on purpose, then the night's reconciliation, which must report exactly those faults.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import pino from 'pino';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { validateConfig } from '../config/load.js';
import { createDb, type Db } from '../db/pool.js';
import { loadA2BillingFixture } from '../devdb/fixture.js';
import { freePort, startPrivateMariaDb, type PrivateMariaDb } from '../devdb/private-mariadb.js';
import { SEED, seedA2Billing } from '../devdb/seed.js';
import { EmulatedAsterisk, type EmulatorFaults } from '../emulator/asterisk.js';
import type { UasBehaviour } from '../emulator/uas.js';
import { describeError } from '../errors.js';
import { startGateway, type Gateway } from '../gateway.js';
import { createLogger, silentLogger } from '../log.js';
import { Caller, type CallOptions, type CallResult } from '../loadgen/caller.js';
import { runReconcile } from '../reconcile/job.js';
import { formatSummary } from './reconcile.js';
import { provision } from './provision.js';

export interface DemoOptions {
  keep?: boolean;
  out?: (line: string) => void;
  /** Where the report files go (default: a temp folder that is kept). */
  reportDir?: string;
}

export interface DemoResult {
  ok: boolean;
  expected: Record<string, number>;
  found: Record<string, number>;
  reportFiles: { csv: string; json: string; html: string } | null;
  calls: Array<{ label: string; status: number; expect: number }>;
}

const FAILOVER_NUMBER = '15550000503';
const AMI = { username: 'gateway', secret: 'demo-ami-secret' };

function utcDay(ms = Date.now()): string {
  return new Date(ms).toISOString().slice(0, 10);
}

async function idleAll(boxes: EmulatedAsterisk[], gw: Gateway): Promise<void> {
  for (const b of boxes) await b.idle();
  await Promise.all(Object.values(gw.accounting.writers).map((w) => w.flush()));
}

export async function runDemoCore(opts: DemoOptions = {}): Promise<DemoResult> {
  const say = opts.out ?? ((l: string) => process.stdout.write(`${l}\n`));
  const step = (l: string): void => say(`\n▶ ${l}`);
  const work = mkdtempSync(join(tmpdir(), 'a2b-demo-'));
  const reportDir = opts.reportDir ?? join(work, 'reports');
  let server: PrivateMariaDb | undefined;
  let root: Db | undefined;
  let gw: Gateway | undefined;
  const boxes: EmulatedAsterisk[] = [];
  const callers: Caller[] = [];
  try {
    step('Starting a private MariaDB (installed from Debian packages if missing; loopback only, temp data directory)');
    server = await startPrivateMariaDb({ log: (m) => say(`  ${m}`), baseDir: work });
    const admin = createDb({ url: server.rootUrl, poolSize: 1 });
    await admin.query('CREATE DATABASE a2billing CHARACTER SET utf8mb4');
    await admin.end();
    const rootUrl = `${server.rootUrl}a2billing`;
    root = createDb({ url: rootUrl, poolSize: 4 });

    step('Creating the A2Billing tables the gateway reads');
    await loadA2BillingFixture(root);

    step('Provisioning the gateway (tables, views over A2Billing, least-privilege user)');
    await provision({ db: rootUrl, gatewayUser: 'a2bgw', gatewayHost: '%', gatewayPassword: 'demo-gw-password', out: (l) => say(`  ${l}`) });

    step('Loading sample A2Billing data (cards, SIP peers, tariff plans, rates)')
    await seedA2Billing(root);
    for (const [name, c] of Object.entries(SEED.cards)) say(`  card ${c.username} (${name}): ${c.status === 1 ? 'active' : 'INACTIVE'}, ${c.typepaid ? 'postpaid' : 'prepaid'}, credit ${c.credit}, SIP host ${c.sip.host}`);

    step('Starting two emulated Asterisk 20 + A2Billing boxes (SIP UAS, AMI server, cc_call rows)');
    // The failover call: whichever box sees it first is "overloaded" (503) and the gateway must try the other.
    const seenFailover = new Set<string>();
    const behaviour = (c: { toUser: string; callId: string }): UasBehaviour => {
      if (c.toUser === FAILOVER_NUMBER && !seenFailover.has(c.callId)) {
        seenFailover.add(c.callId);
        return { kind: 'overloaded' };
      }
      return { kind: 'answer', ringMs: 100, talkMs: null };
    };
    for (const [i, name] of ['ast1', 'ast2'].entries()) {
      const box = new EmulatedAsterisk({
        name, db: root, log: silentLogger(), host: `127.0.0.${11 + i}`, sipProtos: ['udp'],
        amiUsers: [{ username: AMI.username, secret: AMI.secret, read: ['cdr'] }], behaviour,
      });
      const addr = await box.start();
      boxes.push(box);
      say(`  ${name}: SIP udp ${addr.sip[0]!.host}:${addr.sip[0]!.port}, AMI ${addr.ami.host}:${addr.ami.port}`);
      await root.query('INSERT INTO gw_dispatcher (setid, destination, description) VALUES (1, ?, ?)', [`sip:${addr.sip[0]!.host}:${addr.sip[0]!.port}`, name]);
    }

    step('Starting the gateway');
    const sipPort = await freePort();
    const mgmtPort = await freePort();
    const config = validateConfig({
      log: { level: 'warn', format: 'json' },
      db: { url: `mysql://a2bgw:demo-gw-password@127.0.0.1:${server.port}/a2billing` },
      sip: { listen: [{ proto: 'udp', host: '127.0.0.1', port: sipPort }, { proto: 'tcp', host: '127.0.0.1', port: sipPort }] },
      auth: { realm: 'demo.a2b-gateway', nonceSecret: 'demo-nonce-secret-0123456789' },
      dispatch: { probeIntervalSec: 1 },
      acc: { journalDir: join(work, 'journal'), flushIntervalMs: 100 },
      dialog: { stateDir: join(work, 'dialogs') },
      ami: { boxes: boxes.map((b) => ({ name: b.name, host: b.sipAddress().host, port: b.ami.port, username: AMI.username, secret: AMI.secret })) },
      reconcile: { enabled: false, outputDir: reportDir },
      mgmt: { host: '127.0.0.1', port: mgmtPort },
    });
    // The gateway's own log goes to a file, so the terminal shows the story of the demo.
    mkdirSync(reportDir, { recursive: true });
    const logFile = join(reportDir, 'gateway.log');
    gw = await startGateway({ config, log: createLogger({ level: 'info', format: 'json' }, pino.destination({ dest: logFile, sync: false })) });
    say(`  SIP on udp/tcp 127.0.0.1:${sipPort}; management API ${gw.mgmt?.url() ?? '(off)'}; log ${logFile}`);
    await new Promise((r) => setTimeout(r, 500)); // AMI logins

    const target = { host: '127.0.0.1', port: sipPort };
    const mkCaller = async (localHost: string, fromUser: string): Promise<Caller> => {
      const c = new Caller({ target, proto: 'udp', localHost, fromUser, dialled: '15551234567', holdMs: 1500, callTimeoutMs: 15_000 });
      await c.start();
      callers.push(c);
      return c;
    };
    const bob = await mkCaller(SEED.cards.bob.sip.host, SEED.cards.bob.sip.name);
    const alice = await mkCaller('127.0.0.1', SEED.cards.alice.sip.name);
    const dave = await mkCaller('127.0.0.1', SEED.cards.dave.sip.name);
    const calls: DemoResult['calls'] = [];
    const expected: Record<string, number> = {};
    const place = async (label: string, caller: Caller, o: CallOptions, expect: number, faults?: EmulatorFaults): Promise<CallResult> => {
      for (const b of boxes) b.setFaults(faults ?? {});
      const r = await caller.call(o);
      await idleAll(boxes, gw!);
      for (const b of boxes) b.setFaults({});
      calls.push({ label, status: r.status, expect });
      say(`  ${r.status === expect ? '✓' : '✗'} ${label}: ${r.status || r.reason}${r.status === expect ? '' : ` (expected ${expect})`}`);
      return r;
    };

    step('Placing calls');
    await place('IP-authenticated call from 127.0.0.2 (card 5555000002)', bob, {}, 200);
    await place('digest call (407 challenge, then accepted; card 4242424242)', alice, { auth: { user: SEED.cards.alice.sip.name, password: SEED.cards.alice.sip.secret } }, 200);
    await place('wrong password', alice, { auth: { user: SEED.cards.alice.sip.name, password: 'guess' } }, 403);
    const spoof = await place('spoofed P-Accountcode (caller claims card 4242424242)', bob, { headers: ['P-Accountcode: 4242424242', 'p-accountcode: 6666000003'] }, 200);
    const seen = boxes.flatMap((b) => b.record.calls).find((c) => c.callId === spoof.callId);
    say(`    Asterisk saw P-Accountcode ${seen?.accountCode ?? '?'} (the gateway removed the spoofed ones)`);
    await place('a box answers 503: the gateway fails over to the other box', bob, { dialled: FAILOVER_NUMBER }, 200);
    await place('card without credit (7777000004) is refused', dave, { auth: { user: SEED.cards.dave.sip.name, password: SEED.cards.dave.sip.secret } }, 402);

    step('Injecting billing faults (what reconciliation must find)');
    await place('fault: A2Billing forgets the cc_call row (unbilled)', bob, {}, 200, { dropCcCall: 'all' });
    expected.unbilled = 1;
    await place('fault: A2Billing bills 30 s more than the call lasted', bob, {}, 200, { skewDurationSec: 30, skewCalls: 'all' });
    expected.duration_mismatch = 1;
    await place('fault: A2Billing bills another card (4242424242) for card 5555000002\'s call', bob, {}, 200, { wrongCardAccountCode: SEED.cards.alice.username, wrongCardCalls: 'all' });
    expected.account_mismatch = 1;
    const bypass = await boxes[0]!.injectBypassCall({ accountCode: SEED.cards.alice.username, toUser: '15557654321', talkSec: 42 });
    say(`  ✓ fault: a call reached ${boxes[0]!.name} directly, bypassing the gateway (uniqueid ${bypass.uniqueId})`);
    expected.bypass = 1;
    for (const b of boxes) b.dropAmi(4000);
    say('  ✓ fault: both boxes drop their AMI connections for 4 s');
    await new Promise((r) => setTimeout(r, 300));
    await place('a call ends while AMI is down (its Cdr event is lost)', bob, {}, 200);
    expected.ami_missing_gap = 1;
    await new Promise((r) => setTimeout(r, 4500)); // AMI reconnects
    await idleAll(boxes, gw);
    await new Promise((r) => setTimeout(r, 1500)); // AMI Cdr events and accounting reach MySQL

    step(`Reconciling ${utcDay()} (UTC): gateway CDRs × AMI CDRs × A2Billing cc_call`);
    const result = await runReconcile({
      db: root, day: utcDay(), timezone: 'UTC', toleranceSec: config.reconcile.durationToleranceSec, outputDir: reportDir,
      boxes: config.ami.boxes,
    });
    say(formatSummary(result));
    const found: Record<string, number> = {};
    for (const [cls, t] of Object.entries(result.summary.classes)) if (cls !== 'matched' && t.count > 0) found[cls] = t.count;
    const same = JSON.stringify(Object.entries(found).sort()) === JSON.stringify(Object.entries(expected).sort());
    const callsOk = calls.every((c) => c.status === c.expect);
    step('Verdict');
    say(`  injected: ${JSON.stringify(expected)}`);
    say(`  reported: ${JSON.stringify(found)}`);
    say(same ? '  ✓ the report lists exactly the injected faults' : '  ✗ the report differs from the injected faults');
    say(callsOk ? '  ✓ every call got the expected answer' : '  ✗ some calls got an unexpected answer');
    if (result.files) say(`  report: ${result.files.html}\n          ${result.files.csv}\n          ${result.files.json}`);

    if (opts.keep) {
      say(`\nEverything is still running (gateway SIP 127.0.0.1:${sipPort}, mgmt ${gw.mgmt?.url()}); Ctrl-C to stop.`);
      await new Promise<void>((resolve) => process.once('SIGINT', () => resolve()));
    }
    return { ok: same && callsOk, expected, found, reportFiles: result.files, calls };
  } finally {
    step('Stopping everything');
    for (const c of callers) await c.close().catch(() => undefined);
    await gw?.stop().catch((e: unknown) => say(`  gateway stop: ${describeError(e)}`));
    for (const b of boxes) await b.stop().catch(() => undefined);
    await root?.end().catch(() => undefined);
    await server?.stop().catch(() => undefined);
    if (!opts.reportDir) rmSync(join(work, 'journal'), { recursive: true, force: true });
    say('  done');
  }
}

export async function runDemo(opts: { keep: boolean }): Promise<number> {
  const r = await runDemoCore({ keep: opts.keep, reportDir: join(process.cwd(), 'var', 'demo-reports') });
  return r.ok ? 0 : 1;
}
