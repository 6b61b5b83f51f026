/**
 * The weight budget: how many bytes of weights a model.json may make TensorFlow.js allocate,
 * checked on the JSON alone, before tfjs builds a layer. tfjs creates every layer's weights
 * (kernel initialisers included) before it compares them with the weight files, so a
 * model.json whose Dense layer has a million units after another of a million allocates
 * 4 TB whatever weights.bin holds: the process dies of memory, with every model it served.
 * The budget counts what the weightsManifest declares and what the layers' configurations
 * imply (shapes propagated through the topology), and refuses the larger over the bound.
 */
import { ArtifactError } from './artifact-error.js';

/** Bytes per element of each fixed-size weight dtype. */
export const BYTES_PER_ELEMENT: Readonly<Record<string, number>> = {
  float32: 4,
  int32: 4,
  bool: 1,
  complex64: 8,
  float16: 2,
  uint16: 2,
  uint8: 1,
};

/** What the budget reads of a parsed model.json (artifact.ts's ParsedModelJson). */
export interface BudgetedModel {
  format: string;
  json: {
    modelTopology: Record<string, unknown>;
    weightsManifest: Array<{
      weights: Array<{ name: string; shape: number[]; dtype: string; quantization?: { dtype: string } }>;
    }>;
  };
}

export interface WeightBudget {
  /** Bytes of weights one model may declare or imply (float32: 4 per parameter). */
  maxWeightBytes: number;
}

/** 1 GiB: 268 million float32 parameters, far above Ballast's tabular models. */
export const DEFAULT_WEIGHT_BUDGET: WeightBudget = { maxWeightBytes: 1024 ** 3 };

export const WEIGHT_BUDGET_ENV = 'BALLAST_MODEL_MAX_WEIGHT_BYTES';

/** The budget from BALLAST_MODEL_MAX_WEIGHT_BYTES (a positive integer), else the default. */
export function weightBudgetFromEnv(env: NodeJS.ProcessEnv = process.env): WeightBudget {
  const raw = env[WEIGHT_BUDGET_ENV];
  if (raw === undefined || raw === '') return DEFAULT_WEIGHT_BUDGET;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value <= 0)
    throw new Error(
      `${WEIGHT_BUDGET_ENV}: must be a positive integer number of bytes, got ${JSON.stringify(raw)}`,
    );
  return { maxWeightBytes: value };
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : 1);
const dims = (v: unknown): number[] =>
  Array.isArray(v) ? v.map(num) : typeof v === 'number' ? [num(v)] : [];
const product = (values: number[]) => values.reduce((p, d) => p * d, 1);

/** Parameters a layer creates for an input of `width` features, and the width it outputs. */
function layerParams(className: string, config: Json, width: number): { params: number; width: number } {
  const units = num(config.units);
  switch (className) {
    case 'Dense':
      return { params: width * units + units, width: units };
    case 'Embedding':
      return { params: num(config.input_dim) * num(config.output_dim), width: num(config.output_dim) };
    case 'Conv1D':
    case 'Conv2D':
    case 'Conv3D':
    case 'Conv2DTranspose':
    case 'SeparableConv2D':
    case 'DepthwiseConv2D': {
      const filters =
        className === 'DepthwiseConv2D' ? width * num(config.depth_multiplier) : num(config.filters);
      return { params: product(dims(config.kernel_size)) * width * filters + filters, width: filters };
    }
    case 'SimpleRNN':
    case 'GRU':
    case 'LSTM': {
      const gates = className === 'LSTM' ? 4 : className === 'GRU' ? 3 : 1;
      return { params: gates * (width * units + units * units + units), width: units };
    }
    case 'BatchNormalization':
      return { params: 4 * width, width };
    case 'LayerNormalization':
      return { params: 2 * width, width };
    default:
      return { params: 0, width };
  }
}

interface LayerEstimate {
  field: string;
  name: string;
  className: string;
  params: number;
}

/**
 * Walks a Keras topology (Sequential or functional, nested models included): each layer's
 * parameters from its config and the width of its input, the first inbound layer's output
 * (the previous layer's in a Sequential), or the declared input shape's last dimension.
 */
function estimateLayers(node: unknown, field: string, inputWidth: number, out: LayerEstimate[]): number {
  if (!isObject(node)) return inputWidth;
  const className = typeof node.class_name === 'string' ? node.class_name : '';
  const config = isObject(node.config) ? node.config : {};
  // Keras 1's Sequential keeps its layers as `config` itself.
  const layers = Array.isArray(config.layers)
    ? config.layers
    : Array.isArray(node.config)
      ? node.config
      : undefined;
  if (layers) {
    const widths = new Map<string, number>();
    let width = inputWidth;
    layers.forEach((layer: unknown, i) => {
      const layerConfig = isObject(layer) && isObject(layer.config) ? layer.config : {};
      const inbound = isObject(layer) ? firstInbound(layer.inbound_nodes) : undefined;
      const from = inbound !== undefined ? (widths.get(inbound) ?? width) : width;
      width = estimateLayers(layer, `${field}.config.layers[${i}]`, from, out);
      const name =
        isObject(layer) && typeof layer.name === 'string' ? layer.name : String(layerConfig.name ?? i);
      widths.set(name, width);
    });
    return width;
  }
  const declared = dims(config.batch_input_shape ?? config.batch_shape ?? config.input_shape);
  const width = declared.length > 0 ? (declared.at(-1) as number) : inputWidth;
  if (isObject(config.layer)) return estimateLayers(config.layer, `${field}.config.layer`, width, out); // wrappers
  const estimate = layerParams(className, config, width);
  if (estimate.params > 0)
    out.push({ field, name: String(config.name ?? className), className, params: estimate.params });
  return estimate.width;
}

/** The name of a layer's first inbound layer, in tfjs's `[[["name", 0, 0, {}]]]` form. */
function firstInbound(nodes: unknown): string | undefined {
  const first = Array.isArray(nodes) ? nodes[0] : undefined;
  const entry = Array.isArray(first) ? first[0] : undefined;
  return Array.isArray(entry) && typeof entry[0] === 'string' ? entry[0] : undefined;
}

/**
 * Refuses a model whose declared weights (weightsManifest) or implied weights (a
 * layers-model's configuration, at 4 bytes a parameter) exceed the budget, naming the
 * layer or weight and the bound. Graph models hold all their weights in the manifest.
 */
export function checkWeightBudget(
  model: BudgetedModel,
  budget: WeightBudget = weightBudgetFromEnv(),
  field = 'model.json',
): void {
  const max = budget.maxWeightBytes;
  const over = (what: string, bytes: number) =>
    `${what} would allocate ${bytes.toExponential(3)} bytes of weights, over the bound of ${max} bytes (${WEIGHT_BUDGET_ENV})`;
  let declared = 0;
  model.json.weightsManifest.forEach((group, g) => {
    group.weights.forEach((weight, w) => {
      const bytes =
        product(weight.shape) * (BYTES_PER_ELEMENT[weight.quantization?.dtype ?? weight.dtype] ?? 4);
      declared += bytes;
      if (declared > max)
        throw new ArtifactError(
          `${field}.weightsManifest[${g}].weights[${w}]`,
          'max-weight-bytes',
          over(
            `weightsManifest up to weight ${JSON.stringify(weight.name)} [${weight.shape.join(', ')}]`,
            declared,
          ),
        );
    });
  });
  if (model.format !== 'layers-model') return;
  const layers: LayerEstimate[] = [];
  estimateLayers(
    model.json.modelTopology.model_config ?? model.json.modelTopology,
    `${field}.modelTopology`,
    1,
    layers,
  );
  let implied = 0;
  for (const layer of layers) {
    implied += layer.params * 4;
    if (implied > max)
      throw new ArtifactError(
        layer.field,
        'max-weight-bytes',
        over(
          `layer ${JSON.stringify(layer.name)} (${layer.className}, ${layer.params.toExponential(3)} parameters) and those before it`,
          implied,
        ),
      );
  }
}
