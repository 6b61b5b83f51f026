/** Fixtures shared by this package's tests (excluded from the build by its name). */
import * as tf from '@tensorflow/tfjs';
import type { ArtifactFile } from './artifact.js';

export interface TabularData {
  features: number[][];
  /** 3*x0 + 0.02*(x1 - 50) - 100*x2: a linear target over features of very different scales. */
  regression: number[];
  /** 1 where x0 + (x1 - 50) / 100 > 0, else 0. */
  classes: number[];
}

/** Reproducible rows of three features on different scales (so standardising matters). */
export function tabularData(rows: number, seed: number): TabularData {
  const random = tf.randomUniform([rows, 3], -1, 1, 'float32', seed);
  const values = random.dataSync();
  random.dispose();
  const features = Array.from({ length: rows }, (_, row) => {
    const [a = 0, b = 0, c = 0] = values.subarray(row * 3, row * 3 + 3);
    return [a, b * 100 + 50, c * 0.01];
  });
  return {
    features,
    regression: features.map(([x0 = 0, x1 = 0, x2 = 0]) => 3 * x0 + 0.02 * (x1 - 50) - 100 * x2),
    classes: features.map(([x0 = 0, x1 = 0]) => (x0 + (x1 - 50) / 100 > 0 ? 1 : 0)),
  };
}

export const encode = (value: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(value));
export const decode = (data: Uint8Array): Record<string, unknown> =>
  JSON.parse(new TextDecoder().decode(data));

/**
 * A graph model as tensorflowjs_converter writes one (format `graph-model`, a GraphDef as
 * JSON, a weights group of shards), computing y = x · [[2], [3]] for x of shape [-1, 2].
 * It sits in a `tfjs/` folder to exercise weight paths relative to model.json.
 */
export function graphModelFiles(): ArtifactFile[] {
  const float = { type: 'DT_FLOAT' };
  const modelJson = {
    format: 'graph-model',
    generatedBy: '2.15.0',
    convertedBy: 'TensorFlow.js Converter v4.22.0',
    modelTopology: {
      node: [
        {
          name: 'x',
          op: 'Placeholder',
          attr: { dtype: float, shape: { shape: { dim: [{ size: '-1' }, { size: '2' }] } } },
        },
        {
          name: 'w',
          op: 'Const',
          attr: {
            dtype: float,
            value: { tensor: { dtype: 'DT_FLOAT', tensorShape: { dim: [{ size: '2' }, { size: '1' }] } } },
          },
        },
        {
          name: 'MatMul',
          op: 'MatMul',
          input: ['x', 'w'],
          attr: { T: float, transpose_a: { b: false }, transpose_b: { b: false } },
        },
        { name: 'Identity', op: 'Identity', input: ['MatMul'], attr: { T: float } },
      ],
      library: {},
      versions: { producer: 1286 },
    },
    weightsManifest: [
      { paths: ['group1-shard1of1.bin'], weights: [{ name: 'w', shape: [2, 1], dtype: 'float32' }] },
    ],
  };
  return [
    { path: 'tfjs/model.json', data: encode(modelJson) },
    { path: 'tfjs/group1-shard1of1.bin', data: new Uint8Array(new Float32Array([2, 3]).buffer) },
  ];
}

/** The bytes of a tensor's values, for bit-for-bit comparisons. */
export function bytesOf(tensor: tf.Tensor): Uint8Array {
  const values = tensor.dataSync();
  return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
}
