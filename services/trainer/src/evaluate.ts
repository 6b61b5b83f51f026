import * as tf from '@tensorflow/tfjs';

/**
 * Holdout metrics, overall and per segment. Regression: mae and rmse. Classification:
 * accuracy. Segment keys are kept as given ("warehouse_id=W3"), so the registry's gate can
 * compare the same segments across versions.
 */
export interface EvalMetric {
  name: string;
  evalSet: string;
  segment: string;
  value: number;
}

export const EVAL_SET = 'holdout';

export interface Holdout {
  features: Float32Array;
  labels: Float32Array;
  segments: string[];
  rows: number;
  width: number;
}

export function evaluate(
  model: tf.LayersModel,
  task: 'regression' | 'classification',
  holdout: Holdout,
): EvalMetric[] {
  const predictions = tf.tidy(() => {
    const output = model.predict(tf.tensor2d(holdout.features, [holdout.rows, holdout.width])) as tf.Tensor;
    return task === 'regression' ? output.reshape([-1]).dataSync() : output.argMax(-1).dataSync();
  });
  const groups = new Map<string, number[]>([['', []]]);
  for (let row = 0; row < holdout.rows; row++) {
    groups.get('')?.push(row);
    const segment = holdout.segments[row] ?? '';
    if (segment) groups.set(segment, [...(groups.get(segment) ?? []), row]);
  }
  const metrics: EvalMetric[] = [];
  for (const [segment, rows] of [...groups].sort(([a], [b]) => a.localeCompare(b))) {
    if (rows.length === 0) continue;
    if (task === 'regression') {
      let absolute = 0;
      let squared = 0;
      for (const row of rows) {
        const error = (predictions[row] ?? 0) - (holdout.labels[row] ?? 0);
        absolute += Math.abs(error);
        squared += error * error;
      }
      metrics.push({ name: 'mae', evalSet: EVAL_SET, segment, value: absolute / rows.length });
      metrics.push({ name: 'rmse', evalSet: EVAL_SET, segment, value: Math.sqrt(squared / rows.length) });
    } else {
      const correct = rows.filter((row) => predictions[row] === holdout.labels[row]).length;
      metrics.push({ name: 'accuracy', evalSet: EVAL_SET, segment, value: correct / rows.length });
    }
  }
  return metrics;
}
