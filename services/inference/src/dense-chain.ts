import type { DenseLayerData } from './executor-protocol.js';

/**
 * A model that is a chain of dense layers (what the trainer builds: dense and dropout layers
 * on one float32 input), run on the event loop in plain JavaScript.
 *
 * Why: for a small model, TensorFlow.js's fixed cost per predict (tensors made, tracked and
 * disposed, a kernel lookup per op: about 250 us on the model worker here, profiled) and the
 * hop to the worker and back dwarf the arithmetic. 32 -> 64 -> 1 is 2,112 multiply-adds a row,
 * a few microseconds. The pool runs a chain inline only when a whole max-size batch costs less
 * than a bound (model-pool.ts), and only after its answers matched the worker's TensorFlow.js
 * on the same inputs; anything else runs on the worker as before.
 */
export class DenseChain {
  readonly inputSize: number;
  readonly outputSize: number;
  /** Per layer: its kernel transposed to [units][inputSize], so a row's dot product reads contiguous memory. */
  readonly #layers: {
    inputSize: number;
    units: number;
    weights: Float32Array;
    bias: Float32Array | null;
    activation: Activation;
  }[];

  constructor(layers: DenseLayerData[]) {
    if (layers.length === 0) throw new Error('a dense chain needs at least one layer');
    this.#layers = layers.map((layer, index) => {
      const previous = layers[index - 1];
      if (previous && previous.units !== layer.inputSize) {
        throw new Error(
          `layer ${index} reads ${layer.inputSize} values, the layer before gives ${previous.units}`,
        );
      }
      if (layer.kernel.length !== layer.inputSize * layer.units)
        throw new Error(
          `layer ${index}: kernel of ${layer.kernel.length} values is not ${layer.inputSize}x${layer.units}`,
        );
      if (layer.bias && layer.bias.length !== layer.units)
        throw new Error(`layer ${index}: bias of ${layer.bias.length} values for ${layer.units} units`);
      const activation = ACTIVATIONS[layer.activation];
      if (!activation)
        throw new Error(`layer ${index}: activation ${layer.activation} is not supported inline`);
      const weights = new Float32Array(layer.kernel.length);
      for (let i = 0; i < layer.inputSize; i++) {
        for (let u = 0; u < layer.units; u++)
          weights[u * layer.inputSize + i] = layer.kernel[i * layer.units + u] as number;
      }
      return { inputSize: layer.inputSize, units: layer.units, weights, bias: layer.bias, activation };
    });
    this.inputSize = (layers[0] as DenseLayerData).inputSize;
    this.outputSize = (layers.at(-1) as DenseLayerData).units;
  }

  /** Multiply-adds a row costs through these layers (what a chain's time grows with). */
  static multiplyAddsPerRow(layers: readonly DenseLayerData[]): number {
    return layers.reduce((sum, layer) => sum + layer.inputSize * layer.units, 0);
  }

  /** Whether an activation (Keras' name, as a dense layer's config gives it) can run inline. */
  static supports(activation: string): boolean {
    return Object.hasOwn(ACTIVATIONS, activation);
  }

  /** `rows` rows of `inputSize` values in, `rows` rows of `outputSize` values out. */
  run(input: Float32Array, rows: number): Float32Array {
    if (input.length !== rows * this.inputSize)
      throw new Error(`expected ${rows} x ${this.inputSize} input values, got ${input.length}`);
    let x = input;
    for (const layer of this.#layers) {
      const { inputSize, units, weights, bias } = layer;
      const y = new Float32Array(rows * units);
      for (let r = 0; r < rows; r++) {
        const xOffset = r * inputSize;
        const yOffset = r * units;
        for (let u = 0; u < units; u++) {
          const wOffset = u * inputSize;
          let sum = bias === null ? 0 : (bias[u] as number);
          for (let i = 0; i < inputSize; i++)
            sum += (x[xOffset + i] as number) * (weights[wOffset + i] as number);
          y[yOffset + u] = sum;
        }
        layer.activation(y, yOffset, units);
      }
      x = y;
    }
    return x;
  }
}

/** Applies an activation in place to `length` values of one row from `offset`. */
type Activation = (values: Float32Array, offset: number, length: number) => void;

const elementwise =
  (f: (x: number) => number): Activation =>
  (values, offset, length) => {
    for (let i = offset; i < offset + length; i++) values[i] = f(values[i] as number);
  };

// Keras' constants for selu.
const SELU_ALPHA = 1.6732632423543772;
const SELU_SCALE = 1.0507009873554805;

const ACTIVATIONS: Record<string, Activation> = {
  linear: () => {},
  relu: elementwise((x) => Math.max(x, 0)),
  relu6: elementwise((x) => (x > 0 ? Math.min(x, 6) : 0)),
  sigmoid: elementwise((x) => 1 / (1 + Math.exp(-x))),
  tanh: elementwise(Math.tanh),
  elu: elementwise((x) => (x > 0 ? x : Math.expm1(x))),
  selu: elementwise((x) => SELU_SCALE * (x > 0 ? x : SELU_ALPHA * Math.expm1(x))),
  // log(1 + e^x) without overflow for large x.
  softplus: elementwise((x) => (x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x)))),
  softmax: (values, offset, length) => {
    let max = Number.NEGATIVE_INFINITY;
    for (let i = offset; i < offset + length; i++) max = Math.max(max, values[i] as number);
    let sum = 0;
    for (let i = offset; i < offset + length; i++) {
      const e = Math.exp((values[i] as number) - max);
      values[i] = e;
      sum += e;
    }
    for (let i = offset; i < offset + length; i++) values[i] = (values[i] as number) / sum;
  },
};
