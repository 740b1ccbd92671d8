// OPTIONS health probing. Every interval each destination that is not disabled gets one OPTIONS through
// the function the proxy hands in (ProxyActions.probe). At most one probe per destination is in flight:
// a box that does not answer within the timeout is skipped on later ticks until its probe settles, so a
// dead box never accumulates pending probes.
import type { Logger } from '../log.js';
import type { ProxyActions, Target } from '../proxy/hooks.js';
import { describeError } from '../errors.js';

export interface ProbeSink {
  probeTargets(): Target[];
  probeResult(target: Target, status: number): void;
  sweepCalls?(): number;
}

export interface ProberOptions {
  dispatcher: ProbeSink;
  /** The proxy's OPTIONS sender; may be handed in later with setProbe() (the proxy is built after the hooks). */
  probe?: ProxyActions['probe'];
  intervalMs: number;
  timeoutMs: number;
  log: Logger;
}

export class Prober {
  private readonly opts: ProberOptions;
  private readonly inFlight = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private stopped = true;
  private probe: ProxyActions['probe'] | undefined;

  constructor(opts: ProberOptions) {
    this.opts = opts;
    this.probe = opts.probe;
  }

  setProbe(probe: ProxyActions['probe']): void {
    this.probe = probe;
  }

  /** Probes once now, then every intervalMs. */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.tick();
    this.timer = setInterval(() => this.tick(), this.opts.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Destinations with a probe outstanding (keys are "id uri"). */
  inFlightCount(): number {
    return this.inFlight.size;
  }

  /** One round: starts a probe for every eligible destination without one in flight. Returns how many started. */
  tick(): number {
    const d = this.opts.dispatcher;
    d.sweepCalls?.();
    const probe = this.probe;
    // Without a probe function nothing is probed (states stay as they are) rather than every box failing.
    if (!probe) return 0;
    let started = 0;
    for (const target of d.probeTargets()) {
      const key = `${target.id} ${target.uri}`;
      if (this.inFlight.has(key)) continue;
      this.inFlight.add(key);
      started++;
      void this.probeOne(probe, target, key);
    }
    return started;
  }

  private async probeOne(probe: ProxyActions['probe'], target: Target, key: string): Promise<void> {
    // A guard in case the probe function never settles: the slot frees itself a little after the timeout.
    let guard: NodeJS.Timeout | undefined;
    const guardMs = this.opts.timeoutMs + 1000;
    try {
      const status = await Promise.race([
        probe(target, this.opts.timeoutMs),
        new Promise<number>((resolve) => { guard = setTimeout(() => resolve(0), guardMs); guard.unref(); }),
      ]);
      if (!this.stopped) this.opts.dispatcher.probeResult(target, Number.isInteger(status) && status > 0 ? status : 0);
    } catch (e) {
      // The contract says probe resolves 0 on failure; a rejection is a bug elsewhere, treated as a failed probe.
      this.opts.log.warn({ destination: target.uri, err: describeError(e) }, 'probe function threw');
      if (!this.stopped) this.opts.dispatcher.probeResult(target, 0);
    } finally {
      if (guard) clearTimeout(guard);
      this.inFlight.delete(key);
    }
  }
}
