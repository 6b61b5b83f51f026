import { setTimeout as sleep } from 'node:timers/promises';
import {
  type Alert,
  AlertMetric,
  AlertState,
  Task,
} from '@ballast/contracts/ballast/monitor/v1/monitor_pb.js';
import type { BallastQueue } from '@ballast/queue';
import { durationFromMs, timestampMs } from '@bufbuild/protobuf/wkt';
import type { BallastClients } from './clients.js';
import { localEndpoints } from './health.js';
import { waitForTraining } from './training.js';

/** One served forecast and, once known, what really happened. */
export interface Served {
  phase: string;
  warehouse: string;
  version: number;
  prediction: number;
  actual: number;
}

/**
 * The demo's monitoring setup: drift per segment and forecast error per segment, the error
 * rule asking for a retraining. Windows are short (seconds) because the demo plays weeks in
 * seconds.
 *
 * Drift is judged on the largest feature PSI above its sampling noise (monitor's psi_noise),
 * not on PSI itself: a warehouse's window holds about a hundred rows, and at that size a bare
 * PSI of 0.25 is mostly noise (seed 42 once fired it on W2 and W5, which never shift; the
 * monitor bench's false-alert study finds it in every one of 20 seeds). The threshold is
 * twice the industry's 0.25 above that noise, which a 20% price cut clears many times over.
 *
 * And it must hold for two windows in a row. A window of six days (48 rows per warehouse, what
 * a loaded machine fits in 4 seconds) can leave a price bin holding 12% of the training rows
 * empty by chance; PSI's log term makes one empty bin worth ~0.8, far above the chi-square
 * noise bound (seed 42's W3, days 86-91: 0.61 above noise; CI fired on it once). The next
 * window's rows are new draws, so a chance bin does not repeat; a shift does.
 */
export const DEMO_WINDOW_MS = 4_000;
export const DRIFT_THRESHOLD = 0.5;
export const DRIFT_WINDOWS = 2;

export async function configureMonitor(
  clients: BallastClients,
  p: { model: string; view: string; errorThreshold: number },
): Promise<void> {
  // Rules first: a model with rules of its own gets no default rule.
  await clients.monitor.putAlertRule({
    rule: {
      model: p.model,
      name: 'demand-drift',
      metric: AlertMetric.PSI_ABOVE_NOISE,
      threshold: DRIFT_THRESHOLD,
      for: durationFromMs(DRIFT_WINDOWS * DEMO_WINDOW_MS),
      segment: '*',
    },
  });
  await clients.monitor.putAlertRule({
    rule: {
      model: p.model,
      name: 'forecast-error',
      metric: AlertMetric.MAE,
      threshold: p.errorThreshold,
      segment: '*',
      retrain: true,
    },
  });
}

/** Declares a version's baseline: its training statistics, judged in the demo's windows. */
export async function setBaseline(
  clients: BallastClients,
  p: { model: string; version: number; view: string },
): Promise<string[]> {
  const { version } = await clients.registry.getModelVersion({ model: p.model, version: p.version });
  const lineage = version?.lineage;
  const { statistics } = await clients.feature.getFeatureStatistics({
    view: lineage?.featureView?.name ?? p.view,
    viewVersion: lineage?.featureView?.version ?? '',
    datasetVersion: lineage?.dataset?.version ?? '',
    // Ten bins: PSI over few rows is biased upwards by about (bins - 1) / rows, and a
    // warehouse's window holds about a hundred.
    bins: 10,
  });
  const { features } = await clients.monitor.setBaseline({
    model: p.model,
    version: p.version,
    statistics,
    config: {
      task: Task.REGRESSION,
      window: durationFromMs(DEMO_WINDOW_MS),
      // At least six days of one warehouse's SKUs before a verdict; and the day of the
      // week only over whole weeks of every warehouse (a few days' mix of weekdays is not
      // drift; compressed into seconds, a window holds a few days).
      drift: { minSamples: 48 },
      features: { dow: { minSamples: 14 * 48 } },
      retrain: {
        enabled: true,
        cooldown: durationFromMs(10 * 60_000),
        maxPerWindow: 2,
        rateWindow: durationFromMs(3_600_000),
        featureView: p.view,
      },
    },
  });
  return features;
}

const describe = (a: Alert) =>
  `${a.rule} ${a.state === AlertState.FIRING ? 'FIRING' : 'resolved'} on ${a.segment || 'all rows'} (v${a.version}: ${a.value.toFixed(2)} >= ${a.threshold})`;

/**
 * Follows the model's alerts until one asks for a retraining, then the training job until
 * its version is registered and judged. Returns the retrained version once promoted.
 */
export async function watchForRetraining(
  clients: BallastClients,
  queue: BallastQueue<'training.run'>,
  p: { model: string; timeoutMs: number; say: (line: string) => void },
): Promise<number> {
  const started = Date.now();
  const seen = new Map<string, AlertState>();
  while (Date.now() - started < p.timeoutMs) {
    const { alerts } = await clients.monitor.listAlerts({ model: p.model });
    for (const alert of alerts) {
      const before = seen.get(alert.id);
      if (before !== alert.state) {
        seen.set(alert.id, alert.state);
        p.say(
          before === undefined && alert.state === AlertState.RESOLVED
            ? `monitor: ${alert.rule} fired and resolved on ${alert.segment || 'all rows'} (v${alert.version}: last ${alert.value.toFixed(2)})`
            : `monitor: ${describe(alert)}`,
        );
      }
    }
    const trigger = alerts.find((a) => a.retrainJobId);
    if (trigger) {
      p.say(
        `monitor queued retraining ${trigger.retrainJobId} (alert ${trigger.rule} on ${trigger.segment})`,
      );
      let lastStage = '';
      const result = await waitForTraining(queue, trigger.retrainJobId, (progress) => {
        if (progress.stage && progress.stage !== lastStage) {
          lastStage = progress.stage;
          p.say(`  retraining: ${progress.stage}`);
        }
      });
      p.say(
        `v${result.version} registered; gate: ${result.promotion}${result.promotionDetail ? ` (${result.promotionDetail})` : ''}`,
      );
      if (result.promotion !== 'promoted')
        throw new Error(
          `the retrained v${result.version} was not promoted: ${result.promotionDetail ?? result.promotion}`,
        );
      return result.version;
    }
    const skipped = alerts.find((a) => a.retrainSkipped);
    if (skipped) throw new Error(`monitor did not retrain: ${skipped.retrainSkipped}`);
    await sleep(500);
  }
  throw new Error(
    `monitor asked for no retraining within ${p.timeoutMs / 1000}s; alerts seen: ${[...seen.keys()].join(', ') || 'none'}`,
  );
}

/** An alert's segment as the demo's table names it. */
const segmentName = (segment: string) => segment.replace(/^warehouse_id=/, '') || 'all rows';

/**
 * Every alert monitor raised for the model (ListAlerts: one per rule, segment and firing
 * episode, resolved ones included, so nothing is missed between two polls), per segment:
 * the rules that fired on the first version (before retraining), on the retrained one, and
 * those still firing. Every warehouse gets a row, and so does "all rows".
 */
/**
 * The model's alerts per segment: raised before the retrained version took over, after it,
 * and firing now. Before or after is when the alert fired, not its version: a firing alert
 * takes the version of its latest window, so an alert v1 raised that still held in v2's first
 * window would otherwise be listed as v2's.
 */
export async function alertsBySegment(
  clients: BallastClients,
  p: { model: string; warehouses: readonly string[]; swappedAt: number },
): Promise<string[][]> {
  const { alerts } = await clients.monitor.listAlerts({ model: p.model });
  const segments = [...new Set([...p.warehouses, 'all rows', ...alerts.map((a) => segmentName(a.segment))])];
  const rules = (segment: string, keep: (a: Alert) => boolean) =>
    [
      ...new Set(
        alerts
          .filter((a) => segmentName(a.segment) === segment && keep(a))
          .map((a) => `${a.rule} (${a.value.toFixed(2)})`),
      ),
    ].join(', ') || 'none';
  return segments.map((segment) => [
    segment,
    rules(segment, (a) => firedAt(a) < p.swappedAt),
    rules(segment, (a) => firedAt(a) >= p.swappedAt),
    rules(segment, (a) => a.state === AlertState.FIRING),
  ]);
}

const firedAt = (a: Alert) => (a.firedAt ? timestampMs(a.firedAt) : 0);

/** The dashboard of one model, on the monitor's HTTP port. */
export function dashboardLink(env: NodeJS.ProcessEnv, model: string): string {
  return `${localEndpoints('monitor', env).http}/dashboard?model=${encodeURIComponent(model)}`;
}
