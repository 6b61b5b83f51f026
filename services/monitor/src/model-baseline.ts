import type { FeatureStatistics } from '@ballast/contracts/ballast/feature/v1/feature_pb.js';
import {
  type AlertRule,
  AlertRuleSchema,
  type FeatureSample,
  type MonitorConfig,
  MonitorConfigSchema,
  Task,
} from '@ballast/contracts/ballast/monitor/v1/monitor_pb.js';
import { invalidArgument } from '@ballast/grpc-kit';
import { create, fromJson, type JsonValue, toJson } from '@bufbuild/protobuf';
import { durationFromMs } from '@bufbuild/protobuf/wkt';
import type { DriftMethod, DriftOptions } from './drift.js';
import type { Baseline, NumericBaseline } from './histogram.js';
import { reservoirOf } from './reservoir.js';

/** The name windows keep the prediction's histogram under. */
export const PREDICTION = '@prediction';
/** The name windows keep request latency (milliseconds) under. */
export const LATENCY = '@latency_ms';

/** Latency bins: 0.05 ms to about 60 s, 25% apart. */
export const LATENCY_BASELINE: NumericBaseline = (() => {
  const edges = [0];
  for (let e = 0.05; e < 60_000; e *= 1.25) edges.push(e);
  return { kind: 'numeric', edges, counts: new Array(edges.length - 1).fill(0), nulls: 0, mean: 0, std: 0 };
})();

/**
 * What one model version is compared against: a baseline per feature (and the prediction)
 * for all rows ('') and per segment, in the order features appear in its input.
 */
export interface ModelBaseline {
  model: string;
  version: number;
  features: string[];
  /** feature (or PREDICTION) -> segment ('' = all rows) -> baseline. */
  baselines: Map<string, Map<string, Baseline>>;
  config: MonitorConfig;
  /** Raw reference values (a reservoir each), feature -> segment -> values; absent: none declared. */
  samples?: Map<string, Map<string, number[]>> | undefined;
}

export const DEFAULT_WINDOW_MS = 3_600_000;
export const DEFAULT_JOIN_WINDOW_MS = 7 * 86_400_000;
export const MAX_JOIN_WINDOW_MS = 30 * 86_400_000;

export function windowMs(config: MonitorConfig): number {
  const w = config.window;
  const ms = w ? Number(w.seconds) * 1000 + Math.floor(w.nanos / 1e6) : 0;
  return ms > 0 ? ms : DEFAULT_WINDOW_MS;
}

export function durationMs(d: { seconds: bigint; nanos: number } | undefined, fallback: number): number {
  const ms = d ? Number(d.seconds) * 1000 + Math.floor(d.nanos / 1e6) : 0;
  return ms > 0 ? ms : fallback;
}

/** The baseline windows of `feature` in `segment` are binned against (the segment's, else all rows'). */
export function baselineFor(model: ModelBaseline, feature: string, segment: string): Baseline | undefined {
  if (feature === LATENCY) return LATENCY_BASELINE;
  const bySegment = model.baselines.get(feature);
  return bySegment?.get(segment) ?? bySegment?.get('');
}

/** The raw reference sample windows of `feature` in `segment` are compared with, as baselineFor picks. */
export function sampleFor(model: ModelBaseline, feature: string, segment: string): number[] | undefined {
  if (!model.baselines.get(feature)?.has(segment)) segment = '';
  const sample = model.samples?.get(feature)?.get(segment);
  return sample && sample.length > 0 ? sample : undefined;
}

const METHODS = new Set(['auto', 'ks', 'chisquare', 'ztest', 'wasserstein', 'jensenshannon', 'psi']);

export function driftOptions(model: ModelBaseline, feature: string): DriftOptions {
  const merged: DriftOptions = {};
  for (const c of [model.config.drift, model.config.features[feature]]) {
    if (!c) continue;
    if (c.method) merged.method = c.method as DriftMethod | 'auto';
    if (c.threshold > 0) merged.threshold = c.threshold;
    if (c.psiWarn > 0) merged.psiWarn = c.psiWarn;
    if (c.psiAlert > 0) merged.psiAlert = c.psiAlert;
    if (c.minSamples > 0) merged.minSamples = c.minSamples;
  }
  return merged;
}

function numericFromStatistics(s: FeatureStatistics, path: string): NumericBaseline {
  const edges = s.histogram?.edges ?? [];
  const counts = (s.histogram?.counts ?? []).map(Number);
  if (edges.length < 2 || counts.length !== edges.length - 1)
    throw invalidArgument(`${path}.histogram`, 'needs at least 2 edges and one count per bin');
  for (let i = 1; i < edges.length; i++) {
    if (!((edges[i] as number) >= (edges[i - 1] as number)))
      throw invalidArgument(`${path}.histogram.edges`, 'must be ascending');
  }
  if (counts.some((c) => !Number.isFinite(c) || c < 0))
    throw invalidArgument(`${path}.histogram.counts`, 'must be >= 0');
  return { kind: 'numeric', edges, counts, nulls: Number(s.nullCount), mean: s.mean, std: s.std };
}

/** Checks a SetBaseline request and builds the model's baseline from it. */
export function buildBaseline(
  model: string,
  version: number,
  statistics: readonly FeatureStatistics[],
  config: MonitorConfig | undefined,
  defaults: { windowMs?: number; task?: Task } = {},
  samples: readonly FeatureSample[] = [],
): ModelBaseline {
  const features: string[] = [];
  const baselines = new Map<string, Map<string, Baseline>>();
  statistics.forEach((s, i) => {
    const path = `statistics[${i}]`;
    if (!s.feature) throw invalidArgument(`${path}.feature`, 'must not be empty');
    const name = s.isLabel ? PREDICTION : s.feature;
    if (!s.isLabel && !features.includes(name)) features.push(name);
    let bySegment = baselines.get(name);
    if (!bySegment) {
      bySegment = new Map();
      baselines.set(name, bySegment);
    }
    bySegment.set(s.segment, numericFromStatistics(s, path));
  });
  if (features.length === 0) throw invalidArgument('statistics', 'must hold at least one feature');
  const cfg = config ?? create(MonitorConfigSchema);
  // The service's default window is written into the baseline, so a later change of the
  // default never re-cuts windows already stored.
  if (!cfg.window && defaults.windowMs) cfg.window = durationFromMs(defaults.windowMs);
  if (cfg.task === Task.UNSPECIFIED && defaults.task) cfg.task = defaults.task;
  if (windowMs(cfg) < 1000) throw invalidArgument('config.window', 'must be at least 1 s');
  for (const [name, c] of [['config.drift', cfg.drift], ...Object.entries(cfg.features)] as const) {
    if (c?.method && !METHODS.has(c.method))
      throw invalidArgument(`${name}.method`, `unknown method ${c.method}`);
  }
  const built: ModelBaseline = { model, version, features, baselines, config: cfg };
  if (samples.length > 0) built.samples = referenceSamples(samples, baselines);
  return built;
}

/** Declared raw reference values, each kept as a reservoir seeded by its feature and segment. */
function referenceSamples(
  samples: readonly FeatureSample[],
  baselines: ReadonlyMap<string, ReadonlyMap<string, Baseline>>,
): Map<string, Map<string, number[]>> {
  const out = new Map<string, Map<string, number[]>>();
  samples.forEach((s, i) => {
    const name = s.isLabel ? PREDICTION : s.feature;
    const baseline = baselines.get(name)?.get(s.segment);
    if (!baseline)
      throw invalidArgument(
        `samples[${i}]`,
        `${s.isLabel ? 'the label' : `feature ${JSON.stringify(s.feature)}`} in segment ${JSON.stringify(s.segment)} has no statistics`,
      );
    if (baseline.kind !== 'numeric')
      throw invalidArgument(`samples[${i}]`, 'only numeric features take raw samples');
    let bySegment = out.get(name);
    if (!bySegment) {
      bySegment = new Map();
      out.set(name, bySegment);
    }
    if (bySegment.has(s.segment))
      throw invalidArgument(`samples[${i}]`, 'repeats an earlier feature and segment');
    bySegment.set(s.segment, reservoirOf(s.values, `${name}|${s.segment}`));
  });
  return out;
}

// --- persistence form --------------------------------------------------------------------

export interface StoredBaseline {
  features: string[];
  baselines: [string, [string, Baseline][]][];
  config: JsonValue;
  samples?: [string, [string, number[]][]][];
}

export function toStored(b: ModelBaseline): StoredBaseline {
  return {
    features: b.features,
    baselines: [...b.baselines].map(([f, m]) => [f, [...m]]),
    config: toJson(MonitorConfigSchema, b.config),
    ...(b.samples
      ? { samples: [...b.samples].map(([f, m]) => [f, [...m]] as [string, [string, number[]][]]) }
      : {}),
  };
}

export function fromStored(model: string, version: number, s: StoredBaseline): ModelBaseline {
  return {
    model,
    version,
    features: s.features,
    baselines: new Map(s.baselines.map(([f, m]) => [f, new Map(m)])),
    config: fromJson(MonitorConfigSchema, s.config),
    ...(s.samples ? { samples: new Map(s.samples.map(([f, m]) => [f, new Map(m)])) } : {}),
  };
}

export function ruleFromJson(json: JsonValue): AlertRule {
  return fromJson(AlertRuleSchema, json);
}

export function isClassification(config: MonitorConfig): boolean {
  return config.task === Task.CLASSIFICATION;
}

/** Whether windows cut and binned for `a` mean the same under `b`: window length and every bin edge. */
export function sameLayout(a: ModelBaseline, b: ModelBaseline): boolean {
  if (windowMs(a.config) !== windowMs(b.config)) return false;
  const layout = (m: ModelBaseline) =>
    JSON.stringify(
      [...m.baselines]
        .map(([f, bySegment]) => [
          f,
          [...bySegment].map(([s, x]) => [s, x.kind === 'numeric' ? x.edges : x.categories]).sort(),
        ])
        .sort(),
    );
  return layout(a) === layout(b);
}
