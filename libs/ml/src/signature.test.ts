import { beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from './backend.js';
import { loadModelFromFiles, saveModelFiles } from './model-io.js';
import { modelSignature } from './signature.js';
import { graphModelFiles, tabularData } from './test-support.js';
import { trainTabularModel } from './train.js';

const data = tabularData(32, 11);
const options = {
  features: data.features,
  hiddenUnits: [4],
  epochs: 1,
  batchSize: 16,
  learningRate: 0.01,
  seed: 1,
};

beforeAll(async () => {
  await selectBackend('auto');
});

describe('modelSignature', () => {
  it('lists a regression model: [-1, features] in, [-1, 1] out, named after the layers', async () => {
    const { model } = await trainTabularModel({ ...options, labels: data.regression, task: 'regression' });
    const signature = modelSignature(model);
    expect(signature).toEqual({
      inputs: [{ name: 'features', dtype: 'float32', shape: [-1, 3] }],
      outputs: [{ name: 'prediction', dtype: 'float32', shape: [-1, 1] }],
    });
    // Names come from the layers, so a reloaded model reports the same signature.
    expect(modelSignature(await loadModelFromFiles(await saveModelFiles(model)))).toEqual(signature);
  });

  it('lists one probability per class for a classifier', async () => {
    const features = data.features.map((row) => [...row, row[0]! * 2, 1]);
    const { model } = await trainTabularModel({
      ...options,
      features,
      labels: data.classes,
      task: 'classification',
      numClasses: 4,
    });
    expect(modelSignature(model)).toEqual({
      inputs: [{ name: 'features', dtype: 'float32', shape: [-1, 5] }],
      outputs: [{ name: 'prediction', dtype: 'float32', shape: [-1, 4] }],
    });
  });

  it('lists a graph model by node names, with null where the graph does not say', async () => {
    expect(modelSignature(await loadModelFromFiles(graphModelFiles()))).toEqual({
      inputs: [{ name: 'x', dtype: 'float32', shape: [-1, 2] }],
      outputs: [{ name: 'Identity', dtype: null, shape: null }],
    });
  });
});
