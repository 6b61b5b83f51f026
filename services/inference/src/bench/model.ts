import * as tf from '@tensorflow/tfjs';

/** The benchmark's model: a tabular MLP, `features` [batch, FEATURES] -> `prediction` [batch, 1], seeded. */
export const FEATURES = 32;
export const HIDDEN = (process.env.BENCH_HIDDEN ?? '1024,1024').split(',').map(Number);

export function benchModel(hidden = HIDDEN): tf.LayersModel {
  const input = tf.input({ shape: [FEATURES], name: 'features' });
  let x: tf.SymbolicTensor = input;
  hidden.forEach((units, i) => {
    x = tf.layers
      .dense({
        units,
        activation: 'relu',
        kernelInitializer: tf.initializers.glorotUniform({ seed: 10 + i }),
      })
      .apply(x) as tf.SymbolicTensor;
  });
  const out = tf.layers
    .dense({ units: 1, name: 'prediction', kernelInitializer: tf.initializers.glorotUniform({ seed: 99 }) })
    .apply(x) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: out });
}

export const ROW = Array.from({ length: FEATURES }, (_, i) => (i % 7) / 7);
