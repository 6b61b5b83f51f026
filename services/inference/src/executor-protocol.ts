/** Messages between the main thread and the model worker (executor-worker.ts). */
import type { ModelSignature } from '@ballast/ml';

export type NumericArray = Float32Array | Int32Array;

export interface TensorData {
  shape: number[];
  data: NumericArray;
}

export interface OutputData extends TensorData {
  name: string;
  dtype: string;
}

/** One dense layer of a model that is a chain of them (dense-chain.ts runs it inline). */
export interface DenseLayerData {
  inputSize: number;
  units: number;
  /** [inputSize, units], row-major, as TensorFlow.js holds it. */
  kernel: Float32Array;
  bias: Float32Array | null;
  /** Keras' name: linear, relu, sigmoid, softmax, ... */
  activation: string;
}

export interface LoadResult {
  signature: ModelSignature;
  /** model.json userDefinedMetadata (layers models), for feature names. */
  metadata: unknown;
  /** The layers, when the model is a chain of dense (and dropout) layers on one float32 input. */
  dense: DenseLayerData[] | null;
}

export type WorkerRequest =
  | { id: number; op: 'init'; backend: string }
  | { id: number; op: 'load'; key: string; files: { path: string; data: Uint8Array }[] }
  | { id: number; op: 'warmup'; key: string; sizes: number[] }
  | { id: number; op: 'run'; key: string; inputs: TensorData[] }
  | { id: number; op: 'unload'; key: string }
  | { id: number; op: 'memory' };

export type WorkerResponse =
  | { id: number; ok: true; result: unknown; execUs?: number }
  | { id: number; ok: false; error: string };
