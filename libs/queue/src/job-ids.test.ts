import { describe, expect, it } from 'vitest';
import { canonicalJson, trainingJobId } from './job-ids.js';

describe('trainingJobId', () => {
  const spec = { hiddenUnits: [16], epochs: 10, batchSize: 32, learningRate: 0.01, seed: 1 };

  it('is the same for the same work, whoever asks and in whatever key order', () => {
    const a = trainingJobId({ model: 'demand', reason: 'cli', requestedBy: 'ana', featureView: 'v', spec });
    const b = trainingJobId({
      spec: { seed: 1, learningRate: 0.01, batchSize: 32, epochs: 10, hiddenUnits: [16] },
      featureView: 'v',
      reason: 'drift',
      model: 'demand',
    });
    expect(a).toBe(b);
    expect(a).toMatch(/^train-[0-9a-f]{32}$/);
  });

  it('differs when anything that changes the result differs', () => {
    const base = { model: 'demand', reason: 'cli', spec };
    const id = trainingJobId(base);
    expect(trainingJobId({ ...base, spec: { ...spec, seed: 2 } })).not.toBe(id);
    expect(trainingJobId({ ...base, datasetVersion: 'abc' })).not.toBe(id);
    expect(trainingJobId({ ...base, promote: true })).not.toBe(id);
  });

  it('writes canonical JSON with sorted keys and no undefined entries', () => {
    expect(canonicalJson({ b: 1, a: { d: [2, { f: 1, e: 0 }], c: undefined } })).toBe(
      '{"a":{"d":[2,{"e":0,"f":1}]},"b":1}',
    );
  });
});
