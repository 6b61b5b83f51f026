/**
 * A small, deterministic trainer for tabular regression and classification: what the
 * trainer service runs for `training.run` jobs, and what tests and benchmarks train.
 *
 * Determinism: the same data, options and backend give bit-identical weights. Initial
 * weights come from seeded initializers and each epoch's row order from a seeded shuffle
 * (tfjs's own `shuffle: true` uses Math.random); both are generated in JavaScript, so they
 * are the same on every backend. The arithmetic of training is not: tensorflow, wasm and
 * cpu round differently, so weights agree bit for bit only on the same backend.
 */
import * as tf from '@tensorflow/tfjs';

export type TabularTask = 'regression' | 'classification';

/** The model's input and output layer names, which its signature reports. */
export const TABULAR_INPUT = 'features';
export const TABULAR_OUTPUT = 'prediction';

export interface EpochMetrics {
  epoch: number;
  loss: number;
  /** Classification only: training accuracy over the epoch. */
  accuracy?: number | undefined;
  /** The loss on `validation`, when given. */
  valLoss?: number | undefined;
}

export type HiddenActivation = 'relu' | 'tanh' | 'sigmoid' | 'elu';

export interface TrainTabularOptions {
  /** One row per example: number[][], or a row-major Float32Array with `featureCount` columns. */
  features: Float32Array | readonly (readonly number[])[];
  /** Columns per row; required when `features` is a Float32Array. */
  featureCount?: number | undefined;
  /** One per row: the target (regression) or the class index 0..numClasses-1 (classification). */
  labels: Float32Array | Int32Array | readonly number[];
  task: TabularTask;
  /** Classification: how many classes; default the largest label + 1, at least 2. */
  numClasses?: number | undefined;
  /** Widths of the hidden layers, e.g. [32, 16]; [] gives a linear (or logistic) model. */
  hiddenUnits: readonly number[];
  /** The hidden layers' activation; default relu. */
  activation?: HiddenActivation | undefined;
  /** Dropout rate after each hidden layer (seeded, so still deterministic); default 0. */
  dropout?: number | undefined;
  /** Rows to compute a validation loss on after every epoch (not trained on). */
  validation?:
    | {
        features: Float32Array | readonly (readonly number[])[];
        labels: Float32Array | Int32Array | readonly number[];
      }
    | undefined;
  /** Needs `validation`: stop once its loss has not improved by minDelta for `patience` epochs. */
  earlyStopping?: { patience: number; minDelta?: number | undefined } | undefined;
  epochs: number;
  batchSize: number;
  /** Adam's learning rate. */
  learningRate: number;
  /** A non-negative integer; seeds the initial weights and every epoch's shuffle. */
  seed: number;
  onEpochEnd?: ((metrics: EpochMetrics) => void | Promise<void>) | undefined;
}

/** Per-feature statistics of the training rows (population standard deviation). */
export interface FeatureNormalization {
  mean: number[];
  /** 1 for a constant feature, which is then only centred. */
  std: number[];
}

export interface TrainedTabularModel {
  /** Takes raw features (shape [batch, featureCount]); standardising is its first layer. */
  model: tf.LayersModel;
  history: EpochMetrics[];
  normalization: FeatureNormalization;
  featureCount: number;
  /** Classification: the number of output probabilities per row; regression: null. */
  numClasses: number | null;
}

/** Training input that cannot be used; `field` names the option. */
export class TrainingInputError extends Error {
  override readonly name: string = 'TrainingInputError';

  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
  }
}

function positiveInteger(value: number, field: string): number {
  if (!Number.isSafeInteger(value) || value < 1)
    throw new TrainingInputError(field, 'must be an integer >= 1');
  return value;
}

/** Flattens rows into one row-major Float32Array, checking their widths and values. */
function featureMatrix(options: TrainTabularOptions): {
  values: Float32Array;
  rows: number;
  columns: number;
} {
  const { features } = options;
  let values: Float32Array;
  let columns: number;
  if (features instanceof Float32Array) {
    columns = positiveInteger(options.featureCount ?? Number.NaN, 'featureCount');
    if (features.length % columns !== 0) {
      throw new TrainingInputError('features', `length ${features.length} is not a multiple of ${columns}`);
    }
    values = features;
  } else {
    columns = positiveInteger(features[0]?.length ?? 0, 'features[0].length');
    if (options.featureCount !== undefined && options.featureCount !== columns) {
      throw new TrainingInputError('featureCount', `is ${options.featureCount} but rows have ${columns}`);
    }
    values = new Float32Array(features.length * columns);
    features.forEach((row, index) => {
      if (row.length !== columns) {
        throw new TrainingInputError(`features[${index}]`, `has ${row.length} values, expected ${columns}`);
      }
      values.set(row, index * columns);
    });
  }
  const rows = values.length / columns;
  if (rows === 0) throw new TrainingInputError('features', 'must have at least one row');
  const bad = values.findIndex((value) => !Number.isFinite(value));
  if (bad >= 0) {
    throw new TrainingInputError(
      `features[${Math.floor(bad / columns)}][${bad % columns}]`,
      'must be finite',
    );
  }
  return { values, rows, columns };
}

function checkLabels(options: TrainTabularOptions, rows: number): number | null {
  const labels = Array.from(options.labels);
  if (labels.length !== rows)
    throw new TrainingInputError('labels', `has ${labels.length} values for ${rows} rows`);
  const bad = labels.findIndex((label) => !Number.isFinite(label));
  if (bad >= 0) throw new TrainingInputError(`labels[${bad}]`, 'must be finite');
  if (options.task === 'regression') return null;
  const notIndex = labels.findIndex((label) => !Number.isInteger(label) || label < 0);
  if (notIndex >= 0) throw new TrainingInputError(`labels[${notIndex}]`, 'must be a class index (0, 1, ...)');
  const largest = labels.reduce((max, label) => Math.max(max, label), 1);
  const numClasses = options.numClasses ?? largest + 1;
  if (!Number.isSafeInteger(numClasses) || numClasses < 2) {
    throw new TrainingInputError('numClasses', 'must be an integer >= 2');
  }
  const outside = labels.findIndex((label) => label >= numClasses);
  if (outside >= 0)
    throw new TrainingInputError(`labels[${outside}]`, `must be below numClasses (${numClasses})`);
  return numClasses;
}

function normalization(values: Float32Array, rows: number, columns: number): FeatureNormalization {
  const mean = new Array<number>(columns).fill(0);
  const std = new Array<number>(columns).fill(0);
  values.forEach((value, index) => {
    mean[index % columns]! += value / rows;
  });
  values.forEach((value, index) => {
    std[index % columns]! += (value - mean[index % columns]!) ** 2 / rows;
  });
  return { mean, std: std.map((variance) => (variance > 0 ? Math.sqrt(variance) : 1)) };
}

/**
 * Builds the network. Standardising is a frozen Dense layer (kernel diag(1/std), bias
 * -mean/std) rather than a preprocessing step, so the saved artifact alone reproduces
 * predictions from raw features, inference serves every model the same way, and Keras can
 * read the model too. Every layer is named, because tfjs otherwise numbers them with a
 * per-process counter and two identical trainings would save different model.json bytes.
 */
function buildModel(
  options: TrainTabularOptions,
  columns: number,
  numClasses: number | null,
): tf.LayersModel {
  // A distinct, reproducible seed per layer (for up to 1000 layers).
  const initializer = (layer: number) => tf.initializers.glorotUniform({ seed: options.seed * 1000 + layer });
  const input = tf.input({ shape: [columns], name: TABULAR_INPUT });
  let x = tf.layers
    .dense({ units: columns, name: 'standardize', trainable: false, kernelInitializer: 'zeros' })
    .apply(input) as tf.SymbolicTensor;
  const dropout = options.dropout ?? 0;
  if (!(dropout >= 0 && dropout < 1)) throw new TrainingInputError('dropout', 'must be from 0 to below 1');
  options.hiddenUnits.forEach((units, index) => {
    positiveInteger(units, `hiddenUnits[${index}]`);
    x = tf.layers
      .dense({
        units,
        activation: options.activation ?? 'relu',
        name: `hidden_${index + 1}`,
        kernelInitializer: initializer(index + 1),
      })
      .apply(x) as tf.SymbolicTensor;
    if (dropout > 0)
      x = tf.layers
        .dropout({ rate: dropout, seed: options.seed * 1000 + 500 + index, name: `dropout_${index + 1}` })
        .apply(x) as tf.SymbolicTensor;
  });
  const output = tf.layers
    .dense({
      units: numClasses ?? 1,
      activation: numClasses === null ? 'linear' : 'softmax',
      name: TABULAR_OUTPUT,
      kernelInitializer: initializer(0),
    })
    .apply(x) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: output, name: 'tabular' });
}

function validationTensors(
  options: TrainTabularOptions,
  columns: number,
  numClasses: number | null,
): { xs: tf.Tensor2D; ys: tf.Tensor } {
  const given = options.validation;
  if (!given) throw new TrainingInputError('validation', 'is required');
  const { values, rows } = featureMatrix({ ...options, features: given.features, featureCount: columns });
  const labels = Array.from(given.labels);
  if (labels.length !== rows)
    throw new TrainingInputError('validation.labels', `has ${labels.length} values for ${rows} rows`);
  const xs = tf.tensor2d(values, [rows, columns]);
  const ys = tf.tidy(() =>
    numClasses === null
      ? tf.tensor2d(Float32Array.from(labels), [rows, 1])
      : tf.oneHot(tf.tensor1d(Int32Array.from(labels), 'int32'), numClasses).toFloat(),
  );
  return { xs, ys };
}

function validationLoss(model: tf.LayersModel, validation: { xs: tf.Tensor2D; ys: tf.Tensor }): number {
  return tf.tidy(() => {
    const result = model.evaluate(validation.xs, validation.ys, { batchSize: 1024 });
    const loss = Array.isArray(result) ? result[0] : result;
    return loss ? (loss.dataSync()[0] ?? Number.NaN) : Number.NaN;
  });
}

/** A permutation of 0..n-1 from a seeded Fisher-Yates shuffle. */
function shuffledRows(n: number, seed: string): tf.Tensor1D {
  const random = tf.randomUniform([n], 0, 1, 'float32', seed);
  const uniform = random.dataSync();
  random.dispose();
  const order = Int32Array.from({ length: n }, (_, index) => index);
  for (let i = n - 1; i > 0; i--) {
    // float32 rounding can turn a draw just below 1 into 1: keep j within 0..i.
    const j = Math.min(i, Math.floor(uniform[i]! * (i + 1)));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return tf.tensor1d(order, 'int32');
}

/**
 * Trains a feed-forward network on tabular data with Adam, mean squared error
 * (regression) or categorical cross-entropy over softmax (classification). Same seed,
 * data, options and backend: identical weights. Runs on the active backend; call
 * selectBackend first.
 */
export async function trainTabularModel(options: TrainTabularOptions): Promise<TrainedTabularModel> {
  const { values, rows, columns } = featureMatrix(options);
  const numClasses = checkLabels(options, rows);
  const epochs = positiveInteger(options.epochs, 'epochs');
  const batchSize = positiveInteger(options.batchSize, 'batchSize');
  if (!Number.isSafeInteger(options.seed) || options.seed < 0 || options.seed > 2 ** 31) {
    throw new TrainingInputError('seed', 'must be an integer from 0 to 2^31');
  }
  if (!(options.learningRate > 0 && Number.isFinite(options.learningRate))) {
    throw new TrainingInputError('learningRate', 'must be a positive number');
  }
  const stats = normalization(values, rows, columns);
  const model = buildModel(options, columns, numClasses);
  const standardize = model.getLayer('standardize');
  tf.tidy(() => {
    const scale = tf.tensor1d(stats.std.map((std) => 1 / std));
    standardize.setWeights([tf.diag(scale), tf.tensor1d(stats.mean.map((mean, j) => -mean / stats.std[j]!))]);
  });
  model.compile({
    optimizer: tf.train.adam(options.learningRate),
    loss: numClasses === null ? 'meanSquaredError' : 'categoricalCrossentropy',
    metrics: numClasses === null ? [] : ['accuracy'],
  });

  const xs = tf.tensor2d(values, [rows, columns]);
  const ys = tf.tidy(() =>
    numClasses === null
      ? tf.tensor2d(Float32Array.from(options.labels), [rows, 1])
      : tf.oneHot(tf.tensor1d(Int32Array.from(options.labels), 'int32'), numClasses).toFloat(),
  );
  const validation = options.validation && validationTensors(options, columns, numClasses);
  if (options.earlyStopping && !validation)
    throw new TrainingInputError('earlyStopping', 'needs validation rows to watch');
  const patience = options.earlyStopping
    ? positiveInteger(options.earlyStopping.patience, 'earlyStopping.patience')
    : 0;
  let best = Number.POSITIVE_INFINITY;
  let sinceBest = 0;
  const history: EpochMetrics[] = [];
  try {
    for (let epoch = 0; epoch < epochs; epoch++) {
      const order = shuffledRows(rows, `${options.seed}/epoch/${epoch}`);
      const [epochXs, epochYs] = [tf.gather(xs, order), tf.gather(ys, order)];
      order.dispose();
      try {
        // One fit per epoch, in the order just drawn; the optimizer keeps its state across calls.
        const fit = await model.fit(epochXs, epochYs, { epochs: 1, batchSize, shuffle: false, verbose: 0 });
        const accuracy = fit.history.acc?.[0];
        const metrics: EpochMetrics = { epoch, loss: Number(fit.history.loss?.[0]) };
        if (accuracy !== undefined) metrics.accuracy = Number(accuracy);
        if (validation) metrics.valLoss = validationLoss(model, validation);
        history.push(metrics);
      } finally {
        tf.dispose([epochXs, epochYs]);
      }
      await options.onEpochEnd?.(history[epoch]!);
      const valLoss = history[epoch]?.valLoss;
      if (options.earlyStopping && valLoss !== undefined) {
        if (valLoss < best - (options.earlyStopping.minDelta ?? 0)) {
          best = valLoss;
          sinceBest = 0;
        } else if (++sinceBest >= patience) break;
      }
    }
  } catch (err) {
    // Stopped part-way (a cancelled job, a failing callback): the half-trained model is
    // nobody's, so its weights are freed here.
    model.dispose();
    throw err;
  } finally {
    tf.dispose([xs, ys]);
    if (validation) tf.dispose([validation.xs, validation.ys]);
  }
  return { model, history, normalization: stats, featureCount: columns, numClasses };
}
