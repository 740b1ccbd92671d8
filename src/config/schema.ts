// The whole configuration: every key, its type, its default and its limits, in one place.
// README's "Configuration reference" is checked against this file by a test.
import { z } from 'zod';

const port = z.number().int().min(0).max(65535);
const isTimeZone = (tz: string): boolean => {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
};
const positiveMs = z.number().int().positive();
/** Checked here so check-config catches a typo, not the first midnight or the first AMI Cdr. */
const timeZone = z.string().min(1).refine(isTimeZone, 'is not a known IANA timezone (e.g. "Europe/Paris")');

export const listenSchema = z.object({
  proto: z.enum(['udp', 'tcp']),
  host: z.string().min(1).default('0.0.0.0'),
  port: port.default(5060),
});

export const amiBoxSchema = z.object({
  name: z.string().min(1).regex(/^[A-Za-z0-9_.-]+$/, 'letters, digits, "_", "." and "-" only'),
  host: z.string().min(1),
  port: port.default(5038),
  username: z.string().min(1),
  secret: z.string().min(1),
  /** IANA zone of the box's clock: Asterisk writes CDR times in local time without a zone. */
  timezone: timeZone.default('UTC'),
  /** The box's durable CDR table (cdr_mysql / cdr_adaptive_odbc), read to fill AMI gaps; optional. */
  cdrDbUrl: z.string().regex(/^mysql:\/\//, 'must be a mysql://user:password@host:port/database URL').optional(),
  cdrTable: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,63}$/, 'letters, digits and "_" only').default('cdr'),
});

export const configSchema = z.object({
  log: z.object({
    level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    format: z.enum(['json', 'pretty', 'auto']).default('auto'),
  }).prefault({}),

  db: z.object({
    url: z.string().regex(/^mysql:\/\//, 'must be a mysql://user:password@host:port/database URL').optional(),
    poolSize: z.number().int().min(1).max(200).default(10),
    connectTimeoutMs: positiveMs.default(5000),
  }).prefault({}),

  sip: z.object({
    listen: z.array(listenSchema).min(1).default([{ proto: 'udp', host: '0.0.0.0', port: 5060 }, { proto: 'tcp', host: '0.0.0.0', port: 5060 }]),
    /** Host put in Via and Record-Route; defaults to the listen address (or the first non-loopback address for 0.0.0.0). */
    advertisedHost: z.string().min(1).optional(),
    /** Extra names the gateway answers to (OPTIONS to these get 200; Route headers naming them are ours). */
    domains: z.array(z.string().min(1)).default([]),
    maxMessageSize: z.number().int().min(1024).max(65535).default(16384),
    t1Ms: positiveMs.default(500),
    t2Ms: positiveMs.default(4000),
    t4Ms: positiveMs.default(5000),
    /**
     * How long a finished transaction stays to absorb retransmissions (Timers L and M; D and J, which are 0 over
     * TCP). Unset: the RFC's 64×T1 (32 s). 5000 is Kamailio's and OpenSIPS's tm wt_timer: about a sixth of the
     * transactions held at a given rate, less memory and GC (bench/RESULTS.md item 21); a retransmission later than
     * that is handled as a new request.
     */
    lingerMs: positiveMs.min(1000, 'must be at least 1000 (ms); 5000 matches Kamailio\'s wt_timer').optional(),
    /** Final-response timeout for a forwarded INVITE after the last provisional (Timer C / fr_inv_timer). */
    inviteTimeoutMs: positiveMs.default(30000),
    /** Time to wait for any response to a forwarded INVITE before failing over (fr_timer). */
    noResponseTimeoutMs: positiveMs.default(4000),
    tcpIdleTimeoutMs: positiveMs.default(120000),
    /** A TCP message must be complete this long after its first byte (anti-slowloris); default min(20 s, tcpIdleTimeoutMs). */
    tcpMessageTimeoutMs: positiveMs.optional(),
    /** Open incoming TCP connections allowed per remote address (one host cannot take every slot). */
    maxTcpConnectionsPerSource: z.number().int().min(1).max(100000).default(256),
    maxForwards: z.number().int().min(1).max(255).default(70),
    serverHeader: z.string().default('a2b-gateway'),
    /**
     * Signs the proxy's Record-Route (HMAC of Call-ID and From tag): in-dialog requests are relayed only with a
     * Route issued for that call (no open relay). Same value on every instance and across restarts. Unset: unsigned.
     */
    routeSecret: z.string().min(16, 'must be at least 16 characters').optional(),
    /**
     * Overload control: while datagrams wait longer than targetDelayMs in the UDP receive queue (measured by a
     * probe every probeIntervalMs), a shrinking share of new INVITEs is answered 503 + Retry-After at once, so
     * calls in progress (BYE, ACK, re-INVITE) and responses keep flowing. Needs a UDP listener.
     */
    overload: z.object({
      enabled: z.boolean().default(true),
      targetDelayMs: positiveMs.default(300),
      probeIntervalMs: z.number().int().min(10).max(1000).default(50),
      retryAfterSec: z.number().int().min(1).max(3600).default(5),
    }).prefault({}),
  }).prefault({}),

  auth: z.object({
    realm: z.string().min(1).default('a2b-gateway'),
    /** Signs nonces; every instance behind one address must share it. Required when digest auth is used. */
    nonceSecret: z.string().min(16, 'must be at least 16 characters').optional(),
    nonceTtlSec: z.number().int().min(10).max(3600).default(300),
    algorithms: z.array(z.enum(['SHA-256', 'MD5'])).min(1).default(['SHA-256', 'MD5']),
    requireFromMatch: z.boolean().default(true),
    credentialCacheSec: z.number().int().min(0).max(3600).default(60),
    ipRefreshSec: z.number().int().min(1).max(86400).default(60),
    /** `address` groups (grp) that count for IP authentication; empty = every group. */
    ipGroups: z.array(z.number().int().min(0)).default([]),
    /** Longest wait for a credentials lookup before the caller gets "cannot verify now" (503). */
    dbTimeoutMs: positiveMs.default(2000),
  }).prefault({}),

  abuse: z.object({
    pike: z.object({
      enabled: z.boolean().default(true),
      windowSec: z.number().int().min(1).default(2),
      maxRequests: z.number().int().min(1).default(60),
      banSec: z.number().int().min(1).default(300),
    }).prefault({}),
    authFailures: z.object({
      enabled: z.boolean().default(true),
      maxFailures: z.number().int().min(1).default(10),
      windowSec: z.number().int().min(1).default(600),
      banSec: z.number().int().min(1).default(3600),
    }).prefault({}),
    scannerUserAgents: z.array(z.string().min(1)).default(['friendly-scanner', 'sipvicious', 'sipcli', 'sip-scan', 'sundayddr', 'iWar', 'VaxSIPUserAgent', 'pplsip', 'SIPScan']),
    /** What a banned source gets: nothing at all, or a 403. */
    banAnswer: z.enum(['drop', '403']).default('drop'),
    /** Sources never banned (CIDR or IP), e.g. the Asterisk boxes. */
    whitelist: z.array(z.string().min(1)).default([]),
  }).prefault({}),

  dispatch: z.object({
    /** Destination set used for new calls. */
    setId: z.number().int().min(0).default(1),
    /** Algorithm per set id; sets not listed use defaultAlgorithm. */
    algorithms: z.record(z.string().regex(/^\d+$/, 'set ids are numbers'), z.enum(['hash-callid', 'hash-from', 'round-robin', 'weighted', 'priority', 'least-calls'])).default({}),
    defaultAlgorithm: z.enum(['hash-callid', 'hash-from', 'round-robin', 'weighted', 'priority', 'least-calls']).default('hash-callid'),
    probeIntervalSec: z.number().min(0.1).default(10),
    probeTimeoutMs: positiveMs.default(2000),
    probeFailThreshold: z.number().int().min(1).default(3),
    probeOkThreshold: z.number().int().min(1).default(1),
    failoverCodes: z.array(z.number().int().min(300).max(699)).default([408, 500, 502, 503, 504]),
    retryAfterSec: z.number().int().min(0).default(30),
    reloadSec: z.number().int().min(0).default(0),
  }).prefault({}),

  acc: z.object({
    journalDir: z.string().min(1).default('./var/journal'),
    batchSize: z.number().int().min(1).max(10000).default(500),
    flushIntervalMs: positiveMs.default(200),
    reportCancels: z.boolean().default(true),
    logRecords: z.boolean().default(false),
    /** 'batch': fdatasync every journal append before the INSERT (survives power loss); 'none': OS page cache (survives a process crash). */
    fsync: z.enum(['batch', 'none']).default('batch'),
    /** An INSERT slower than this counts as failed; the journal keeps the rows and replays them. */
    writeTimeoutMs: positiveMs.default(10000),
    /** Records held in memory when the journal cannot be written either; beyond this they are dropped (counted). */
    maxQueue: z.number().int().min(1000).default(200000),
    /** gw_cdr.duration_sec from the exact ms: 'floor' = Asterisk billsec / ANSWEREDTIME (what A2Billing bills),
     *  'half-up' = Asterisk with cdr.conf initiatedseconds=yes, 'ceil' = any started second counts. */
    durationRounding: z.enum(['floor', 'half-up', 'ceil']).default('floor'),
  }).prefault({}),

  dialog: z.object({
    defaultMaxLifetimeSec: z.number().int().min(1).default(10800),
    stateDir: z.string().min(1).default('./var/dialogs'),
    /** Names this gateway's dialogs in gw_dialog, so instances sharing one database restore only their own. */
    instance: z.string().min(1).max(64).default('default'),
    /** Batching interval of gw_dialog writes (the local state file is written within ~10 ms of an answer). */
    dbFlushMs: positiveMs.default(200),
    /** Debounce of CSeq bookkeeping writes (state file and gw_dialog); restored CSeqs are bumped to cover the gap. */
    cseqFlushMs: positiveMs.default(1000),
  }).prefault({}),

  billing: z.object({
    creditCheck: z.boolean().default(true),
    noCreditStatus: z.number().int().min(400).max(699).default(402),
    maxCallsPerAccount: z.number().int().min(0).default(0),
    /** Seconds kept back from the computed maximum so the BYE arrives before the money runs out. */
    safetyMarginSec: z.number().int().min(0).default(0),
    /** Answer when the dialled number has no rate in the card's tariff group. */
    noRateStatus: z.number().int().min(400).max(699).default(404),
    /** Answer when the account already has its maximum of simultaneous calls. */
    limitStatus: z.number().int().min(400).max(699).default(403),
    /** Also allow a single call per card when cc_card.simultaccess is not 1 (A2Billing's "individual access"). */
    honourSimultaccess: z.boolean().default(false),
    /** Longest wait for the credit lookup; past it the call is refused with 503 (never admitted unchecked). */
    dbTimeoutMs: positiveMs.default(2000),
    /** Timezone of A2Billing's rate-card week windows (starttime/endtime, minutes since Monday 00:00). */
    timezone: timeZone.default('UTC'),
    /** A call slot not answered, failed or released within this time is freed (leak guard). */
    setupTimeoutSec: z.number().int().min(10).default(600),
    /** Hold each call's worst-case cost while it is up, so simultaneous calls cannot spend the same credit twice. */
    reserveCredit: z.boolean().default(false),
  }).prefault({}),

  ami: z.object({
    boxes: z.array(amiBoxSchema).default([]),
    pingIntervalMs: positiveMs.default(10000),
    pingTimeoutMs: positiveMs.default(5000),
    actionTimeoutMs: positiveMs.default(10000),
    reconnectMinMs: positiveMs.default(500),
    reconnectMaxMs: positiveMs.default(30000),
    /** Login `Events:` filter: 'cdr' narrows the stream to Cdr events. */
    events: z.string().min(1).default('cdr'),
    /** Written to gw_ami_session.instance (default: the host name). */
    instance: z.string().min(1).max(64).optional(),
    /** How often an open session row's end is moved forward (its end is then the last time AMI was known up). */
    sessionTouchMs: positiveMs.default(30000),
    /** After a reconnect, read the box's cdr table (cdrDbUrl) for the blind interval, widened by gapMarginSec. */
    gapBackfill: z.boolean().default(true),
    gapMarginSec: z.number().int().min(0).max(3600).default(120),
  }).prefault({}),

  reconcile: z.object({
    enabled: z.boolean().default(true),
    schedule: z.string().min(1).default('30 2 * * *'),
    timezone: timeZone.default('UTC'),
    durationToleranceSec: z.number().int().min(0).default(2),
    outputDir: z.string().min(1).default('./var/reports'),
    /** Rows this many seconds outside the day are read too, to join the legs of calls that cross midnight. */
    marginSec: z.number().int().min(0).max(86400).default(900),
  }).prefault({}),

  mgmt: z.object({
    enabled: z.boolean().default(true),
    host: z.string().min(1).default('127.0.0.1'),
    port: port.default(8080),
    /** Required when host is not a loopback address. */
    token: z.string().min(16, 'must be at least 16 characters').optional(),
  }).prefault({}),
}).superRefine((cfg, ctx) => {
  const loopback = /^(127\.|::1$|localhost$)/;
  if (cfg.mgmt.enabled && !loopback.test(cfg.mgmt.host) && !cfg.mgmt.token) {
    ctx.addIssue({ code: 'custom', path: ['mgmt', 'token'], message: `is required when mgmt.host (${cfg.mgmt.host}) is not a loopback address` });
  }
  if (cfg.ami.reconnectMinMs > cfg.ami.reconnectMaxMs) {
    ctx.addIssue({ code: 'custom', path: ['ami', 'reconnectMinMs'], message: 'must not exceed ami.reconnectMaxMs' });
  }
  const names = new Set<string>();
  cfg.ami.boxes.forEach((b, i) => {
    if (names.has(b.name)) ctx.addIssue({ code: 'custom', path: ['ami', 'boxes', i, 'name'], message: `duplicate box name "${b.name}"` });
    names.add(b.name);
  });
});

export type Config = z.infer<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;
