/**
 * The model worker: its own TensorFlow.js, so that running a model never stalls the gRPC
 * event loop. It holds every loaded model by key and runs one batch at a time.
 */
import { parentPort } from 'node:worker_threads';
import {
  loadModelFromFiles,
  modelSignature,
  parseBackendPreference,
  selectBackend,
  type TfModel,
} from '@ballast/ml';
import * as tf from '@tensorflow/tfjs';
import type {
  DenseLayerData,
  OutputData,
  TensorData,
  WorkerRequest,
  WorkerResponse,
} from './executor-protocol.js';

const models = new Map<string, TfModel>();
const port = parentPort;
if (!port) throw new Error('executor-worker must run as a worker thread');

function model(key: string): TfModel {
  const found = models.get(key);
  if (!found) throw new Error(`model ${key} is not loaded in the worker`);
  return found;
}

function toTensor(input: TensorData): tf.Tensor {
  return tf.tensor(input.data, input.shape, input.data instanceof Int32Array ? 'int32' : 'float32');
}

async function run(key: string, inputs: TensorData[]): Promise<OutputData[]> {
  const m = model(key);
  const signature = modelSignature(m);
  const tensors = inputs.map(toTensor);
  try {
    const result = m.predict(tensors.length === 1 ? (tensors[0] as tf.Tensor) : tensors);
    const outputs = Array.isArray(result)
      ? result
      : result instanceof tf.Tensor
        ? [result]
        : Object.values(result);
    try {
      return await Promise.all(
        outputs.map(async (tensor, index) => {
          const raw = await tensor.data();
          const data =
            raw instanceof Int32Array
              ? raw
              : raw instanceof Float32Array
                ? raw
                : Float32Array.from(raw as ArrayLike<number>);
          return {
            name: signature.outputs[index]?.name ?? `output_${index}`,
            dtype: tensor.dtype,
            shape: tensor.shape,
            data,
          };
        }),
      );
    } finally {
      for (const tensor of outputs) tensor.dispose();
    }
  } finally {
    for (const tensor of tensors) tensor.dispose();
  }
}

/** Keras' activations that dense-chain.ts implements (kept here so the worker does not import it). */
const INLINE_ACTIVATIONS = new Set([
  'linear',
  'relu',
  'relu6',
  'sigmoid',
  'tanh',
  'elu',
  'selu',
  'softplus',
  'softmax',
]);

/**
 * The model's dense layers, when it is exactly a chain of them (dropout, an identity at
 * inference, may sit between) from one float32 [batch, n] input to its one output; null for
 * anything else (graph models, other layers, branches, other activations).
 */
function denseChain(m: TfModel): DenseLayerData[] | null {
  if (!(m instanceof tf.LayersModel) || m.inputs.length !== 1 || m.outputs.length !== 1) return null;
  const input = m.inputs[0] as tf.SymbolicTensor;
  if (input.shape.length !== 2 || input.dtype !== 'float32') return null;
  let current = input;
  const layers: DenseLayerData[] = [];
  for (const layer of m.layers) {
    const kind = layer.getClassName();
    if (kind === 'InputLayer') continue;
    // A chain: every layer reads exactly what the layer before it produced.
    if (layer.inboundNodes.length !== 1 || layer.input !== current) return null;
    current = layer.output as tf.SymbolicTensor;
    if (kind === 'Dropout') continue;
    if (kind !== 'Dense') return null;
    const activation = String(layer.getConfig().activation ?? 'linear');
    if (!INLINE_ACTIVATIONS.has(activation)) return null;
    const [kernel, bias] = layer.getWeights();
    if (kernel?.shape.length !== 2) return null;
    const [inputSize, units] = kernel.shape as [number, number];
    layers.push({
      inputSize,
      units,
      kernel: Float32Array.from(kernel.dataSync()),
      bias: bias ? Float32Array.from(bias.dataSync()) : null,
      activation,
    });
  }
  return current === m.outputs[0] && layers.length > 0 ? layers : null;
}

async function warmup(key: string, sizes: number[]): Promise<number> {
  const signature = modelSignature(model(key));
  for (const size of sizes) {
    const inputs = signature.inputs.map((spec) => {
      const shape = (spec.shape ?? [-1]).map((dim, i) => (i === 0 ? size : Math.max(dim, 1)));
      const count = shape.reduce((a, b) => a * b, 1);
      const data = spec.dtype === 'int32' ? new Int32Array(count) : new Float32Array(count);
      return { shape, data };
    });
    await run(key, inputs);
  }
  return sizes.length;
}

async function handle(message: WorkerRequest): Promise<unknown> {
  switch (message.op) {
    case 'init':
      return selectBackend(parseBackendPreference(message.backend));
    case 'load': {
      if (models.has(message.key)) throw new Error(`model ${message.key} is already loaded`);
      const loaded = await loadModelFromFiles(message.files);
      models.set(message.key, loaded);
      const metadata = loaded instanceof tf.LayersModel ? (loaded.getUserDefinedMetadata() ?? null) : null;
      return { signature: modelSignature(loaded), metadata, dense: denseChain(loaded) };
    }
    case 'warmup':
      return warmup(message.key, message.sizes);
    case 'run':
      return run(message.key, message.inputs);
    case 'unload': {
      models.get(message.key)?.dispose();
      return models.delete(message.key);
    }
    case 'memory':
      return { numTensors: tf.memory().numTensors, numBytes: tf.memory().numBytes, models: models.size };
  }
}

port.on('message', (message: WorkerRequest) => {
  const started = performance.now();
  handle(message).then(
    (result) => {
      const response: WorkerResponse = {
        id: message.id,
        ok: true,
        result,
        execUs: Math.round((performance.now() - started) * 1000),
      };
      const transfer =
        message.op === 'run' ? (result as OutputData[]).map((o) => o.data.buffer as ArrayBuffer) : [];
      port.postMessage(response, transfer);
    },
    (error: unknown) => {
      const response: WorkerResponse = {
        id: message.id,
        ok: false,
        error: error instanceof Error ? error.message : String(error),
      };
      port.postMessage(response);
    },
  );
});
