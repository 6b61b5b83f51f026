import type { FeatureStatistics } from '@ballast/contracts/ballast/feature/v1/feature_pb.js';
import type { FeatureSample, MonitorConfig } from '@ballast/contracts/ballast/monitor/v1/monitor_pb.js';
import { notFound } from '@ballast/grpc-kit';
import type { MonitorDeps } from './deps.js';
import { buildBaseline, type ModelBaseline, sameLayout, windowMs } from './model-baseline.js';
import { getBaseline, replaceBaseline } from './store/baselines.js';

export interface BaselineInput {
  model: string;
  version: number;
  statistics: readonly FeatureStatistics[];
  config: MonitorConfig | undefined;
  samples?: readonly FeatureSample[] | undefined;
}

/** Declaring a model version's baseline, and finding the one a question needs. */
export class Baselines {
  constructor(private readonly deps: Pick<MonitorDeps, 'sql' | 'baselines' | 'alerts' | 'settings'>) {}

  /** Stores the baseline (and the model's default rule when it has none); the features it covers. */
  async set(input: BaselineInput): Promise<string[]> {
    const { sql, baselines, alerts, settings } = this.deps;
    const baseline = buildBaseline(
      input.model,
      input.version,
      input.statistics,
      input.config,
      { windowMs: settings.windowMs },
      input.samples,
    );
    // Windows already cut to another length or binned on other edges (e.g. a baseline
    // resolved from lineage before this one was declared) cannot be re-cut: they go.
    const previous = await getBaseline(sql(), baseline.model, baseline.version);
    await replaceBaseline(sql(), baseline, { dropWindows: !!previous && !sameLayout(previous, baseline) });
    baselines.set(baseline);
    await alerts.ensureDefaultRule(baseline.model, windowMs(baseline.config));
    return baseline.features;
  }

  async require(model: string, version: number): Promise<ModelBaseline> {
    const b = await this.deps.baselines.get(model, version);
    if (!b) throw notFound(`model ${model} version ${version} has no baseline`);
    return b;
  }
}
