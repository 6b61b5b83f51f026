import { saveModelFiles, selectBackend } from '@ballast/ml';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DenseChain } from './dense-chain.js';
import { Executor } from './executor.js';

// The chain is checked against TensorFlow.js itself: the model worker (its wasm backend, as
// served) exports the layers, and its own predict on the same rows is the reference.
let executor: Executor;
let loads = 0;

beforeAll(async () => {
  await selectBackend('cpu');
  executor = await Executor.start('wasm');
});

afterAll(async () => {
  await executor?.close();
});

const ROWS = 33;

function rows(width: number): Float32Array {
  // Wide enough a range that every activation leaves its linear part (softplus, elu, sigmoid tails).
  return Float32Array.from({ length: ROWS * width }, (_, i) => Math.sin(i * 12.9898) * 6);
}

async function exportAndPredict(model: tf.LayersModel, width: number) {
  const key = `m${++loads}`;
  const loaded = await executor.load(key, await saveModelFiles(model));
  const input = rows(width);
  const reference = await executor.run(key, [{ shape: [ROWS, width], data: input.slice() }]);
  await executor.unload(key);
  return { dense: loaded.dense, input, expected: reference.outputs[0]?.data as Float32Array };
}

function dense(units: number, activation: string, seed: number, useBias = true) {
  return tf.layers.dense({
    units,
    activation: activation as 'relu',
    useBias,
    kernelInitializer: tf.initializers.glorotUniform({ seed }),
    biasInitializer: tf.initializers.randomUniform({ minval: -0.5, maxval: 0.5, seed: seed + 100 }),
  });
}

describe('DenseChain', () => {
  const activations = ['linear', 'relu', 'relu6', 'sigmoid', 'tanh', 'elu', 'selu', 'softplus', 'softmax'];

  it.each(activations)('answers as TensorFlow.js does with %s layers', async (activation) => {
    const input = tf.input({ shape: [5], name: 'features' });
    let x = dense(16, activation, 1).apply(input) as tf.SymbolicTensor;
    x = tf.layers.dropout({ rate: 0.3 }).apply(x) as tf.SymbolicTensor;
    x = dense(7, activation, 2, false).apply(x) as tf.SymbolicTensor;
    const output = dense(3, activation, 3).apply(x) as tf.SymbolicTensor;
    const {
      dense: layers,
      input: batch,
      expected,
    } = await exportAndPredict(tf.model({ inputs: input, outputs: output }), 5);
    expect(layers?.map((l) => [l.inputSize, l.units, l.activation, l.bias !== null])).toEqual([
      [5, 16, activation, true],
      [16, 7, activation, false],
      [7, 3, activation, true],
    ]);
    const chain = new DenseChain(layers ?? []);
    const actual = chain.run(batch, ROWS);
    expect(actual).toHaveLength(ROWS * 3);
    for (let i = 0; i < actual.length; i++) {
      expect(Math.abs((actual[i] as number) - (expected[i] as number))).toBeLessThan(
        1e-5 * Math.max(1, Math.abs(expected[i] as number)),
      );
    }
  });

  it('exports a Sequential model too', async () => {
    const model = tf.sequential({
      layers: [tf.layers.dense({ inputShape: [4], units: 6, activation: 'relu' }), dense(2, 'linear', 9)],
    });
    const { dense: layers, input, expected } = await exportAndPredict(model, 4);
    const actual = new DenseChain(layers ?? []).run(input, ROWS);
    for (let i = 0; i < actual.length; i++) expect(actual[i]).toBeCloseTo(expected[i] as number, 5);
  });

  it('exports nothing for a model that is not a plain chain of dense layers', async () => {
    // A branch (two dense layers read the input, then concatenated).
    const input = tf.input({ shape: [4] });
    const a = dense(3, 'relu', 4).apply(input) as tf.SymbolicTensor;
    const b = dense(3, 'relu', 5).apply(input) as tf.SymbolicTensor;
    const joined = tf.layers.concatenate().apply([a, b]) as tf.SymbolicTensor;
    const branched = tf.model({
      inputs: input,
      outputs: dense(1, 'linear', 6).apply(joined) as tf.SymbolicTensor,
    });
    expect((await exportAndPredict(branched, 4)).dense).toBeNull();
    // A layer that is not dense.
    const normalized = tf.sequential({
      layers: [
        tf.layers.dense({ inputShape: [4], units: 3 }),
        tf.layers.batchNormalization(),
        dense(1, 'linear', 7),
      ],
    });
    expect((await exportAndPredict(normalized, 4)).dense).toBeNull();
    // An activation the chain does not implement.
    const gelu = tf.sequential({
      layers: [tf.layers.dense({ inputShape: [4], units: 3, activation: 'softsign' })],
    });
    expect((await exportAndPredict(gelu, 4)).dense).toBeNull();
  });

  it('refuses layers that do not fit together, and input of the wrong size', () => {
    const layer = (inputSize: number, units: number) => ({
      inputSize,
      units,
      kernel: new Float32Array(inputSize * units),
      bias: null,
      activation: 'linear',
    });
    expect(() => new DenseChain([layer(3, 4), layer(5, 1)])).toThrow(
      /reads 5 values, the layer before gives 4/,
    );
    expect(() => new DenseChain([{ ...layer(3, 4), activation: 'gelu' }])).toThrow(/gelu is not supported/);
    expect(() => new DenseChain([layer(3, 4)]).run(new Float32Array(7), 2)).toThrow(/expected 2 x 3/);
  });
});
