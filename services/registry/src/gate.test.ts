import {
  MetricDirection,
  MetricSchema,
  type ModelVersion,
  ModelVersionSchema,
  PromotionPolicySchema,
  Task,
} from '@ballast/contracts/ballast/registry/v1/registry_pb.js';
import { create } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import { baselineEvalSet, effectivePolicy, evaluateGate } from './gate.js';

function version(
  number: number,
  { metric = 10, p99 = 5, cost = 2, segments = {} as Record<string, number>, name = 'mae' } = {},
): ModelVersion {
  return create(ModelVersionSchema, {
    version: number,
    metrics: [
      { name, evalSet: 'holdout', value: metric },
      ...Object.entries(segments).map(([segment, value]) => ({ name, evalSet: 'holdout', segment, value })),
    ],
    servingProfile: {
      backend: 'wasm',
      latency: [{ batchSize: 1, p50Ms: p99 / 2, p99Ms: p99 }],
      costPerMillion: cost,
    },
  });
}

const regression = effectivePolicy(Task.REGRESSION, undefined);
const failedRules = (verdict: ReturnType<typeof evaluateGate>) =>
  verdict.rules.filter((r) => !r.passed).map((r) => r.rule);

describe('promotion gate', () => {
  it('applies defaults by task', () => {
    expect(regression).toMatchObject({
      primaryMetric: 'mae',
      evalSet: 'holdout',
      lowerIsBetter: true,
      minImprovement: 0,
      maxP99LatencyIncrease: 0.1,
      maxCostIncrease: 0.1,
      maxSegmentRegression: 0.05,
      latencyBatchSize: 1,
    });
    expect(effectivePolicy(Task.CLASSIFICATION, undefined)).toMatchObject({
      primaryMetric: 'accuracy',
      lowerIsBetter: false,
    });
  });

  it('passes a first promotion with nothing to compare against', () => {
    const verdict = evaluateGate(regression, undefined, version(1));
    expect(verdict).toMatchObject({ passed: true, baselineVersion: 0, rules: [] });
  });

  it('passes a version better on the metric and no worse on latency, cost or segments', () => {
    const verdict = evaluateGate(
      regression,
      version(1, { metric: 10, segments: { 'warehouse_id=W1': 8, 'warehouse_id=W2': 12 } }),
      version(2, {
        metric: 9,
        p99: 5.2,
        cost: 2.1,
        segments: { 'warehouse_id=W1': 8.2, 'warehouse_id=W2': 10 },
      }),
    );
    expect(failedRules(verdict)).toEqual([]);
    expect(verdict.passed).toBe(true);
    expect(verdict.rules.map((r) => r.rule)).toEqual([
      'min_improvement',
      'max_p99_latency_increase',
      'max_cost_increase',
      'max_segment_regression',
      'max_segment_regression',
    ]);
    expect(verdict.summary).toContain('passed all 5 rules');
  });

  it("refuses the seed's trade: 94% -> 95% accuracy at twice the cost and latency", () => {
    const policy = effectivePolicy(Task.CLASSIFICATION, undefined);
    const verdict = evaluateGate(
      policy,
      version(1, { name: 'accuracy', metric: 0.94, p99: 4, cost: 1 }),
      version(2, { name: 'accuracy', metric: 0.95, p99: 8, cost: 2 }),
    );
    expect(verdict.passed).toBe(false);
    expect(failedRules(verdict)).toEqual(['max_p99_latency_increase', 'max_cost_increase']);
    const latency = verdict.rules.find((r) => r.rule === 'max_p99_latency_increase');
    expect(latency).toMatchObject({ productionValue: 4, candidateValue: 8, limit: 0.1 });
    expect(latency?.detail).toBe(
      'p99 latency at batch 1 (wasm -> wasm): 4 ms -> 8 ms (+100.0%), limit +10.0%',
    );
    expect(verdict.summary).toContain('2 of 3 rules failed');
    expect(verdict.summary).toContain('cost per 1M predictions: 1 -> 2 USD (+100.0%), limit +10.0%');
  });

  it('refuses a metric that does not improve enough, in either direction of "better"', () => {
    const strict = effectivePolicy(Task.REGRESSION, create(PromotionPolicySchema, { minImprovement: 0.05 }));
    expect(
      failedRules(evaluateGate(strict, version(1, { metric: 10 }), version(2, { metric: 9.8 }))),
    ).toEqual(['min_improvement']);
    expect(
      failedRules(evaluateGate(strict, version(1, { metric: 10 }), version(2, { metric: 9.4 }))),
    ).toEqual([]);

    const higher = effectivePolicy(
      Task.REGRESSION,
      create(PromotionPolicySchema, { primaryMetric: 'r2', direction: MetricDirection.HIGHER_IS_BETTER }),
    );
    const worse = evaluateGate(
      higher,
      version(1, { name: 'r2', metric: 0.8 }),
      version(2, { name: 'r2', metric: 0.7 }),
    );
    expect(failedRules(worse)).toEqual(['min_improvement']);
  });

  it('says a regression is worse, by how much, and names the rule that refused it', () => {
    // The demo's refusal once read "5.48309 -> 7.87467 (-43.6% better)" for a 43.6% regression.
    const verdict = evaluateGate(
      regression,
      version(1, { metric: 5.48309 }),
      version(2, { metric: 7.87467 }),
    );
    expect(verdict.passed).toBe(false);
    expect(verdict.rules[0]?.detail).toBe(
      'mae on holdout: 5.48309 -> 7.87467 (worse by 43.6%), required at least 0.0% better',
    );
    expect(verdict.summary).toContain('min_improvement: mae on holdout: 5.48309 -> 7.87467 (worse by 43.6%)');
    expect(verdict.summary).not.toContain('better)');
  });

  it('refuses a version that regresses one segment beyond the bound even when overall it improves', () => {
    const verdict = evaluateGate(
      regression,
      version(1, { metric: 10, segments: { 'warehouse_id=W1': 8, 'warehouse_id=W3': 9 } }),
      version(2, { metric: 9, segments: { 'warehouse_id=W1': 7, 'warehouse_id=W3': 9.9 } }),
    );
    expect(verdict.passed).toBe(false);
    const failed = verdict.rules.filter((r) => !r.passed);
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({ rule: 'max_segment_regression', segment: 'warehouse_id=W3' });
    expect(failed[0]?.detail).toContain(
      'mae in segment warehouse_id=W3: 9 -> 9.9 (worse by 10.0%), allowed at most 5.0% worse',
    );
  });

  it("compares production's score on the candidate's own holdout when the candidate carries it", () => {
    // After a shift the new holdout is harder: v2 scores 14 where v1 scored 10 on its old
    // holdout, but v1 scores 20 on v2's holdout, so v2 is the better model for today's data.
    const production = version(1, { metric: 10, segments: { 'warehouse_id=W4': 9 } });
    const candidate = version(2, { metric: 14, segments: { 'warehouse_id=W4': 15 } });
    expect(evaluateGate(regression, production, candidate).passed).toBe(false);
    candidate.metrics.push(
      create(MetricSchema, { name: 'mae', evalSet: baselineEvalSet('holdout', 1), value: 20 }),
      create(MetricSchema, {
        name: 'mae',
        evalSet: 'holdout@v1',
        segment: 'warehouse_id=W4',
        value: 30,
      }),
    );
    const verdict = evaluateGate(regression, production, candidate);
    expect(failedRules(verdict)).toEqual([]);
    expect(verdict.rules[0]).toMatchObject({ productionValue: 20, candidateValue: 14 });
    expect(verdict.rules[0]?.detail).toContain("mae on v2's holdout: 20 -> 14 (better by 30.0%)");
    expect(verdict.rules.at(-1)).toMatchObject({ segment: 'warehouse_id=W4', productionValue: 30 });
    // Scores on another production version's holdout are not this production's.
    candidate.metrics.splice(-2, 2, create(MetricSchema, { name: 'mae', evalSet: 'holdout@v7', value: 20 }));
    expect(evaluateGate(regression, production, candidate).passed).toBe(false);
  });

  it('refuses a candidate missing what the gate needs to judge it', () => {
    const bare = create(ModelVersionSchema, { version: 2, servingProfile: { latency: [] } });
    const verdict = evaluateGate(regression, version(1, { segments: { 'warehouse_id=W1': 8 } }), bare);
    expect(failedRules(verdict)).toEqual([
      'min_improvement',
      'max_p99_latency_increase',
      'max_cost_increase',
      'max_segment_regression',
    ]);
    expect(verdict.rules[0]?.detail).toBe('v2 has no mae on holdout');
  });

  it('judges latency at the batch size the policy names', () => {
    const policy = effectivePolicy(Task.REGRESSION, create(PromotionPolicySchema, { latencyBatchSize: 32 }));
    const verdict = evaluateGate(policy, version(1), version(2));
    expect(verdict.rules.find((r) => r.rule === 'max_p99_latency_increase')?.detail).toBe(
      'v2 has no p99 latency at batch 32',
    );
  });
});
