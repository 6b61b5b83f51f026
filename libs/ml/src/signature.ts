/**
 * A model's inputs and outputs, as inference reports them in its metadata (KServe v2
 * `ModelMetadata`) and checks requests against.
 */
import * as tf from '@tensorflow/tfjs';
import type { TfModel } from './model-io.js';

export interface TensorSpec {
  name: string;
  /** tfjs dtype (`float32`, `int32`, ...); null when a graph model does not declare it. */
  dtype: tf.DataType | null;
  /** -1 for a dimension of any size (usually the batch); null when even the rank is unknown. */
  shape: number[] | null;
}

export interface ModelSignature {
  inputs: TensorSpec[];
  outputs: TensorSpec[];
}

const dims = (shape: readonly (number | null)[] | undefined): number[] | null =>
  shape === undefined ? null : shape.map((dim) => (dim === null || dim < 0 ? -1 : dim));

/**
 * Lists a model's inputs and outputs. A layers model's tensors are named after their
 * layers (`features`, `prediction`): the symbolic tensor names carry a per-process counter
 * that changes when the model is loaded again. A graph model's are its graph node names
 * (or its SavedModel signature's keys, when the converter kept one).
 */
export function modelSignature(model: TfModel): ModelSignature {
  if (model instanceof tf.LayersModel) {
    const spec = (tensors: tf.SymbolicTensor[], names: string[]) =>
      tensors.map((tensor, index) => ({
        name: names[index] ?? tensor.name,
        dtype: tensor.dtype,
        shape: dims(tensor.shape),
      }));
    return { inputs: spec(model.inputs, model.inputNames), outputs: spec(model.outputs, model.outputNames) };
  }
  // Typed as optional: tfjs declares dtype and shape, but a graph without a signature
  // leaves both undefined for outputs.
  const spec = (tensors: readonly { name: string; dtype?: tf.DataType; shape?: number[] }[]) =>
    tensors.map((tensor) => ({ name: tensor.name, dtype: tensor.dtype ?? null, shape: dims(tensor.shape) }));
  return { inputs: spec(model.inputs), outputs: spec(model.outputs) };
}
