import { openDatabase } from '@ballast/storage';
import { baselineCounts } from './histogram.js';
import { baselineFor, sampleFor } from './model-baseline.js';
import { getBaseline } from './store/baselines.js';
import { readWindows } from './store/windows.js';

/**
 * What GetDrift judges one feature of one window and segment on, read back from monitor's
 * store: the baseline's and the window's counts over the same bins, and the raw samples
 * (reservoirs) KS compares. For checking the statistics against another implementation
 * (scipy in the real-data e2e test) on exactly the same inputs; nothing in the service
 * reads it. Opens the store itself: a Postgres URL, or the data directory of a monitor
 * whose embedded PGlite is not open in another process.
 */
export interface DriftInputs {
  windowStart: number;
  referenceCounts: number[];
  currentCounts: number[];
  /** Empty when the baseline was declared without samples (KS is then on the bins). */
  referenceSample: number[];
  currentSample: number[];
}

export interface DriftInputsQuery {
  model: string;
  version: number;
  feature: string;
  /** '' for all rows, else e.g. "symbol=AAPL". */
  segment: string;
}

/** Every stored window of the feature in the segment, oldest first. */
export async function readDriftInputs(
  where: { url: string } | { dataDir: string },
  q: DriftInputsQuery,
): Promise<DriftInputs[]> {
  const sql = await openDatabase({ ...where, schema: 'monitor' });
  try {
    const model = await getBaseline(sql, q.model, q.version);
    const baseline = model && baselineFor(model, q.feature, q.segment);
    if (!model || !baseline) return [];
    const referenceSample = sampleFor(model, q.feature, q.segment) ?? [];
    const windows = await readWindows(sql, {
      model: q.model,
      version: q.version,
      start: 0,
      segment: q.segment,
    });
    return windows
      .filter((w) => w.feature === q.feature)
      .map((w) => ({
        windowStart: w.windowStart,
        referenceCounts: baselineCounts(baseline),
        currentCounts: w.hist.counts,
        referenceSample,
        currentSample: w.hist.sample ?? [],
      }));
  } finally {
    await sql.close();
  }
}
