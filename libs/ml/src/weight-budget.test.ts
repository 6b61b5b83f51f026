import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { ArtifactError, type ArtifactFile, parseModelJson } from './artifact.js';
import { selectBackend } from './backend.js';
import { loadModelFromFiles, saveModelFiles } from './model-io.js';
import { decode, encode } from './test-support.js';
import { checkWeightBudget, DEFAULT_WEIGHT_BUDGET, weightBudgetFromEnv } from './weight-budget.js';

beforeAll(async () => {
  await selectBackend('cpu');
});

/** The bytes of weights a model really holds (float32). */
const weightBytes = (model: tf.LayersModel) => model.countParams() * 4;

/** A model's files with its weightsManifest emptied: only its topology tells its size. */
function topologyOnly(files: ArtifactFile[]): ArtifactFile[] {
  const json = decode(files[0]?.data as Uint8Array);
  json.weightsManifest = [{ paths: ['weights.bin'], weights: [] }];
  return [
    { path: 'model.json', data: encode(json) },
    { path: 'weights.bin', data: new Uint8Array(0) },
  ];
}

/** A Sequential model.json of one Dense layer, `inputs` x `units`, whose weights file declares 1 x 1. */
function hugeDense(inputs: number, units: number): ArtifactFile[] {
  const modelJson = {
    format: 'layers-model',
    modelTopology: {
      class_name: 'Sequential',
      config: {
        name: 'huge',
        layers: [
          {
            class_name: 'Dense',
            config: { name: 'dense_huge', units, batch_input_shape: [null, inputs], use_bias: true },
          },
        ],
      },
    },
    weightsManifest: [
      {
        paths: ['weights.bin'],
        weights: [
          { name: 'dense_huge/kernel', shape: [1, 1], dtype: 'float32' },
          { name: 'dense_huge/bias', shape: [1], dtype: 'float32' },
        ],
      },
    ],
  };
  return [
    { path: 'model.json', data: encode(modelJson) },
    { path: 'weights.bin', data: new Uint8Array(8) },
  ];
}

function refusal(run: () => unknown): ArtifactError {
  try {
    run();
  } catch (err) {
    if (err instanceof ArtifactError) return err;
    throw err;
  }
  throw new Error('expected an ArtifactError');
}

describe('the weight budget', () => {
  it("counts a layers model's parameters from its topology exactly (Dense, BatchNormalization, Embedding, LSTM, Conv1D)", async () => {
    const mlp = tf.sequential({
      layers: [
        tf.layers.dense({ inputShape: [3], units: 8, activation: 'relu' }),
        tf.layers.batchNormalization(),
        tf.layers.dense({ units: 4 }),
        tf.layers.dense({ units: 1 }),
      ],
    });
    const tokens = tf.input({ shape: [10] });
    const embedded = tf.layers.embedding({ inputDim: 50, outputDim: 6 }).apply(tokens) as tf.SymbolicTensor;
    const conv = tf.layers.conv1d({ filters: 5, kernelSize: 3 }).apply(embedded) as tf.SymbolicTensor;
    const lstm = tf.layers.lstm({ units: 7 }).apply(conv) as tf.SymbolicTensor;
    const functional = tf.model({
      inputs: tokens,
      outputs: tf.layers.dense({ units: 2 }).apply(lstm) as tf.SymbolicTensor,
    });
    for (const model of [mlp, functional]) {
      const files = topologyOnly(await saveModelFiles(model));
      const parsed = parseModelJson(files[0]?.data as Uint8Array);
      const bytes = weightBytes(model);
      expect(() => checkWeightBudget(parsed, { maxWeightBytes: bytes })).not.toThrow();
      const err = refusal(() => checkWeightBudget(parsed, { maxWeightBytes: bytes - 1 }));
      expect(err.rule).toBe('max-weight-bytes');
    }
  });

  it('refuses a Dense layer of 1e6 x 1e6 before tfjs allocates it, naming the layer and the bound', async () => {
    const files = hugeDense(1e6, 1e6);
    const err = await loadModelFromFiles(files).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ArtifactError);
    expect((err as ArtifactError).field).toBe('model.json.modelTopology.config.layers[0]');
    expect((err as ArtifactError).rule).toBe('max-weight-bytes');
    expect((err as ArtifactError).message).toContain(
      'layer "dense_huge" (Dense, 1.000e+12 parameters) and those before it would allocate 4.000e+12 bytes of weights, over the bound of 1073741824 bytes (BALLAST_MODEL_MAX_WEIGHT_BYTES)',
    );
    // The same layer within the budget loads (and fails on its 1 x 1 weights, as any mismatch does).
    const small = await loadModelFromFiles(hugeDense(4, 4)).then(
      () => 'loaded',
      (e: unknown) => (e instanceof ArtifactError ? e.rule : 'tfjs refused the weights'),
    );
    expect(small).not.toBe('max-weight-bytes');
  });

  it('refuses a weightsManifest that declares more bytes than the bound', () => {
    const json = {
      format: 'graph-model',
      modelTopology: { node: [] },
      weightsManifest: [
        {
          paths: ['weights.bin'],
          weights: [
            { name: 'small', shape: [10], dtype: 'float32' },
            { name: 'table', shape: [1e6, 1e6], dtype: 'float32' },
          ],
        },
      ],
    };
    const err = refusal(() => checkWeightBudget(parseModelJson(JSON.stringify(json)), DEFAULT_WEIGHT_BUDGET));
    expect(err.field).toBe('model.json.weightsManifest[0].weights[1]');
    expect(err.message).toContain('"table" [1000000, 1000000]');
    expect(err.message).toContain('over the bound of 1073741824 bytes (BALLAST_MODEL_MAX_WEIGHT_BYTES)');
  });

  it('reads BALLAST_MODEL_MAX_WEIGHT_BYTES, refusing what is not a positive integer', () => {
    expect(weightBudgetFromEnv({})).toEqual({ maxWeightBytes: 1024 ** 3 });
    expect(weightBudgetFromEnv({ BALLAST_MODEL_MAX_WEIGHT_BYTES: '4096' })).toEqual({ maxWeightBytes: 4096 });
    for (const bad of ['0', '-1', '1.5', 'lots'])
      expect(() => weightBudgetFromEnv({ BALLAST_MODEL_MAX_WEIGHT_BYTES: bad })).toThrow(
        /BALLAST_MODEL_MAX_WEIGHT_BYTES: must be a positive integer/,
      );
  });
});
