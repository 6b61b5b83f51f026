import type { FeatureService } from '@ballast/contracts/ballast/feature/v1/feature_pb.js';
import { readAll, type ServiceClient } from '@ballast/grpc-kit';
import { UnrecoverableError } from 'bullmq';

/**
 * A training set as the trainer holds it: feature columns row-major, labels, and per row
 * its segment key and whether it is in the time-based holdout (feature decides the split:
 * rows at or after the validation start time).
 */
export interface TrainingSet {
  view: string;
  viewVersion: string;
  datasetVersion: string;
  featureNames: string[];
  labelName: string;
  rows: number;
  features: Float32Array;
  labels: Float32Array;
  holdout: Uint8Array;
  /** Per row, e.g. "warehouse_id=W3" (segment fields joined by ","); empty without segment fields. */
  segments: string[];
  /** Rows left out because a feature or the label was missing or not finite. */
  droppedRows: number;
}

/** Streams GetTrainingSet into memory, refusing rows a model must not be trained on. */
export async function readTrainingSet(
  feature: ServiceClient<typeof FeatureService>,
  request: {
    view: string;
    viewVersion: string;
    datasetVersion: string;
    /** The newest fraction of rows by event time held out (feature's default 0.2 when unset). */
    validationFraction?: number;
    signal?: AbortSignal;
  },
): Promise<TrainingSet> {
  let header: { featureNames: string[]; labelName: string } | undefined;
  const features: number[] = [];
  const labels: number[] = [];
  const holdout: number[] = [];
  const segments: string[] = [];
  // Read whole, and again from the start if the feature replica serving it dies mid-stream,
  // rather than spending one of the job's attempts.
  const messages = await readAll(() =>
    feature.getTrainingSet(
      {
        view: request.view,
        viewVersion: request.viewVersion,
        datasetVersion: request.datasetVersion,
        ...(request.validationFraction ? { validationFraction: request.validationFraction } : {}),
      },
      { signal: request.signal },
    ),
  );
  for (const message of messages) {
    if (message.part.case === 'header') header = message.part.value;
    else if (message.part.case === 'batch') {
      const batch = message.part.value;
      for (const value of batch.features) features.push(value);
      for (const value of batch.labels) labels.push(value);
      for (const flag of batch.validation) holdout.push(flag ? 1 : 0);
      for (let row = 0; row < batch.rowCount; row++)
        segments.push(batch.segments.map((column) => `${column.name}=${column.values[row] ?? ''}`).join(','));
    }
  }
  if (!header)
    throw new Error(`feature sent no training set header for ${request.view}@${request.viewVersion}`);
  const width = header.featureNames.length;
  const where = `${request.view}@${request.viewVersion.slice(0, 12)} on dataset version ${request.datasetVersion.slice(0, 12)}`;
  if (width === 0) throw new UnrecoverableError(`the feature view ${request.view} has no features`);
  // NaN marks a missing feature (e.g. a lag before the entity's first record). Such rows are
  // left out and counted (the count is reported with the job's result), never trained on.
  const keep: number[] = [];
  for (let row = 0; row < labels.length; row++) {
    let ok = Number.isFinite(labels[row]);
    for (let j = 0; ok && j < width; j++) ok = Number.isFinite(features[row * width + j]);
    if (ok) keep.push(row);
  }
  const droppedRows = labels.length - keep.length;
  if (keep.length === 0)
    throw new UnrecoverableError(
      `the training set of ${where} has no complete rows (${droppedRows} rows with missing or non-finite values): nothing to train on`,
    );
  const kept = {
    features: new Float32Array(keep.length * width),
    labels: new Float32Array(keep.length),
    holdout: new Uint8Array(keep.length),
    segments: keep.map((row) => segments[row] ?? ''),
  };
  keep.forEach((row, i) => {
    for (let j = 0; j < width; j++) kept.features[i * width + j] = features[row * width + j] ?? Number.NaN;
    kept.labels[i] = labels[row] ?? Number.NaN;
    kept.holdout[i] = holdout[row] ?? 0;
  });
  if (!kept.holdout.includes(1) || !kept.holdout.includes(0))
    throw new UnrecoverableError(
      `the training set of ${where} needs complete rows both before and in the holdout window`,
    );
  return {
    view: request.view,
    viewVersion: request.viewVersion,
    datasetVersion: request.datasetVersion,
    featureNames: header.featureNames,
    labelName: header.labelName,
    rows: keep.length,
    ...kept,
    droppedRows,
  };
}

/** The rows of one side of the split, as trainTabularModel takes them. */
export function split(set: TrainingSet, side: 'train' | 'holdout') {
  const want = side === 'holdout' ? 1 : 0;
  const width = set.featureNames.length;
  const index: number[] = [];
  for (let row = 0; row < set.rows; row++) if (set.holdout[row] === want) index.push(row);
  const features = new Float32Array(index.length * width);
  const labels = new Float32Array(index.length);
  index.forEach((row, i) => {
    features.set(set.features.subarray(row * width, (row + 1) * width), i * width);
    labels[i] = set.labels[row] ?? Number.NaN;
  });
  return {
    features,
    labels,
    segments: index.map((row) => set.segments[row] ?? ''),
    rows: index.length,
    width,
  };
}
