import type { MonitorConfig } from '@ballast/contracts/ballast/monitor/v1/monitor_pb.js';
import type { MonitorDeps } from './deps.js';
import { errorSums } from './errors.js';
import { durationMs, isClassification, MAX_JOIN_WINDOW_MS, windowMs } from './model-baseline.js';
import { type ActualRow, type JoinedActual, joinActuals, newActuals } from './store/actuals.js';
import { getBaseline } from './store/baselines.js';
import { addCounter } from './store/counters.js';
import { addErrors } from './store/errors.js';

/**
 * Actuals (labels) that arrived after the predictions, from RecordActuals or from an
 * ingest dataset: each joins the latest logged prediction of its entity at or before its
 * time, within the version's join window, and adds to that version's error windows. An
 * actual seen before (same entity and time) is counted once, so re-reading is safe.
 */
export async function recordActuals(
  deps: Pick<MonitorDeps, 'sql' | 'settings' | 'metrics' | 'alerts' | 'onError'>,
  model: string,
  rows: readonly ActualRow[],
): Promise<{ matched: number; unmatched: number; duplicates: number }> {
  // One transaction: a failure leaves nothing half-recorded (no actual marked as seen
  // without its error counted).
  const { matched, unmatched, duplicates } = await deps.sql().transaction(async (tx) => {
    // An actual recorded again (a retried call) is counted once.
    const fresh = await newActuals(tx, model, rows);
    // The longest join window bounds the search; each version's own window decides.
    const joined = await joinActuals(tx, model, fresh, MAX_JOIN_WINDOW_MS);
    const configs = new Map<number, MonitorConfig | undefined>();
    const matched: JoinedActual[] = [];
    for (const [i, j] of joined.entries()) {
      if (!j) continue;
      if (!configs.has(j.version)) configs.set(j.version, (await getBaseline(tx, model, j.version))?.config);
      const config = configs.get(j.version);
      const joinWindow = Math.min(
        durationMs(config?.joinWindow, deps.settings.joinWindowMs),
        MAX_JOIN_WINDOW_MS,
      );
      if ((fresh[i]?.time ?? 0) - j.predictionTime > joinWindow) continue;
      matched.push(j);
    }
    const config = (v: number) => configs.get(v);
    await addErrors(
      tx,
      model,
      errorSums(
        matched,
        (v) => {
          const c = config(v);
          return c ? windowMs(c) : deps.settings.windowMs;
        },
        (v) => {
          const c = config(v);
          return c ? isClassification(c) : false;
        },
      ),
    );
    const unmatched = fresh.length - matched.length;
    const duplicates = rows.length - fresh.length;
    await addCounter(tx, 'unmatched_actuals', unmatched);
    await addCounter(tx, 'matched_actuals', matched.length);
    await addCounter(tx, 'duplicate_actuals', duplicates);
    return { matched: matched.length, unmatched, duplicates };
  });
  deps.metrics?.actuals.add(matched, { model, outcome: 'matched' });
  deps.metrics?.actuals.add(unmatched, { model, outcome: 'unmatched' });
  deps.metrics?.actuals.add(duplicates, { model, outcome: 'duplicate' });
  // Rules are evaluated after the answer: the caller does not wait for them.
  void deps.alerts.evaluateSoon(model).catch((err) => deps.onError?.(err));
  return { matched, unmatched, duplicates };
}
