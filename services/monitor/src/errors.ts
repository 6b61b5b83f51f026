import type { ErrorKey, ErrorSums, JoinedActual } from './store.js';

/**
 * Error of joined (prediction, actual) pairs, summed per version, window (of the prediction's
 * time) and segment, for all rows ('') and the prediction's segment. Sums, so windows add up
 * as actuals keep arriving: MAE, RMSE and MAPE (over non-zero actuals) for regression;
 * accuracy (a prediction ≥ 0.5 is the positive class) for classification.
 */
export function errorSums(
  joined: readonly JoinedActual[],
  windowMsOf: (version: number) => number,
): [ErrorKey, ErrorSums][] {
  const out = new Map<string, [ErrorKey, ErrorSums]>();
  for (const j of joined) {
    const width = windowMsOf(j.version);
    const windowStart = Math.floor(j.predictionTime / width) * width;
    for (const segment of j.segment ? ['', j.segment] : ['']) {
      const id = `${j.version}|${windowStart}|${segment}`;
      let entry = out.get(id);
      if (!entry) {
        entry = [
          { version: j.version, windowStart, segment },
          { n: 0, sumAbs: 0, sumSq: 0, sumApe: 0, nApe: 0, correct: 0 },
        ];
        out.set(id, entry);
      }
      const s = entry[1];
      const err = j.prediction - j.actual;
      s.n++;
      s.sumAbs += Math.abs(err);
      s.sumSq += err * err;
      if (j.actual !== 0) {
        s.sumApe += Math.abs(err / j.actual);
        s.nApe++;
      }
      if ((j.prediction >= 0.5 ? 1 : 0) === (j.actual >= 0.5 ? 1 : 0)) s.correct++;
    }
  }
  return [...out.values()];
}
