import type { JoinedActual } from './store/actuals.js';
import { AUC_BINS, type ErrorKey, type ErrorSums } from './store/errors.js';

/**
 * Area under the ROC curve from binned predictions of positive and negative actuals
 * (Mann–Whitney: a positive above a negative counts 1, in the same bin ½). NaN without both classes.
 */
export function aucFromBins(pos: readonly number[] | undefined, neg: readonly number[] | undefined): number {
  if (!pos || !neg) return Number.NaN;
  const p = pos.reduce((a, b) => a + b, 0);
  const n = neg.reduce((a, b) => a + b, 0);
  if (p === 0 || n === 0) return Number.NaN;
  let below = 0;
  let wins = 0;
  for (let i = 0; i < pos.length; i++) {
    const ni = neg[i] ?? 0;
    wins += (pos[i] ?? 0) * (below + ni / 2);
    below += ni;
  }
  return wins / (p * n);
}

/**
 * Error of joined (prediction, actual) pairs, summed per version, window (of the prediction's
 * time) and segment, for all rows ('') and the prediction's segment. Sums, so windows add up
 * as actuals keep arriving: MAE, RMSE and MAPE (over non-zero actuals) for regression;
 * accuracy (a prediction ≥ 0.5 is the positive class) for classification.
 */
export function errorSums(
  joined: readonly JoinedActual[],
  windowMsOf: (version: number) => number,
  classification: (version: number) => boolean = () => false,
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
      if (classification(j.version)) {
        s.pos ??= new Array<number>(AUC_BINS).fill(0);
        s.neg ??= new Array<number>(AUC_BINS).fill(0);
        const bin = Math.min(AUC_BINS - 1, Math.max(0, Math.floor(j.prediction * AUC_BINS)));
        const bins = j.actual >= 0.5 ? s.pos : s.neg;
        bins[bin] = (bins[bin] as number) + 1;
      }
    }
  }
  return [...out.values()];
}
