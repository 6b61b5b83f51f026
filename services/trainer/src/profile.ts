import * as tf from '@tensorflow/tfjs';

/**
 * What serving this model will cost: p50/p99 latency of one predict call at batch sizes
 * 1, 32 and 256 on the backend the trainer runs (the inference backend where both run the
 * same), and from the batch-256 p50 an estimate of the cost of one million predictions at
 * a given price per core-hour. The gate weighs these against accuracy.
 */
export const PROFILE_BATCH_SIZES = [1, 32, 256] as const;

export interface LatencyPoint {
  batchSize: number;
  p50Ms: number;
  p99Ms: number;
}

/**
 * Each batch size is timed for `budgetMs` (at least `minRuns`, at most `maxRuns` calls)
 * after a warm-up: a p99 from a few dozen calls is just the slowest one, and one GC pause
 * or busy neighbour would make it the version's profile.
 */
export function measureLatency(
  model: tf.LayersModel,
  width: number,
  { minRuns = 40, maxRuns = 1_000, budgetMs = 300 } = {},
): LatencyPoint[] {
  return PROFILE_BATCH_SIZES.map((batchSize) => {
    const input = tf.randomUniform([batchSize, width], -1, 1, 'float32', 7);
    try {
      const call = () => {
        const start = performance.now();
        const output = model.predict(input) as tf.Tensor;
        output.dataSync();
        output.dispose();
        return performance.now() - start;
      };
      for (let i = 0; i < 5; i++) call(); // the first calls warm up kernels
      const timings: number[] = [];
      const started = performance.now();
      while (timings.length < minRuns || (timings.length < maxRuns && performance.now() - started < budgetMs))
        timings.push(call());
      timings.sort((a, b) => a - b);
      const at = (q: number) => timings[Math.min(timings.length - 1, Math.floor(q * timings.length))] ?? 0;
      return { batchSize, p50Ms: round(at(0.5)), p99Ms: round(at(0.99)) };
    } finally {
      input.dispose();
    }
  });
}

/** Cost of 1M predictions served in batches of the largest profiled size, one core busy. */
export function costPerMillion(latency: LatencyPoint[], pricePerCoreHour: number): number {
  const largest = latency.at(-1);
  if (!largest) return 0;
  const msPerPrediction = largest.p50Ms / largest.batchSize;
  const hours = (msPerPrediction * 1_000_000) / 3_600_000;
  // Never zero: the gate reads zero as "not measured".
  return Math.max(round(hours * pricePerCoreHour, 6), 1e-6);
}

const round = (x: number, digits = 4) => Number(x.toFixed(digits));
