// Composition helper for main.ts: dispatcher + DB store + OPTIONS prober, wired to the proxy's probe action.
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { ProxyActions } from '../proxy/hooks.js';
import type { DestState } from './destination.js';
import { type DispatchConfig, Dispatcher, type LoadSummary } from './dispatcher.js';
import { Prober } from './prober.js';
import { DispatcherStore, type Queryable } from './store.js';

export { Dispatcher, type DispatchConfig, type LoadSummary } from './dispatcher.js';
export { Prober } from './prober.js';
export { DispatcherStore, readDispatcherRows } from './store.js';
export { type DestState, type DestinationView, parseState, STATES } from './destination.js';
export { ALGORITHMS, type Algorithm } from './algorithms.js';

export interface DispatchStage {
  dispatcher: Dispatcher;
  store: DispatcherStore;
  prober: Prober;
  /** Hands in the proxy's OPTIONS sender when the proxy is built after the hooks (createProxy needs them first). */
  setProber(probe: ProxyActions['probe']): void;
  /** Loads gw_dispatcher (throws if the DB cannot be read), then starts probing and periodic reloads. */
  start(): Promise<LoadSummary>;
  stop(): void;
}

/**
 * The dispatcher provider for the management server (MgmtActions['dispatcher']): list, and set a state,
 * optionally persisted to gw_dispatcher (`persist: true`) so it survives reloads and restarts.
 */
export function dispatcherMgmtProvider(stage: Pick<DispatchStage, 'dispatcher' | 'store'>) {
  return {
    list: () => stage.dispatcher.list(),
    async setState(id: string, state: DestState, opts: { persist: boolean }) {
      const view = stage.dispatcher.setState(id, state);
      if (view && opts.persist) await stage.store.persistState(id, state);
      return view;
    },
  };
}

export function createDispatch(opts: {
  config: DispatchConfig;
  db: Queryable;
  /** The proxy's OPTIONS sender (ProxyActions.probe), now or later through setProber(). */
  probe?: ProxyActions['probe'];
  log: Logger;
  metrics?: Metrics;
  /** After every successful (re)load, e.g. `() => auth.setExtraWhitelist(stage.dispatcher.hosts())`. */
  onLoaded?: (summary: LoadSummary) => void;
}): DispatchStage {
  const log = opts.log.child({ module: 'dispatch' });
  const dispatcher = new Dispatcher({ config: opts.config, log, ...(opts.metrics ? { metrics: opts.metrics } : {}) });
  const store = new DispatcherStore({ db: opts.db, dispatcher, log, reloadSec: opts.config.reloadSec, ...(opts.metrics ? { metrics: opts.metrics } : {}), ...(opts.onLoaded ? { onLoaded: opts.onLoaded } : {}) });
  const prober = new Prober({ dispatcher, ...(opts.probe ? { probe: opts.probe } : {}), intervalMs: Math.round(opts.config.probeIntervalSec * 1000), timeoutMs: opts.config.probeTimeoutMs, log });
  opts.metrics?.setDispatcherSource(() => dispatcher.gaugeViews());
  return {
    dispatcher,
    store,
    prober,
    setProber(probe) {
      prober.setProbe(probe);
    },
    async start() {
      const summary = await store.reload();
      prober.start();
      store.start();
      return summary;
    },
    stop() {
      prober.stop();
      store.stop();
    },
  };
}
