import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { artifactManifest } from './artifact.js';
import { selectBackend } from './backend.js';
import { saveModelFiles } from './model-io.js';
import { bytesOf, tabularData } from './test-support.js';
import { TrainingInputError, type TrainTabularOptions, trainTabularModel } from './train.js';

const data = tabularData(192, 7);

const regression = (overrides: Partial<TrainTabularOptions> = {}): TrainTabularOptions => ({
  features: data.features,
  labels: data.regression,
  task: 'regression',
  hiddenUnits: [8],
  epochs: 4,
  batchSize: 32,
  learningRate: 0.01,
  seed: 42,
  ...overrides,
});

/** Every weight's bytes, by weight name (`hidden_1/kernel`, ...). */
const weightBytes = (model: tf.LayersModel) =>
  Object.fromEntries(model.weights.map((weight) => [weight.originalName, bytesOf(weight.read())]));

describe.each(['wasm', 'cpu'] as const)('trainTabularModel on %s', (backend) => {
  beforeAll(async () => {
    await selectBackend(backend);
  });

  it('gives bit-identical weights, history and artifact for the same seed', async () => {
    const [first, second] = [await trainTabularModel(regression()), await trainTabularModel(regression())];
    expect(weightBytes(second.model)).toEqual(weightBytes(first.model));
    expect(second.history).toEqual(first.history);
    const digest = async (model: tf.LayersModel) => artifactManifest(await saveModelFiles(model)).digest;
    expect(await digest(second.model)).toBe(await digest(first.model));
  });

  it('stays bit-identical with seeded dropout and another activation', async () => {
    const options = regression({ hiddenUnits: [8, 8], activation: 'tanh', dropout: 0.2 });
    const [first, second] = [await trainTabularModel(options), await trainTabularModel(options)];
    expect(weightBytes(second.model)).toEqual(weightBytes(first.model));
    const relu = await trainTabularModel(regression({ hiddenUnits: [8, 8] }));
    expect(weightBytes(relu.model)['hidden_2/kernel']).not.toEqual(
      weightBytes(first.model)['hidden_2/kernel'],
    );
  });

  it('gives different weights for a different seed', async () => {
    const [first, second] = [
      await trainTabularModel(regression()),
      await trainTabularModel(regression({ seed: 43 })),
    ];
    const [a, b] = [weightBytes(first.model), weightBytes(second.model)];
    expect(Object.keys(a).sort()).toEqual([
      'hidden_1/bias',
      'hidden_1/kernel',
      'prediction/bias',
      'prediction/kernel',
      'standardize/bias',
      'standardize/kernel',
    ]);
    // The standardising layer depends on the data only; every trained weight must differ.
    for (const name of ['standardize/kernel', 'standardize/bias']) expect(b[name]).toEqual(a[name]);
    for (const name of ['hidden_1/kernel', 'hidden_1/bias', 'prediction/kernel', 'prediction/bias']) {
      expect(b[name]).not.toEqual(a[name]);
    }
  });
});

describe('trainTabularModel', () => {
  beforeAll(async () => {
    await selectBackend('auto');
  });

  it('learns a regression target, reporting every epoch', async () => {
    const seen: number[] = [];
    const trained = await trainTabularModel(
      regression({
        epochs: 30,
        hiddenUnits: [16],
        learningRate: 0.03,
        onEpochEnd: ({ epoch }) => void seen.push(epoch),
      }),
    );
    expect(seen).toEqual(Array.from({ length: 30 }, (_, epoch) => epoch));
    expect(trained.history.map((entry) => entry.epoch)).toEqual(seen);
    const [first, last] = [trained.history[0]!.loss, trained.history.at(-1)!.loss];
    expect(last).toBeLessThan(first / 10);
    expect(trained.numClasses).toBeNull();
    expect(trained.featureCount).toBe(3);
  });

  it('learns a classification target, with accuracy per epoch', async () => {
    const trained = await trainTabularModel(
      regression({ task: 'classification', labels: data.classes, epochs: 30, learningRate: 0.03 }),
    );
    expect(trained.numClasses).toBe(2);
    expect(trained.history.at(-1)!.accuracy).toBeGreaterThan(0.9);
    const probabilities = tf.tidy(() =>
      (trained.model.predict(tf.tensor2d(data.features)) as tf.Tensor).arraySync(),
    );
    const predicted = (probabilities as number[][]).map((row) => (row[1]! > row[0]! ? 1 : 0));
    const correct = predicted.filter((label, index) => label === data.classes[index]).length;
    expect(correct / data.classes.length).toBeGreaterThan(0.9);
  });

  it('reports the validation loss and stops early once it stops improving', async () => {
    const validation = { features: data.features.slice(0, 48), labels: data.regression.slice(0, 48) };
    const watched = await trainTabularModel(regression({ epochs: 200, learningRate: 0.05, validation }));
    expect(watched.history).toHaveLength(200);
    expect(watched.history.every((h) => Number.isFinite(h.valLoss))).toBe(true);
    const stopped = await trainTabularModel(
      regression({
        epochs: 200,
        learningRate: 0.05,
        validation,
        earlyStopping: { patience: 2, minDelta: 0.01 },
      }),
    );
    expect(stopped.history.length).toBeLessThan(200);
    // It stopped because the last `patience` epochs did not beat the best before them.
    const losses = stopped.history.map((h) => h.valLoss ?? Number.NaN);
    const bestBefore = Math.min(...losses.slice(0, -2));
    expect(Math.min(...losses.slice(-2))).toBeGreaterThanOrEqual(bestBefore - 0.01);
    await expect(trainTabularModel(regression({ earlyStopping: { patience: 2 } }))).rejects.toThrow(
      'earlyStopping: needs validation rows to watch',
    );
  });

  it('returns the normalisation stats and applies them inside the model', async () => {
    const features = [
      [1, 10, -4],
      [3, 10, 0],
      [5, 10, 4],
    ];
    const trained = await trainTabularModel(regression({ features, labels: [1, 2, 3], epochs: 1 }));
    expect(trained.normalization.mean).toEqual([3, 10, 0]);
    // Population standard deviations; the constant column gets 1 so it is only centred.
    expect(trained.normalization.std.map((std) => std.toFixed(6))).toEqual([
      Math.sqrt(8 / 3).toFixed(6),
      '1.000000',
      Math.sqrt(32 / 3).toFixed(6),
    ]);
    const standardize = tf.model({
      inputs: trained.model.inputs,
      outputs: trained.model.getLayer('standardize').output,
    });
    const scaled = tf.tidy(() =>
      (standardize.predict(tf.tensor2d(features)) as tf.Tensor).arraySync(),
    ) as number[][];
    const expected = [-Math.sqrt(1.5), 0, -Math.sqrt(1.5), 0, 0, 0, Math.sqrt(1.5), 0, Math.sqrt(1.5)];
    // Measured after an epoch of training: the frozen layer has not moved.
    for (const [index, value] of scaled.flat().entries()) expect(value).toBeCloseTo(expected[index]!, 5);
    expect(trained.model.getLayer('standardize').trainable).toBe(false);
  });

  it('treats a row-major Float32Array like the same rows as arrays', async () => {
    const flat = Float32Array.from(data.features.flat());
    const [fromRows, fromFlat] = [
      await trainTabularModel(regression()),
      await trainTabularModel(regression({ features: flat, featureCount: 3 })),
    ];
    expect(weightBytes(fromFlat.model)).toEqual(weightBytes(fromRows.model));
  });

  it.each([
    ['labels of another length', 'labels', { labels: [1, 2] }],
    ['a Float32Array without featureCount', 'featureCount', { features: new Float32Array(6) }],
    ['a ragged Float32Array', 'features', { features: new Float32Array(7), featureCount: 3 }],
    [
      'ragged rows',
      'features[1]',
      {
        features: [
          [1, 2, 3],
          [4, 5],
        ],
        labels: [1, 2],
      },
    ],
    ['a NaN feature', 'features[0][1]', { features: [[1, Number.NaN, 3]], labels: [1] }],
    ['no rows', 'features[0].length', { features: [], labels: [] }],
    ['fractional classes', 'labels[1]', { task: 'classification', features: [[1], [2]], labels: [0, 1.5] }],
    [
      'a class beyond numClasses',
      'labels[1]',
      { task: 'classification', features: [[1], [2]], labels: [0, 2], numClasses: 2 },
    ],
    ['a single class', 'numClasses', { task: 'classification', labels: data.classes, numClasses: 1 }],
    ['a zero-width layer', 'hiddenUnits[1]', { hiddenUnits: [8, 0] }],
    ['zero epochs', 'epochs', { epochs: 0 }],
    ['a fractional batch size', 'batchSize', { batchSize: 2.5 }],
    ['a zero learning rate', 'learningRate', { learningRate: 0 }],
    ['a negative seed', 'seed', { seed: -1 }],
  ] as [string, string, Partial<TrainTabularOptions>][])(
    'refuses %s, naming %s',
    async (_, field, overrides) => {
      const training = trainTabularModel(regression(overrides));
      await expect(training).rejects.toBeInstanceOf(TrainingInputError);
      await expect(training).rejects.toMatchObject({ field });
    },
  );
});
