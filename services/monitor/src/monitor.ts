import { createQueue, QueueNames, type RedisConnection } from '@ballast/queue';
import type { Sql } from '@ballast/storage';
import type { Worker } from 'bullmq';
import { AlertEngine } from './alerts.js';
import type { MonitorDeps } from './deps.js';
import { monitorMetrics } from './metrics.js';
import { MAX_JOIN_WINDOW_MS, windowMs } from './model-baseline.js';
import type { OperationsScraper } from './operations.js';
import { type LineageSource, Retrainer } from './retrain.js';
import { monitorService } from './server.js';
import { DEFAULT_SETTINGS, type MonitorSettings } from './settings.js';
import { prune } from './store/retention.js';
import { BaselineCache, type BaselineResolver, startPredictionsWorker } from './worker.js';

/**
 * The monitor's parts wired together (main.ts and the tests build it the same way): the
 * baseline cache, the alert engine with its retrainer, the `monitor.predictions` worker and
 * the RPC handlers.
 */

export interface MonitorOptions {
  sql: () => Sql;
  /** For the worker and the training queue (a connectRedis client). */
  connection: RedisConnection;
  /** BullMQ key prefix (tests use their own). */
  prefix?: string | undefined;
  settings?: Partial<MonitorSettings>;
  resolveBaseline?: BaselineResolver | undefined;
  lineage?: LineageSource | undefined;
  /** Where failures of background work (alert evaluation) are reported. */
  onError?: (error: unknown) => void;
  now?: () => number;
  /** False: no worker (a test that feeds absorb() itself). Default true. */
  worker?: boolean;
  /** Scraped /metrics of the services, for GetOperations and the dashboard. */
  operations?: OperationsScraper | undefined;
  /** False: the worker waits for worker.run() (main starts it once the schema is migrated). */
  autorun?: boolean;
}

export interface Monitor {
  deps: MonitorDeps;
  service: ReturnType<typeof monitorService>;
  baselines: BaselineCache;
  alerts: AlertEngine;
  retrainer: Retrainer;
  worker: Worker | undefined;
  trainingQueue: ReturnType<typeof createQueue<'training.run'>>;
  settings: MonitorSettings;
  /** Background work (alert evaluation, webhook deliveries, counting failed jobs) has finished. */
  idle(): Promise<void>;
  close(): Promise<void>;
}

export function createMonitor(options: MonitorOptions): Monitor {
  const settings = { ...DEFAULT_SETTINGS, ...options.settings };
  const metrics = monitorMetrics();
  const prefix = options.prefix ? { prefix: options.prefix } : {};
  let alerts: AlertEngine | undefined;
  const baselines = new BaselineCache(options.sql, {
    resolve: options.resolveBaseline,
    onResolved: async (b) => alerts?.ensureDefaultRule(b.model, windowMs(b.config)),
  });
  const trainingQueue = createQueue(QueueNames.trainingRun, { connection: options.connection, ...prefix });
  const retrainer = new Retrainer({
    sql: options.sql,
    queue: trainingQueue,
    baselines,
    lineage: options.lineage,
    defaults: settings.retrain,
    ...(options.now ? { now: options.now } : {}),
  });
  alerts = new AlertEngine({
    sql: options.sql,
    baselines,
    retrainer,
    defaultRule: settings.defaultRule,
    webhook: settings.webhook,
    minErrorCount: settings.minErrorCount,
    minIntervalMs: settings.evaluateIntervalMs,
    watchPollMs: settings.watchPollMs,
    metrics,
    ...(options.now ? { now: options.now } : {}),
  });
  const engine = alerts;
  const onError = options.onError ?? (() => {});
  const background = new Set<Promise<unknown>>();
  const track = (work: Promise<unknown>) => {
    background.add(work);
    void work.finally(() => background.delete(work));
  };
  const idle = async () => {
    while (background.size > 0) await Promise.allSettled([...background]);
    await engine.idle();
  };
  const worker =
    options.worker === false
      ? undefined
      : startPredictionsWorker({
          sql: options.sql,
          baselines,
          connection: options.connection,
          ...prefix,
          concurrency: settings.workerConcurrency,
          autorun: options.autorun ?? true,
          track,
          metrics,
          onAbsorbed: async (model) => {
            void engine.evaluateSoon(model.model).catch(onError);
          },
        });
  // Predictions stay while an actual may still join them (the longest join window allowed).
  const pruneTimer =
    settings.pruneIntervalMs > 0
      ? setInterval(() => {
          const now = Date.now();
          track(
            prune(options.sql(), {
              joinBefore: now - Math.max(settings.joinWindowMs, MAX_JOIN_WINDOW_MS),
              jobsBefore: now - 7 * 86_400_000,
              windowsBefore: now - settings.windowRetentionMs,
            }).catch(onError),
          );
        }, settings.pruneIntervalMs)
      : undefined;
  pruneTimer?.unref();
  const deps: MonitorDeps = {
    sql: options.sql,
    baselines,
    alerts: engine,
    settings,
    operations: options.operations,
    metrics,
    onError,
  };
  return {
    deps,
    service: monitorService(deps),
    baselines,
    alerts: engine,
    retrainer,
    worker,
    trainingQueue,
    settings,
    idle,
    async close() {
      clearInterval(pruneTimer);
      await worker?.close();
      await idle();
      await trainingQueue.close();
    },
  };
}
