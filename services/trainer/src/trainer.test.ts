import { selectBackend } from '@ballast/ml';
import * as tf from '@tensorflow/tfjs';
import { UnrecoverableError } from 'bullmq';
import { beforeAll, describe, expect, it } from 'vitest';
import { evaluate } from './evaluate.js';
import { costPerMillion, measureLatency } from './profile.js';
import { canonicalSpec, specFromHyperparameters, specHyperparameters } from './spec.js';

beforeAll(async () => {
  await selectBackend('wasm');
});

/** y = 2x: a one-weight model whose predictions are known exactly. */
function doubling(): tf.LayersModel {
  const model = tf.sequential({ layers: [tf.layers.dense({ units: 1, inputShape: [1], useBias: false })] });
  model.setWeights([tf.tensor2d([[2]])]);
  return model;
}

describe('trainer', () => {
  it('records a spec in the lineage and reads the same spec back', () => {
    const spec = {
      hiddenUnits: [16, 8],
      activation: 'tanh' as const,
      epochs: 5,
      batchSize: 32,
      learningRate: 0.01,
      seed: 3,
    };
    const hyperparameters = specHyperparameters(spec);
    expect(hyperparameters).toMatchObject({
      hidden_units: '16,8',
      activation: 'tanh',
      epochs: '5',
      early_stopping: 'off',
    });
    expect(specFromHyperparameters(hyperparameters)).toEqual(spec);
    const { seed, ...rest } = spec;
    expect(canonicalSpec({ seed, ...rest })).toBe(canonicalSpec(spec));
    expect(specFromHyperparameters({})).toBeUndefined();
    expect(() => specFromHyperparameters({ spec: '{"hiddenUnits":[0]}' })).toThrow(UnrecoverableError);
  });

  it('evaluates overall and per segment', () => {
    const model = doubling();
    const metrics = evaluate(model, 'regression', {
      features: Float32Array.from([1, 2, 3, 4]),
      labels: Float32Array.from([2, 4, 7, 5]), // errors 0, 0, -1, +3
      segments: ['w=A', 'w=A', 'w=B', 'w=B'],
      rows: 4,
      width: 1,
    });
    const value = (name: string, segment: string) =>
      metrics.find((m) => m.name === name && m.segment === segment)?.value;
    expect(value('mae', '')).toBe(1);
    expect(value('mae', 'w=A')).toBe(0);
    expect(value('mae', 'w=B')).toBe(2);
    expect(value('rmse', 'w=B')).toBeCloseTo(Math.sqrt(5));
    expect(metrics.every((m) => m.evalSet === 'holdout')).toBe(true);
    model.dispose();
  });

  it('profiles latency per batch size and prices a million predictions from it', () => {
    const model = doubling();
    const latency = measureLatency(model, 1, { minRuns: 10, budgetMs: 20 });
    expect(latency.map((p) => p.batchSize)).toEqual([1, 32, 256]);
    for (const point of latency) expect(point.p99Ms).toBeGreaterThanOrEqual(point.p50Ms);
    // 2.56 ms per 256 rows = 0.01 ms per prediction: 10 s for a million = 0.00278 h, at 0.05 per hour.
    expect(costPerMillion([{ batchSize: 256, p50Ms: 2.56, p99Ms: 3 }], 0.05)).toBeCloseTo(0.000139, 6);
    expect(costPerMillion([{ batchSize: 256, p50Ms: 0, p99Ms: 0 }], 0.05)).toBeGreaterThan(0);
    model.dispose();
  });
});
