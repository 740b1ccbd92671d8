// The nightly job: node-cron fires at reconcile.schedule in reconcile.timezone on every gateway instance;
// GET_LOCK lets exactly one of them reconcile the previous billing day, and an instance whose clock fired
// late skips a day another instance has just reconciled.

import cron, { type ScheduledTask } from 'node-cron';
import type { Config } from '../config/schema.js';
import { withLock } from '../db/lock.js';
import type { Db } from '../db/pool.js';
import * as Q from '../db/queries/reconcile.js';
import { GwError, describeError, isGwError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { runReconcile, type ReconcileResult } from './job.js';
import { isValidTimeZone, previousDay, toSqlUtc } from './window.js';

export const RECONCILE_LOCK = 'a2b-gateway:reconcile';

export interface ReconcileScheduleDeps {
  db: Db;
  config: Config['reconcile'];
  /** Configured AMI boxes (config.ami.boxes): known boxes for gap detection and destination → box. */
  boxes?: ReadonlyArray<{ name: string; host: string }>;
  log: Logger;
  metrics?: Metrics;
  now?: () => number;
}

export interface ReconcileSchedule {
  /** Arms the cron task (no-op when reconcile.enabled is false). */
  start(): void;
  /** Disarms it and waits for a run in progress. */
  stop(): Promise<void>;
  /** Reconciles `day` (default: yesterday in the billing timezone) now, under the cluster lock. null when another instance holds it or it was just done. */
  runNow(day?: string, opts?: { skipIfDoneSinceMs?: number }): Promise<ReconcileResult | null>;
  nextRun(): Date | null;
}

export function createReconcileSchedule(deps: ReconcileScheduleDeps): ReconcileSchedule {
  const { db, config, log } = deps;
  const now = deps.now ?? Date.now;
  if (!cron.validate(config.schedule)) throw new GwError('GW_ERR_CONFIG_INVALID', `reconcile.schedule: "${config.schedule}" is not a cron expression`);
  if (!isValidTimeZone(config.timezone)) throw new GwError('GW_ERR_CONFIG_INVALID', `reconcile.timezone: unknown time zone "${config.timezone}"`);
  let task: ScheduledTask | undefined;
  let running: Promise<unknown> | undefined;

  const runNow = async (day?: string, opts: { skipIfDoneSinceMs?: number } = {}): Promise<ReconcileResult | null> => {
    const d = day ?? previousDay(now(), config.timezone);
    const job = withLock(db, RECONCILE_LOCK, 0, async () => {
      if (opts.skipIfDoneSinceMs !== undefined) {
        const [rows] = await db.query(Q.RUN_GET, [d, config.timezone]);
        const prev = (rows as Array<{ status: string; startedAt: string }>)[0];
        if (prev?.status === 'done' && prev.startedAt >= toSqlUtc(opts.skipIfDoneSinceMs)) {
          log.info({ day: d, timezone: config.timezone }, 'reconciliation: day already done by another instance');
          return null;
        }
      }
      return runReconcile({
        db, day: d, timezone: config.timezone, toleranceSec: config.durationToleranceSec, outputDir: config.outputDir,
        marginSec: config.marginSec, boxes: deps.boxes, log, metrics: deps.metrics, now,
      });
    }).catch((e: unknown) => {
      if (isGwError(e, 'GW_ERR_LOCK_BUSY')) {
        log.info({ day: d }, 'reconciliation: another instance holds the lock');
        return null;
      }
      throw e;
    });
    running = job.catch(() => undefined);
    try {
      return await job;
    } finally {
      running = undefined;
    }
  };

  return {
    start() {
      if (!config.enabled || task) return;
      task = cron.createTask(config.schedule, async () => {
        const fired = now();
        try {
          await runNow(undefined, { skipIfDoneSinceMs: fired - 30 * 60_000 });
        } catch (e) {
          log.error({ err: describeError(e) }, 'nightly reconciliation failed');
        }
      }, { timezone: config.timezone, name: 'a2b-reconcile', noOverlap: true });
      void task.start();
      log.info({ schedule: config.schedule, timezone: config.timezone, next: task.getNextRun()?.toISOString() }, 'reconciliation scheduled');
    },
    async stop() {
      const t = task;
      task = undefined;
      if (t) {
        await t.stop();
        await t.destroy();
      }
      await running;
    },
    runNow,
    nextRun: () => task?.getNextRun() ?? null,
  };
}
