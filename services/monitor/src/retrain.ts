import type { Alert } from '@ballast/contracts/ballast/monitor/v1/monitor_pb.js';
import type { RegistryService } from '@ballast/contracts/ballast/registry/v1/registry_pb.js';
import type { ServiceClient } from '@ballast/grpc-kit';
import { type BallastQueue, type ModelSpec, payloadSchemas, type TrainingRunJob } from '@ballast/queue';
import type { Sql } from '@ballast/storage';
import { durationMs } from './model-baseline.js';
import { recordRetrain, retrainHistory, retrainJobOf, withRetrainLock } from './store/retrain.js';
import type { BaselineCache } from './worker.js';

/**
 * The retrain policy: a firing alert whose rule asks for it becomes a `training.run` job,
 * unless the model was retrained within the cooldown or has reached its maximum rate. The
 * job is built from the production version's lineage (feature view and model spec; the
 * dataset is left to the trainer, which takes the latest), asks for promotion (the
 * registry's gate decides), and its id is derived from the alert, so one alert never
 * enqueues twice. Every request is recorded with the alert that caused it.
 */

export interface RetrainDefaults {
  enabled: boolean;
  cooldownMs: number;
  maxPerWindow: number;
  rateWindowMs: number;
}

export const RETRAIN_DEFAULTS: RetrainDefaults = {
  enabled: true,
  cooldownMs: 6 * 3_600_000,
  maxPerWindow: 3,
  rateWindowMs: 24 * 3_600_000,
};

/** What a retraining reuses from the version in production. */
export interface ProductionLineage {
  version: number;
  featureView?: string | undefined;
  spec?: ModelSpec | undefined;
}

export type LineageSource = (model: string) => Promise<ProductionLineage | undefined>;

/** The production version's lineage from the registry (undefined: no production alias). */
export function registryLineage(registry: ServiceClient<typeof RegistryService>): LineageSource {
  return async (model) => {
    const { model: found } = await registry.getModel({ name: model });
    const version = found?.aliases.production ?? found?.latestVersion ?? 0;
    if (!version) return undefined;
    const { version: v } = await registry.getModelVersion({ model, version });
    const recorded = v?.lineage?.config?.hyperparameters.spec;
    let spec: ModelSpec | undefined;
    if (recorded) {
      const parsed = payloadSchemas['training.run'].safeParse({
        model,
        reason: 'x',
        spec: JSON.parse(recorded),
      });
      if (parsed.success) spec = parsed.data.spec;
    }
    return { version, featureView: v?.lineage?.featureView?.name || undefined, spec };
  };
}

export interface RetrainOutcome {
  outcome: 'enqueued' | 'already_enqueued' | 'disabled' | 'cooldown' | 'rate_limit';
  jobId?: string;
  skipped?: string;
}

export interface RetrainerOptions {
  sql: () => Sql;
  queue: BallastQueue<'training.run'>;
  baselines: BaselineCache;
  lineage?: LineageSource | undefined;
  defaults?: Partial<RetrainDefaults>;
  now?: () => number;
}

export function retrainJobId(alertId: string): string {
  return `retrain-${alertId}`;
}

export class Retrainer {
  readonly #now: () => number;

  constructor(private readonly options: RetrainerOptions) {
    this.#now = options.now ?? Date.now;
  }

  async policy(model: string, version: number): Promise<RetrainDefaults & { featureView: string }> {
    const d = { ...RETRAIN_DEFAULTS, ...this.options.defaults };
    const p = (await this.options.baselines.get(model, version))?.config.retrain;
    if (!p) return { ...d, featureView: '' };
    return {
      enabled: p.enabled,
      cooldownMs: durationMs(p.cooldown, d.cooldownMs),
      maxPerWindow: p.maxPerWindow > 0 ? p.maxPerWindow : d.maxPerWindow,
      rateWindowMs: durationMs(p.rateWindow, d.rateWindowMs),
      featureView: p.featureView,
    };
  }

  async buildJob(alert: Alert, featureView: string): Promise<TrainingRunJob> {
    const lineage = await this.options.lineage?.(alert.model);
    const job: TrainingRunJob = {
      model: alert.model,
      reason: `monitor alert ${alert.rule}${alert.segment ? ` on ${alert.segment}` : ''} (${alert.id})`,
      requestedBy: 'monitor',
      promote: true,
    };
    const view = featureView || lineage?.featureView;
    if (view) job.featureView = view;
    if (lineage?.spec) job.spec = lineage.spec;
    return payloadSchemas['training.run'].parse(job);
  }

  /** Enqueues a retraining for a firing alert, or says why not. */
  async request(alert: Alert): Promise<RetrainOutcome> {
    const policy = await this.policy(alert.model, alert.version);
    if (!policy.enabled) return { outcome: 'disabled', skipped: 'retraining is disabled for this model' };
    const now = this.#now();
    return withRetrainLock(this.options.sql(), alert.model, async (tx) => {
      const done = await retrainJobOf(tx, alert.id);
      if (done) return { outcome: 'already_enqueued', jobId: done };
      const { last, since } = await retrainHistory(tx, alert.model, now - policy.rateWindowMs);
      if (last !== undefined && now - last < policy.cooldownMs)
        return {
          outcome: 'cooldown',
          skipped: `cooldown: last retraining ${Math.round((now - last) / 1000)} s ago, cooldown ${Math.round(policy.cooldownMs / 1000)} s`,
        };
      if (since >= policy.maxPerWindow)
        return {
          outcome: 'rate_limit',
          skipped: `rate limit: ${policy.maxPerWindow} retrainings per ${Math.round(policy.rateWindowMs / 1000)} s`,
        };
      const job = await this.buildJob(alert, policy.featureView);
      const jobId = retrainJobId(alert.id);
      await this.options.queue.add('train', job, { jobId });
      await recordRetrain(tx, { model: alert.model, jobId, alertId: alert.id, atMs: now });
      return { outcome: 'enqueued', jobId };
    });
  }
}
