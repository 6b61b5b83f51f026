import {
  type GateRuleSchema,
  type GateVerdictSchema,
  MetricDirection,
  type ModelVersion,
  type PromotionPolicy,
  Task,
} from '@ballast/contracts/ballast/registry/v1/registry_pb.js';
import type { MessageInitShape } from '@bufbuild/protobuf';

/**
 * The promotion gate. A better model is not a better deployment if it costs more than it
 * earns: 94% -> 95% accuracy that doubles inference cost or latency is refused. Every rule
 * is evaluated (not just until the first failure) so a refusal lists everything to fix.
 */

type GateRule = MessageInitShape<typeof GateRuleSchema>;
export type Verdict = MessageInitShape<typeof GateVerdictSchema> & { passed: boolean; rules: GateRule[] };

/** The policy with every default applied. */
export interface EffectivePolicy {
  primaryMetric: string;
  evalSet: string;
  lowerIsBetter: boolean;
  minImprovement: number;
  maxP99LatencyIncrease: number;
  maxCostIncrease: number;
  maxSegmentRegression: number;
  latencyBatchSize: number;
}

export function effectivePolicy(task: Task, policy: PromotionPolicy | undefined): EffectivePolicy {
  const regression = task !== Task.CLASSIFICATION;
  const direction = policy?.direction ?? MetricDirection.UNSPECIFIED;
  return {
    primaryMetric: policy?.primaryMetric || (regression ? 'mae' : 'accuracy'),
    evalSet: policy?.evalSet || 'holdout',
    lowerIsBetter:
      direction === MetricDirection.UNSPECIFIED ? regression : direction === MetricDirection.LOWER_IS_BETTER,
    minImprovement: policy?.minImprovement ?? 0,
    maxP99LatencyIncrease: policy?.maxP99LatencyIncrease ?? 0.1,
    maxCostIncrease: policy?.maxCostIncrease ?? 0.1,
    maxSegmentRegression: policy?.maxSegmentRegression ?? 0.05,
    latencyBatchSize: policy?.latencyBatchSize || 1,
  };
}

type Version = Pick<ModelVersion, 'version' | 'metrics' | 'servingProfile'>;

export function evaluateGate(
  policy: EffectivePolicy,
  production: Version | undefined,
  candidate: Version,
): Verdict {
  if (!production) {
    return {
      passed: true,
      baselineVersion: 0,
      rules: [],
      summary: 'passed: no production version yet, nothing to compare against',
    };
  }
  const rules = [
    primaryMetricRule(policy, production, candidate),
    latencyRule(policy, production, candidate),
    costRule(policy, production, candidate),
    ...segmentRules(policy, production, candidate),
  ];
  const failed = rules.filter((rule) => !rule.passed);
  const against = `v${candidate.version} against production v${production.version}`;
  return {
    passed: failed.length === 0,
    baselineVersion: production.version,
    rules,
    summary:
      failed.length === 0
        ? `passed all ${rules.length} rules, ${against}`
        : `refused ${against}: ${failed.length} of ${rules.length} rules failed: ${failed.map((r) => `${r.rule}: ${r.detail}`).join('; ')}`,
  };
}

function metricValue(version: Version, name: string, evalSet: string, segment: string): number | undefined {
  return version.metrics.find((m) => m.name === name && m.evalSet === evalSet && m.segment === segment)
    ?.value;
}

/**
 * The eval set under which a candidate records production's scores on the candidate's own
 * holdout (registry.proto, Metric.eval_set). Data moves on between two trainings, so two
 * holdouts are different exams; when the candidate carries production's score on the same
 * exam, that is what the gate compares.
 */
export const baselineEvalSet = (evalSet: string, productionVersion: number) =>
  `${evalSet}@v${productionVersion}`;

/** Production's value on the candidate's holdout when recorded, else on its own; and which. */
function productionValue(
  name: string,
  evalSet: string,
  segment: string,
  production: Version,
  candidate: Version,
): { value: number | undefined; on: string } {
  const sameHoldout = metricValue(candidate, name, baselineEvalSet(evalSet, production.version), segment);
  if (sameHoldout !== undefined) return { value: sameHoldout, on: `v${candidate.version}'s ${evalSet}` };
  return { value: metricValue(production, name, evalSet, segment), on: evalSet };
}

/** How much better `candidate` is than `production`, relative to production (negative = worse). */
function improvement(policy: EffectivePolicy, production: number, candidate: number): number {
  const gain = policy.lowerIsBetter ? production - candidate : candidate - production;
  if (production === 0) return gain === 0 ? 0 : Math.sign(gain) * Number.POSITIVE_INFINITY;
  return gain / Math.abs(production);
}

function increase(production: number, candidate: number): number {
  if (production === 0) return candidate === 0 ? 0 : Number.POSITIVE_INFINITY;
  return (candidate - production) / production;
}

const pct = (x: number) =>
  Number.isFinite(x) ? `${x >= 0 ? '+' : ''}${(x * 100).toFixed(1)}%` : `${x > 0 ? '+' : '-'}inf`;
const num = (x: number) => Number(x.toPrecision(6)).toString();
/** A relative improvement in words: "better by 30.0%", "worse by 43.6%", "unchanged". */
const change = (gain: number) => {
  if (gain === 0) return 'unchanged';
  const size = Number.isFinite(gain) ? `${(Math.abs(gain) * 100).toFixed(1)}%` : 'inf';
  return `${gain > 0 ? 'better' : 'worse'} by ${size}`;
};
/** A floor on improvement in words: "at least 1.0% better", "at most 5.0% worse". */
const floor = (limit: number) =>
  limit >= 0 ? `at least ${(limit * 100).toFixed(1)}% better` : `at most ${(-limit * 100).toFixed(1)}% worse`;

function primaryMetricRule(policy: EffectivePolicy, production: Version, candidate: Version): GateRule {
  const { primaryMetric: name, evalSet } = policy;
  const rule = 'min_improvement';
  const { value: before, on } = productionValue(name, evalSet, '', production, candidate);
  const after = metricValue(candidate, name, evalSet, '');
  if (after === undefined)
    return {
      rule,
      passed: false,
      limit: policy.minImprovement,
      detail: `v${candidate.version} has no ${name} on ${evalSet}`,
    };
  if (before === undefined)
    return {
      rule,
      passed: true,
      candidateValue: after,
      limit: policy.minImprovement,
      detail: `production v${production.version} has no ${name} on ${evalSet}: not compared`,
    };
  const gain = improvement(policy, before, after);
  return {
    rule,
    passed: gain >= policy.minImprovement,
    productionValue: before,
    candidateValue: after,
    limit: policy.minImprovement,
    detail: `${name} on ${on}: ${num(before)} -> ${num(after)} (${change(gain)}), required ${floor(policy.minImprovement)}`,
  };
}

function latencyRule(policy: EffectivePolicy, production: Version, candidate: Version): GateRule {
  const rule = 'max_p99_latency_increase';
  const size = policy.latencyBatchSize;
  const limit = policy.maxP99LatencyIncrease;
  const at = (v: Version) => v.servingProfile?.latency.find((p) => p.batchSize === size)?.p99Ms;
  const before = at(production);
  const after = at(candidate);
  if (after === undefined)
    return {
      rule,
      passed: false,
      limit,
      detail: `v${candidate.version} has no p99 latency at batch ${size}`,
    };
  if (before === undefined)
    return {
      rule,
      passed: true,
      candidateValue: after,
      limit,
      detail: `production v${production.version} has no p99 latency at batch ${size}: not compared`,
    };
  const rise = increase(before, after);
  const backends = `${production.servingProfile?.backend} -> ${candidate.servingProfile?.backend}`;
  return {
    rule,
    passed: rise <= limit,
    productionValue: before,
    candidateValue: after,
    limit,
    detail: `p99 latency at batch ${size} (${backends}): ${num(before)} ms -> ${num(after)} ms (${pct(rise)}), limit ${pct(limit)}`,
  };
}

function costRule(policy: EffectivePolicy, production: Version, candidate: Version): GateRule {
  const before = production.servingProfile?.costPerMillion ?? 0;
  const after = candidate.servingProfile?.costPerMillion ?? 0;
  const limit = policy.maxCostIncrease;
  if (after <= 0)
    return {
      rule: 'max_cost_increase',
      passed: false,
      limit,
      detail: `v${candidate.version} has no cost estimate`,
    };
  const rise = increase(before, after);
  const currency = candidate.servingProfile?.costCurrency || 'USD';
  return {
    rule: 'max_cost_increase',
    passed: rise <= limit,
    productionValue: before,
    candidateValue: after,
    limit,
    detail: `cost per 1M predictions: ${num(before)} -> ${num(after)} ${currency} (${pct(rise)}), limit ${pct(limit)}`,
  };
}

function segmentRules(policy: EffectivePolicy, production: Version, candidate: Version): GateRule[] {
  const { primaryMetric: name, evalSet } = policy;
  const limit = policy.maxSegmentRegression;
  const rule = 'max_segment_regression';
  return production.metrics
    .filter((m) => m.name === name && m.evalSet === evalSet && m.segment !== '')
    .map(({ segment, value: recorded }) => {
      const before = productionValue(name, evalSet, segment, production, candidate).value ?? recorded;
      const after = metricValue(candidate, name, evalSet, segment);
      if (after === undefined)
        return {
          rule,
          segment,
          passed: false,
          productionValue: before,
          limit,
          detail: `v${candidate.version} has no ${name} for segment ${segment}`,
        };
      const regression = -improvement(policy, before, after);
      return {
        rule,
        segment,
        passed: regression <= limit,
        productionValue: before,
        candidateValue: after,
        limit,
        detail: `${name} in segment ${segment}: ${num(before)} -> ${num(after)} (${change(-regression)}), allowed ${floor(-limit)}`,
      };
    });
}
