import { setTimeout as sleep } from 'node:timers/promises';
import { VersionState } from '@ballast/contracts/ballast/inference/v1/inference_pb.js';
import { Task } from '@ballast/contracts/ballast/registry/v1/registry_pb.js';
import { readAll } from '@ballast/grpc-kit';
import {
  connectRedis,
  createQueue,
  DEFAULT_REDIS_URL,
  QueueNames,
  type TrainingRunJob,
} from '@ballast/queue';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { type BallastClients, connect } from './clients.js';
import { activeTraceLink } from './commands-data.js';
import { demoTraceLines } from './demo-links.js';
import {
  alertsBySegment,
  configureMonitor,
  DEMO_WINDOW_MS,
  DRIFT_THRESHOLD,
  DRIFT_WINDOWS,
  dashboardLink,
  type Served,
  setBaseline,
  watchForRetraining,
} from './demo-monitor.js';
import { table } from './output.js';
import { DAY_MS, type DemandShift, referenceSales, type SaleRecord } from './reference-data.js';
import { referenceDemandView, referenceSalesSchema, salesBatch } from './reference-workload.js';
import { ensureSuite } from './suite.js';
import { enqueueTraining, waitForTraining } from './training.js';

/**
 * `ballast demo`: the seed's story, played on a running suite. Sales for 6 warehouses come
 * in (with malformed and duplicate records), a feature view is applied, v1 is trained and
 * promoted, traffic is served, then one warehouse's demand shifts; monitor sees drift and
 * rising error there, retraining runs, v2 passes the gate, inference swaps it in, and the
 * error recovers. Every number comes from the seed, so two runs tell the same story.
 */

export interface DemoOptions {
  env: NodeJS.ProcessEnv;
  print: (line: string) => void;
  seed?: number;
  /** Leave a suite the demo started running when it is done (default: stop it). */
  keep?: boolean;
  /** How long to wait for monitor to trigger retraining and the new version to serve. */
  retrainTimeoutMs?: number;
}

export interface PhaseError {
  warehouse: string;
  beforeShift: number;
  afterShift: number;
  afterRetraining: number;
}

export interface DemoResult {
  dataset: string;
  model: string;
  firstVersion: number;
  retrainedVersion: number;
  errors: PhaseError[];
  seconds: number;
}

const WAREHOUSES = 6;
const SKUS = 8;
/** Days 0-79 are history; 80-89 are served before the shift; the shift starts on day 90. */
const HISTORY_DAYS = 80;
const BEFORE = { first: 80, last: 89 };
const AFTER_SHIFT = { first: 90, last: 111 };
const AFTER_RETRAINING = { first: 112, last: 125 };
const SHIFT: DemandShift = { warehouse: 'W4', fromDay: 90, demandFactor: 1.8, priceFactor: 0.8 };
/** Wall-clock time per served day: spreads traffic over several monitor windows. */
const PACE_MS = 250;
/** How long after a forecast its actual reaches monitor (six served days). */
const LABEL_DELAY_MS = 6 * PACE_MS;

export async function demo(options: DemoOptions): Promise<DemoResult> {
  const { env, print } = options;
  const seed = options.seed ?? 42;
  const t0 = Date.now();
  const say = (line: string) => print(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(6)}s] ${line}`);
  const suite = await ensureSuite(env, say);
  const clients = connect(env, { deadlineMs: 60_000 });
  const redis = connectRedis(env.BALLAST_REDIS_URL || DEFAULT_REDIS_URL);
  const trainingQueue = createQueue(QueueNames.trainingRun, { connection: redis });
  const materializeQueue = createQueue(QueueNames.featuresMaterialize, { connection: redis });
  // Names unique to this run, so a demo can be played again on the same suite.
  const run = `${seed}-${Date.now().toString(36)}`;
  const dataset = `sales-${run}`;
  const model = `demand-${run}`;
  const sales = (first: number, last: number) =>
    referenceSales({
      seed,
      warehouses: WAREHOUSES,
      skus: SKUS,
      firstDay: first,
      days: last - first + 1,
      shift: SHIFT,
    });

  try {
    say(`story ${run}: ${WAREHOUSES} warehouses x ${SKUS} SKUs, seed ${seed}`);
    await createDataset(clients, dataset);
    const view = await applyView(clients, dataset, model);
    say(`feature view ${model}@${view.slice(0, 12)}: price, promotion, day of week, warehouse, SKU`);

    // History, with what real feeds send: malformed records and a retried batch.
    const history = sales(0, HISTORY_DAYS - 1);
    const first = await ingest(clients, dataset, 'warehouse-feeds', history);
    const bad = await ingest(clients, dataset, 'warehouse-feeds', malformed(history));
    const retry = await ingest(clients, dataset, 'warehouse-feeds-retry', history.slice(0, 96));
    say(
      `ingested ${HISTORY_DAYS} days: ${first.accepted} accepted, ${bad.quarantined} quarantined (${bad.rules}), ${retry.duplicates} duplicates dropped`,
    );
    const v0 = await commit(clients, materializeQueue, dataset);
    say(`dataset version ${v0.slice(0, 12)} committed and materialized`);

    await clients.registry.createModel({
      name: model,
      task: Task.REGRESSION,
      ownerTeam: 'demand-planning',
      description: 'units per warehouse, SKU and day (ballast demo)',
      // The same architecture retrained: latency and cost differ only by measurement noise,
      // and v2 is profiled while the demo's own traffic, inference and monitor share the two
      // cores with it (v1 was profiled on a quiet suite), so their bounds are loose (10x).
      // Accuracy decides, overall and per
      // warehouse: a retraining may cost a warehouse up to 20% more error (a few units a day
      // here) while it repairs another.
      policy: { maxP99LatencyIncrease: 10, maxCostIncrease: 10, maxSegmentRegression: 0.2 },
    });
    const job: TrainingRunJob = {
      model,
      reason: 'demo: first model',
      featureView: model,
      datasetVersion: v0,
      spec: { hiddenUnits: [64, 32], epochs: 80, batchSize: 32, learningRate: 0.01, seed },
      eval: { holdoutFraction: 0.1 },
      promote: true,
    };
    const v1 = await train(trainingQueue, job, say);
    if (v1.promotion !== 'promoted')
      throw new Error(`v${v1.version} was not promoted: ${v1.promotionDetail ?? v1.promotion}`);
    await waitServing(clients, model, v1.version, 60_000);
    say(`inference serves ${model} v${v1.version}`);

    // Alert on error well above what v1 showed on its holdout in any warehouse.
    const { version: registered } = await clients.registry.getModelVersion({ model, version: v1.version });
    const worst = Math.max(
      ...(registered?.metrics ?? [])
        .filter((m) => m.name === 'mae' && m.evalSet === 'holdout' && m.segment)
        .map((m) => m.value),
    );
    const errorThreshold = Math.round(2 * worst * 100) / 100;
    await configureMonitor(clients, { model, view: model, errorThreshold });
    await setBaseline(clients, { model, version: v1.version, view: model });
    say(
      `monitor: baseline v${v1.version} from its training statistics; alerts on PSI above its sampling noise >= ${DRIFT_THRESHOLD} for ${DRIFT_WINDOWS} windows and MAE >= ${errorThreshold} per warehouse (2x v${v1.version}'s worst holdout MAE), error alerts retrain`,
    );

    const served: Served[] = [];
    const serve = async (phase: string, days: { first: number; last: number }) => {
      await ingest(clients, dataset, 'warehouse-feeds', sales(days.first, days.last));
      const version = await commit(clients, materializeQueue, dataset);
      const { served: rows, joined } = await servePhase(clients, { model, version, days, phase });
      served.push(...rows);
      const by = versionsOf(rows);
      say(
        `served days ${days.first}-${days.last} (${phase}): ${rows.length} forecasts by v${by}; actuals joined ${joined.matched}, unmatched ${joined.unmatched}`,
      );
      return rows;
    };

    await serve('before shift', BEFORE);
    say(
      `${SHIFT.warehouse} changes: demand x${SHIFT.demandFactor} at ${Math.round((1 - (SHIFT.priceFactor ?? 1)) * 100)}% lower prices from day ${SHIFT.fromDay}`,
    );
    await serve('after shift', AFTER_SHIFT);

    const retrained = await watchForRetraining(clients, trainingQueue, {
      model,
      timeoutMs: options.retrainTimeoutMs ?? 120_000,
      say,
    });
    await setBaseline(clients, { model, version: retrained, view: model });
    await waitServing(clients, model, retrained, 60_000);
    const swappedAt = Date.now();
    say(`inference hot-swapped to v${retrained}`);
    await serve('after retraining', AFTER_RETRAINING);

    const errors = errorTable(served);
    printTable(print, errors, v1.version, retrained);
    // Monitor judges a window once it closes: one more window, and the last forecasts' are in.
    await sleep(2 * DEMO_WINDOW_MS);
    print(`alerts monitor raised for ${model}, by warehouse (every one, from ListAlerts):`);
    for (const line of table([
      [
        'warehouse',
        `on v${v1.version} (before retraining)`,
        `on v${retrained} (after retraining)`,
        'firing now',
      ],
      ...(await alertsBySegment(clients, {
        model,
        warehouses: errors.map((e) => e.warehouse).filter((w) => w !== 'all'),
        swappedAt,
      })),
    ]))
      print(`  ${line}`);
    print('');
    print(`dashboard: ${dashboardLink(env, model)}`);
    for (const line of demoTraceLines(env, activeTraceLink(env))) print(line);
    return {
      dataset,
      model,
      firstVersion: v1.version,
      retrainedVersion: retrained,
      errors,
      seconds: (Date.now() - t0) / 1000,
    };
  } finally {
    await trainingQueue.close();
    await materializeQueue.close();
    redis.disconnect();
    clients.close();
    if (suite.startedHere && options.keep) {
      say(`the suite the demo started keeps running (pid ${suite.pid}; \`kill ${suite.pid}\` stops it)`);
      suite.detach();
    } else if (suite.startedHere) {
      say('stopping the suite the demo started (--keep leaves it running)');
      await suite.stop();
    }
  }
}

async function createDataset(clients: BallastClients, name: string) {
  await clients.ingest.createDataset({
    name,
    description: 'daily units sold per warehouse and SKU (ballast demo)',
    schema: referenceSalesSchema(WAREHOUSES),
  });
}

async function applyView(clients: BallastClients, dataset: string, name: string): Promise<string> {
  const { view } = await clients.feature.applyFeatureView({
    definition: referenceDemandView({ name, dataset, warehouses: WAREHOUSES, skus: SKUS }),
  });
  if (!view) throw new Error('feature answered ApplyFeatureView without a view');
  return view.version;
}

/** What a broken feed sends: negative units and a warehouse that does not exist. */
function malformed(rows: readonly SaleRecord[]): SaleRecord[] {
  return rows
    .slice(-12)
    .map((r, i) =>
      i % 2 === 0
        ? { ...r, event_id: `${r.event_id}-bad-units`, units: -r.units - 1 }
        : { ...r, event_id: `${r.event_id}-bad-warehouse`, warehouse_id: 'W9' },
    );
}

async function ingest(clients: BallastClients, dataset: string, source: string, rows: readonly SaleRecord[]) {
  const totals = { accepted: 0, duplicates: 0, quarantined: 0, rules: '' };
  const rules = new Map<string, number>();
  for (let at = 0; at < rows.length; at += 2_000) {
    const { result } = await clients.ingest.ingestBatch({
      batch: salesBatch(dataset, source, rows.slice(at, at + 2_000)),
    });
    totals.accepted += result?.accepted ?? 0;
    totals.duplicates += result?.duplicates ?? 0;
    totals.quarantined += result?.quarantined ?? 0;
    for (const v of result?.violations ?? [])
      rules.set(`${v.field}: ${v.rule}`, (rules.get(`${v.field}: ${v.rule}`) ?? 0) + 1);
  }
  totals.rules = [...rules].map(([rule, n]) => `${n}x ${rule}`).join(', ');
  return totals;
}

/** Commits what was ingested and waits for feature to materialize the new version. */
async function commit(
  clients: BallastClients,
  materializeQueue: ReturnType<typeof createQueue<'features.materialize'>>,
  dataset: string,
): Promise<string> {
  const { version } = await clients.ingest.commitVersion({ dataset });
  if (!version) throw new Error('ingest answered CommitVersion without a version');
  const jobId = `${dataset}.${version.id}`;
  for (let waited = 0; waited < 120_000; waited += 200) {
    const job = await materializeQueue.getJob(jobId);
    const state = await job?.getState();
    if (state === 'completed') return version.id;
    if (state === 'failed') throw new Error(`materializing ${jobId} failed: ${job?.failedReason}`);
    await sleep(200);
  }
  throw new Error(
    `feature did not materialize ${jobId} within 120s (is the feature service's worker running?)`,
  );
}

async function train(
  queue: ReturnType<typeof createQueue<'training.run'>>,
  job: TrainingRunJob,
  say: (line: string) => void,
) {
  const id = await enqueueTraining(queue, job);
  say(`training ${job.model} (job ${id})`);
  let lastReported = 0;
  const result = await waitForTraining(queue, id, (p) => {
    if (p.stage === 'training' && p.epoch && p.epochs && p.epoch - lastReported >= p.epochs / 4) {
      lastReported = p.epoch;
      say(`  epoch ${p.epoch}/${p.epochs} loss ${p.loss?.toFixed(2)}`);
    }
  });
  say(
    `v${result.version} registered (artifact ${result.artifactDigest.slice(0, 12)}), promotion: ${result.promotion}`,
  );
  return result;
}

/** Waits until inference answers for the model from `version` (the swap is asynchronous). */
async function waitServing(clients: BallastClients, model: string, version: number, timeoutMs: number) {
  const started = Date.now();
  let last = '';
  while (Date.now() - started < timeoutMs) {
    try {
      const { models } = await clients.inference.getServingStatus({});
      const entry = models.find((m) => m.model === model);
      if (
        entry?.versions.some(
          (v) => v.version === version && v.aliases.includes('production') && v.state === VersionState.READY,
        )
      )
        return;
      last = entry
        ? entry.versions.map((v) => `v${v.version} ${VersionState[v.state]}`).join(', ')
        : 'not known yet';
    } catch (err) {
      last = (err as Error).message;
    }
    await sleep(250);
  }
  throw new Error(`inference did not serve ${model} v${version} within ${timeoutMs / 1000}s (last: ${last})`);
}

/**
 * Serves one phase: each day, the forecast of every SKU in every warehouse from the day's
 * planned price and promotion (one Predict per day), then the actuals once the day's sales
 * are known.
 */
async function servePhase(
  clients: BallastClients,
  p: { model: string; version: string; days: { first: number; last: number }; phase: string },
): Promise<{ served: Served[]; joined: { matched: number; unmatched: number } }> {
  const start = Date.UTC(2024, 0, 1);
  // The demo's view is named after its model.
  const rows = await trainingRows(clients, p.model, p.version, {
    from: start + p.days.first * DAY_MS,
    to: start + (p.days.last + 1) * DAY_MS,
  });
  const byDay = new Map<number, FeatureRow[]>();
  for (const row of rows) byDay.set(row.time, [...(byDay.get(row.time) ?? []), row]);
  const served: Served[] = [];
  // Sales are known some days after the forecast: actuals go to monitor later, once the
  // prediction log has carried the forecasts there.
  const pending: { due: number; actuals: { entityKey: string; value: number }[] }[] = [];
  const joined = { matched: 0, unmatched: 0 };
  const recordDue = async (now: number) => {
    while (pending.length > 0 && (pending[0]?.due ?? 0) <= now) {
      const batch = pending.shift();
      const result = await clients.monitor.recordActuals({
        model: p.model,
        actuals: (batch?.actuals ?? []).map((a) => ({ ...a, time: timestampFromMs(Date.now()) })),
      });
      joined.matched += Number(result.matched);
      joined.unmatched += Number(result.unmatched);
    }
  };
  for (const [time, dayRows] of [...byDay].sort(([a], [b]) => a - b)) {
    const day = new Date(time).toISOString().slice(0, 10);
    const tick = Date.now();
    const key = (r: FeatureRow) => `${r.warehouse}/${r.sku}/${day}`;
    // One request per day for every warehouse: each row carries its warehouse as its
    // segment, and the prediction log keeps them apart for monitor.
    const response = await clients.inference.predict({
      model: p.model,
      rows: dayRows.map((r) => ({
        features: r.features,
        entityKey: key(r),
        segments: { warehouse_id: r.warehouse },
      })),
    });
    dayRows.forEach((r, i) => {
      const output = response.predictions[i]?.outputs;
      served.push({
        phase: p.phase,
        warehouse: r.warehouse,
        version: response.version,
        prediction: (output && Object.values(output)[0]?.values[0]) ?? Number.NaN,
        actual: r.label,
      });
    });
    pending.push({
      due: Date.now() + LABEL_DELAY_MS,
      actuals: dayRows.map((r) => ({ entityKey: key(r), value: r.label })),
    });
    await recordDue(Date.now());
    await sleep(Math.max(0, PACE_MS - (Date.now() - tick)));
  }
  await sleep(Math.max(0, (pending.at(-1)?.due ?? 0) - Date.now()));
  await recordDue(Number.POSITIVE_INFINITY);
  return { served, joined };
}

interface FeatureRow {
  time: number;
  warehouse: string;
  sku: string;
  features: Record<string, number>;
  label: number;
}

/** The view's rows in a time range: what the online path would have served on each day. */
async function trainingRows(
  clients: BallastClients,
  view: string,
  datasetVersion: string,
  range: { from: number; to: number },
): Promise<FeatureRow[]> {
  const { view: found } = await clients.feature.getFeatureView({ name: view });
  let names: string[] = [];
  let entityNames: string[] = [];
  const rows: FeatureRow[] = [];
  // Read whole, and again from the start if a feature replica dies mid-stream.
  const messages = await readAll(() =>
    clients.feature.getTrainingSet({
      view,
      viewVersion: found?.version ?? '',
      datasetVersion,
      timeRange: { startTime: timestampFromMs(range.from), endTime: timestampFromMs(range.to) },
    }),
  );
  for (const message of messages) {
    if (message.part.case === 'header') {
      names = message.part.value.featureNames;
      entityNames = message.part.value.entityFields;
    } else if (message.part.case === 'batch') {
      const b = message.part.value;
      const column = (name: string) => b.entities[entityNames.indexOf(name)]?.values ?? [];
      const warehouses = column('warehouse_id');
      const skus = column('sku');
      for (let i = 0; i < b.rowCount; i++) {
        const label = b.labels[i] ?? Number.NaN;
        if (!Number.isFinite(label)) continue;
        rows.push({
          time: Number(b.eventTimeUnixMillis[i]),
          warehouse: warehouses[i] ?? '',
          sku: skus[i] ?? '',
          features: Object.fromEntries(
            names.map((n, j) => [n, b.features[i * names.length + j] ?? Number.NaN]),
          ),
          label,
        });
      }
    }
  }
  return rows;
}

const versionsOf = (rows: readonly Served[]) => [...new Set(rows.map((r) => r.version))].join(', v');

function mae(rows: readonly Served[]): number {
  return rows.reduce((sum, r) => sum + Math.abs(r.prediction - r.actual), 0) / Math.max(1, rows.length);
}

function errorTable(served: readonly Served[]): PhaseError[] {
  const warehouses = [...new Set(served.map((r) => r.warehouse))].sort();
  const of = (w: string | undefined, phase: string) =>
    mae(served.filter((r) => (w === undefined || r.warehouse === w) && r.phase === phase));
  return [...warehouses, undefined].map((w) => ({
    warehouse: w ?? 'all',
    beforeShift: of(w, 'before shift'),
    afterShift: of(w, 'after shift'),
    afterRetraining: of(w, 'after retraining'),
  }));
}

function printTable(print: (line: string) => void, rows: PhaseError[], v1: number, v2: number) {
  print('');
  print(`mean absolute error of served forecasts (units/day), by warehouse`);
  print(`  warehouse   before shift (v${v1})   after shift (v${v1})   after retraining (v${v2})`);
  for (const r of rows) {
    const mark = r.warehouse === SHIFT.warehouse ? '  <- shifted' : '';
    print(
      `  ${r.warehouse.padEnd(9)}   ${r.beforeShift.toFixed(2).padStart(17)}   ${r.afterShift.toFixed(2).padStart(18)}   ${r.afterRetraining.toFixed(2).padStart(23)}${mark}`,
    );
  }
  print('');
}
