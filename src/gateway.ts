// The composition root: builds every stage from one validated Config and wires them to the proxy.
// Start order: database check → schema version → stages that load tables → accounting journals → proxy
// sockets → restored dialogs → AMI → schedule → management API. Stop order is the reverse, so no call is
// taken after accounting closes and no record is lost.
import { openAccounting, type AccountingService } from './acc/index.js';
import type { AmiConnector } from './ami/connector.js';
import { createAuthStage, type AuthStage } from './auth/index.js';
import { Billing } from './billing/credit.js';
import type { Config } from './config/schema.js';
import { checkSchemaVersion } from './db/migrate.js';
import { checkDb, createDb, type Db } from './db/pool.js';
import { LAST_RECONCILE_RUN, PING } from './db/queries/gateway.js';
import { Dialogs } from './dialog/dialogs.js';
import { createDispatch, dispatcherMgmtProvider, type DispatchStage } from './dispatch/index.js';
import { GwError } from './errors.js';
import type { Logger } from './log.js';
import { createMetrics, type Metrics } from './metrics.js';
import { createMgmtServer, type MgmtServer } from './mgmt/server.js';
import type { CallEvent, ProxyActions, ProxyHooks } from './proxy/hooks.js';
import { createProxy, type Proxy } from './proxy/proxy.js';
import { createReconcileSchedule, type ReconcileSchedule } from './reconcile/schedule.js';

export interface Gateway {
  readonly config: Config;
  readonly db: Db;
  readonly metrics: Metrics;
  readonly proxy: Proxy;
  readonly auth: AuthStage;
  readonly dispatch: DispatchStage;
  readonly billing: Billing;
  readonly dialogs: Dialogs;
  readonly accounting: AccountingService;
  readonly ami: AmiConnector | undefined;
  readonly reconcile: ReconcileSchedule | undefined;
  readonly mgmt: MgmtServer | undefined;
  /** SIGHUP: reload dispatcher, IP auth and credentials from the database. */
  reload(): Promise<void>;
  /** Graceful stop: no new calls, transactions finish, accounting flushed (or journaled). */
  stop(): Promise<void>;
}

export interface GatewayOptions {
  config: Config;
  log: Logger;
  metrics?: Metrics;
  /** Skip the schema version check (tests that build their own database do not need it). */
  skipSchemaCheck?: boolean;
}

/**
 * An `ended` without a dialog snapshot (the BYE of a call restored after a restart: the proxy never saw its 2xx)
 * gets the dialog module's copy, so accounting writes the call's CDR instead of "BYE accounted, no CDR".
 */
export function withDialogSnapshot(ev: CallEvent, dialogs: Pick<Dialogs, 'snapshot'>): CallEvent {
  if (ev.type !== 'ended' || ev.dialog) return ev;
  const dialog = dialogs.snapshot(ev.callId, ev.fromTag, ev.toTag);
  return dialog ? { ...ev, dialog } : ev;
}

export async function startGateway(opts: GatewayOptions): Promise<Gateway> {
  const { config, log } = opts;
  if (!config.db.url) throw new GwError('GW_ERR_CONFIG_INVALID', 'db.url: is required to start the gateway (or set A2B_DB_URL)');
  const metrics = opts.metrics ?? createMetrics({ processMetrics: true });
  const db = createDb({ url: config.db.url, poolSize: config.db.poolSize, connectTimeoutMs: config.db.connectTimeoutMs });
  const cleanups: Array<() => Promise<unknown> | unknown> = [() => db.end()];
  const cleanup = async (): Promise<void> => {
    for (const c of cleanups.reverse()) await Promise.resolve().then(c).catch((e: unknown) => log.warn({ err: e }, 'cleanup step failed'));
  };
  try {
    await checkDb(db, config.db.url);
    if (!opts.skipSchemaCheck) await checkSchemaVersion(db);

    const auth = createAuthStage({ config, db, log: log.child({ mod: 'auth' }), metrics });
    await auth.start();
    cleanups.push(() => auth.stop());

    const billing = new Billing({ billing: config.billing, dialog: config.dialog, db, log: log.child({ mod: 'billing' }), metrics });
    cleanups.push(() => billing.close());

    const accounting = await openAccounting({ config, db, log: log.child({ mod: 'acc' }), metrics });
    cleanups.push(() => accounting.close({ timeoutMs: 5000 }));

    let proxyActions: ProxyActions | undefined;
    const dispatch = createDispatch({
      config: config.dispatch, db, log, metrics,
      // The Asterisk boxes send in-dialog requests at their own pace: never flood-ban them.
      onLoaded: () => auth.setExtraWhitelist(dispatch.dispatcher.hosts()),
    });
    const dh = dispatch.dispatcher.hooks();

    // Every call event goes to each consumer; none may throw into the proxy.
    const consumers: Array<(ev: CallEvent) => void> = [dh.onCallEvent, (ev) => accounting.onCallEvent(ev), (ev) => billing.onCallEvent(ev)];
    const fanout = (event: CallEvent): void => {
      const ev = withDialogSnapshot(event, dialogs);
      for (const c of consumers) {
        try { c(ev); } catch (e) { log.error({ err: e, ev: ev.type }, 'call event consumer failed'); }
      }
    };
    const dialogs = new Dialogs({
      dialog: config.dialog, db, log: log.child({ mod: 'dialog' }), metrics,
      actions: {
        endDialog: (d, reason) => {
          if (!proxyActions) return Promise.reject(new GwError('GW_ERR_SIP_TRANSPORT', 'proxy not started'));
          return proxyActions.endDialog(d, reason);
        },
      },
      emit: fanout,
    });
    consumers.push((ev) => dialogs.onCallEvent(ev));
    cleanups.push(() => dialogs.close());

    const hooks: ProxyHooks = {
      screen: (f) => auth.screen(f),
      authenticate: (f) => auth.authenticate(f),
      async authorize(facts, who) {
        const dec = await billing.authorize(facts, who);
        if (dec.kind === 'ok') dialogs.setMaxDuration(facts.callId, dec.maxDurationSec);
        return dec;
      },
      route: dh.route,
      targetFailed: dh.targetFailed,
      onCallEvent: fanout,
    };
    await dispatch.start();
    cleanups.push(() => dispatch.stop());

    const proxy = createProxy({
      config: {
        ...config.sip, failoverCodes: config.dispatch.failoverCodes, retryAfterSec: config.dispatch.retryAfterSec,
        // Signed Record-Route (no open relay for in-dialog requests). The nonce secret is already shared by every
        // instance and stable across restarts, which is what the signature needs.
        routeSecret: config.sip.routeSecret ?? config.auth.nonceSecret,
      },
      log: log.child({ mod: 'proxy' }), hooks, metrics,
    });
    await proxy.start();
    cleanups.push(() => proxy.stop());
    proxyActions = proxy.actions;
    dispatch.setProber(proxy.actions.probe);

    // Calls confirmed before a restart: re-armed, or ended at once if their time ran out meanwhile.
    const restored = await dialogs.restore();
    for (const d of dialogs.list()) if (d.state !== 'early') billing.adopt(d.callId, d.accountcode, (d.expiresAt ?? 0) - Date.now(), d.callerTag);
    if (restored) log.info({ restored }, 'dialogs restored');

    let ami: AmiConnector | undefined;
    if (config.ami.boxes.length) {
      // Loaded only when boxes are configured: a proxy-only install never opens the AMI code.
      const { createAmiConnector } = await import('./ami/connector.js');
      const { connector, store } = await createAmiConnector({ config, db, log: log.child({ mod: 'ami' }), metrics });
      cleanups.push(() => store.close());
      connector.start();
      cleanups.push(() => connector.stop());
      ami = connector;
    }

    let reconcile: ReconcileSchedule | undefined;
    if (config.reconcile.enabled) {
      reconcile = createReconcileSchedule({ db, config: config.reconcile, boxes: config.ami.boxes, log: log.child({ mod: 'reconcile' }), metrics });
      reconcile.start();
      cleanups.push(() => reconcile!.stop());
    }

    let mgmt: MgmtServer | undefined;
    if (config.mgmt.enabled) {
      mgmt = createMgmtServer({
        host: config.mgmt.host, port: config.mgmt.port, token: config.mgmt.token, log: log.child({ mod: 'mgmt' }), metrics,
        actions: {
          health: async () => {
            let dbOk = true;
            // Bounded: a hung connection makes /health say "degraded" instead of timing out the prober.
            try { await db.query({ sql: PING, timeout: 2000 }); } catch { dbOk = false; }
            return {
              status: dbOk ? 'ok' : 'degraded',
              db: dbOk ? 'up' : 'down',
              sip: proxy.addresses.map((a) => `${a.proto}:${a.address}:${a.port}`),
              dialogs: dialogs.activeCount,
              // admitShare < 1: past capacity, a share of new calls is being refused 503 (proxy/overload.ts)
              overload: proxy.overload?.state(),
              ami: ami?.status() ?? [],
            };
          },
          metrics,
          dispatcher: dispatcherMgmtProvider(dispatch),
          reloadDispatcher: () => dispatch.store.reload(),
          reloadAuth: () => auth.reload(),
          // A reload of the address table also expires every cached credential.
          reloadCredentials: () => auth.reload(),
          listDialogs: () => dialogs.list(),
          endDialog: (callId) => dialogs.end(callId, 'admin'),
          lastReconcile: async () => {
            const [rows] = await db.query(LAST_RECONCILE_RUN);
            const r = (rows as Array<Record<string, unknown>>)[0];
            return r ? { ...r, summary: JSON.parse(String(r.summary || '{}')) as unknown } : undefined;
          },
        },
      });
      await mgmt.listen();
      cleanups.push(() => mgmt!.close());
    }

    log.info({ sip: proxy.addresses.map((a) => `${a.proto}:${a.address}:${a.port}`), mgmt: mgmt?.url(), ami: config.ami.boxes.map((b) => b.name) }, 'a2b-gateway started');
    let stopping: Promise<void> | undefined;
    return {
      config, db, metrics, proxy, auth, dispatch, billing, dialogs, accounting, ami, reconcile, mgmt,
      async reload() {
        await Promise.all([dispatch.store.reload(), auth.reload()]);
        log.info('tables reloaded');
      },
      stop() {
        stopping ??= cleanup().then(() => log.info('a2b-gateway stopped'));
        return stopping;
      },
    };
  } catch (e) {
    await cleanup();
    throw e;
  }
}
