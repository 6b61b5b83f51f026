import type {
  ErrorWindow,
  ErrorWindowSchema,
  FeatureDrift,
  WindowDrift,
  WindowDriftSchema,
} from '@ballast/contracts/ballast/monitor/v1/monitor_pb.js';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { DRIFT_DEFAULTS, featureDrift, segmentDrift } from './drift.js';
import { aucFromBins } from './errors.js';
import { baselineRows, windowBins } from './histogram.js';
import {
  baselineFor,
  driftOptions,
  LATENCY,
  LATENCY_BASELINE,
  type ModelBaseline,
  PREDICTION,
  sampleFor,
  windowMs,
} from './model-baseline.js';
import type { ErrorKey, ErrorSums } from './store/errors.js';
import type { StoredWindow } from './store/windows.js';
import { histogramQuantile } from './windows.js';

/** Stored windows of one model version judged against its baseline: one entry per window and segment. */
export function driftReport(
  model: ModelBaseline,
  windows: readonly StoredWindow[],
): MessageInitShape<typeof WindowDriftSchema>[] {
  const groups = new Map<string, StoredWindow[]>();
  for (const w of windows) {
    const id = `${w.windowStart}|${w.segment}`;
    const list = groups.get(id);
    if (list) list.push(w);
    else groups.set(id, [w]);
  }
  const width = windowMs(model.config);
  const share = model.config.drift?.driftShare || DRIFT_DEFAULTS.driftShare;
  const out: MessageInitShape<typeof WindowDriftSchema>[] = [];
  for (const group of groups.values()) {
    const first = group[0] as StoredWindow;
    const byFeature = new Map(group.map((w) => [w.feature, w.hist]));
    const features: MessageInitShape<
      typeof import('@ballast/contracts/ballast/monitor/v1/monitor_pb.js').FeatureDriftSchema
    >[] = [];
    const verdicts = [];
    for (const feature of [...model.features, PREDICTION]) {
      const hist = byFeature.get(feature);
      const baseline = baselineFor(model, feature, first.segment);
      // Windows binned against another baseline (replaced since) are not comparable.
      if (!hist || !baseline || hist.counts.length !== windowBins(baseline)) continue;
      const d = featureDrift(
        baseline,
        hist,
        driftOptions(model, feature),
        sampleFor(model, feature, first.segment),
      );
      if (feature !== PREDICTION) verdicts.push(d);
      const refRows = baselineRows(baseline) + baseline.nulls;
      features.push({
        feature: feature === PREDICTION ? 'prediction' : feature,
        isPrediction: feature === PREDICTION,
        method: d.method,
        statistic: d.statistic,
        pValue: d.pValue,
        threshold: d.threshold,
        drifted: d.drifted,
        insufficient: d.insufficient,
        psi: d.psi,
        psiNoise: d.psiNoise,
        psiLevel: d.psiLevel,
        jensenShannon: d.jensenShannon,
        ksStatistic: d.ks?.statistic ?? Number.NaN,
        ksPValue: d.ks?.pValue ?? Number.NaN,
        ksBinnedStatistic: d.ksBinned?.statistic ?? Number.NaN,
        ksBinnedPValue: d.ksBinned?.pValue ?? Number.NaN,
        ksReferenceSamples: BigInt(d.ksSamples?.reference ?? 0),
        ksCurrentSamples: BigInt(d.ksSamples?.current ?? 0),
        wassersteinNormalized: d.wassersteinNormalized ?? Number.NaN,
        chiSquareStatistic: d.chiSquare?.statistic ?? Number.NaN,
        chiSquarePValue: d.chiSquare?.pValue ?? Number.NaN,
        count: BigInt(d.count),
        nullCount: BigInt(d.nulls),
        outOfRange: BigInt(d.outOfRange),
        nullRate: hist.count + hist.nulls === 0 ? 0 : hist.nulls / (hist.count + hist.nulls),
        baselineNullRate: refRows === 0 ? 0 : baseline.nulls / refRows,
        mean: hist.count === 0 ? Number.NaN : hist.sum / hist.count,
      });
    }
    const segment = segmentDrift(verdicts, share);
    const latency = byFeature.get(LATENCY);
    const firstFeature = byFeature.get(model.features[0] ?? '');
    out.push({
      windowStart: timestampFromMs(first.windowStart),
      windowEnd: timestampFromMs(first.windowStart + width),
      segment: first.segment,
      rows: BigInt(firstFeature ? firstFeature.count + firstFeature.nulls : 0),
      drifted: segment.drifted,
      driftShare: segment.share,
      driftedFeatures: segment.driftedFeatures,
      features,
      latencyP50Ms: latency ? histogramQuantile(LATENCY_BASELINE.edges, latency, 0.5) : Number.NaN,
      latencyP99Ms: latency ? histogramQuantile(LATENCY_BASELINE.edges, latency, 0.99) : Number.NaN,
    });
  }
  return out;
}

export type { ErrorWindow, FeatureDrift, WindowDrift };

export function errorWindow(
  key: ErrorKey,
  s: ErrorSums,
  width: number,
): MessageInitShape<typeof ErrorWindowSchema> {
  return {
    windowStart: timestampFromMs(key.windowStart),
    windowEnd: timestampFromMs(key.windowStart + width),
    version: key.version,
    segment: key.segment,
    count: BigInt(s.n),
    mae: s.n ? s.sumAbs / s.n : Number.NaN,
    rmse: s.n ? Math.sqrt(s.sumSq / s.n) : Number.NaN,
    mape: s.nApe ? s.sumApe / s.nApe : Number.NaN,
    accuracy: s.n ? s.correct / s.n : Number.NaN,
    auc: aucFromBins(s.pos, s.neg),
  };
}
