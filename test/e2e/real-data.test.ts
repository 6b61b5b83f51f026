import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { FeatureService } from '@ballast/contracts/ballast/feature/v1/feature_pb.js';
import { InferenceService } from '@ballast/contracts/ballast/inference/v1/inference_pb.js';
import { MonitorService } from '@ballast/contracts/ballast/monitor/v1/monitor_pb.js';
import { createClient } from '@ballast/grpc-kit';
import { connectRedis } from '@ballast/queue';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliRunner, eventually, type RunningProcess, startSuite } from './support.js';

// Real data through the whole loop from the CLI: vega-datasets' `stocks` (monthly closing
// prices of five companies, 2000-2010; nobody here wrote it) becomes a dataset, a feature
// view of last month's and last quarter's price per symbol, a model trained and promoted
// on it; then ten years of history are replayed month by month as predictions carrying
// their own event time, and monitor's drift per symbol is checked against scipy.stats on
// the very samples and bins monitor judged (read back from its store). Redis DB 8 and a
// temporary PGlite directory keep it apart from every other test.
const REDIS_URL = 'redis://127.0.0.1:6379/8';
const require = createRequire(import.meta.url);
const STOCKS = join(dirname(require.resolve('vega-datasets')), '..', 'data', 'stocks.csv');
const MONITOR_DIR = dirname(require.resolve('@ballast/monitor/package.json'));
const SCIPY = join(MONITOR_DIR, 'src', 'scipy_reference.py');
/** Monitor's read-back of what it judged (services/monitor/src/drift-inputs.ts), as a process. */
const DRIFT_INPUTS = join(MONITOR_DIR, 'dist', 'drift-inputs-main.js');
const cliPath = join(dirname(require.resolve('@ballast/sdk/package.json')), 'dist', 'cli.js');
const dir = mkdtempSync(join(tmpdir(), 'ballast-real-data-e2e-'));
const MODEL = 'stocks';
const YEAR_MS = 365 * 86_400_000;
const DAY_MS = 86_400_000;

interface Quote {
  symbol: string;
  time: number;
  price: number;
}

/** The file as published, its dates ("Jan 1 2000") as ISO timestamps: the one edit a user makes. */
function readStocks(): Quote[] {
  const lines = readFileSync(STOCKS, 'utf8').trim().split('\n').slice(1);
  return lines.map((line) => {
    const [symbol, date, price] = line.split(',') as [string, string, string];
    return { symbol, time: Date.parse(`${date} UTC`), price: Number(price) };
  });
}

/** What the view computes for a row: the symbol's price as of `days` before (latest at or before). */
function priceAsOf(quotes: readonly Quote[], q: Quote, days: number): number | undefined {
  const cutoff = q.time - days * DAY_MS;
  let best: Quote | undefined;
  for (const o of quotes)
    if (o.symbol === q.symbol && o.time <= cutoff && (!best || o.time > best.time)) best = o;
  return best?.price;
}

/** What GetDrift judged one feature of one window and segment on (monitor's DriftInputs). */
interface DriftInputs {
  windowStart: number;
  referenceCounts: number[];
  currentCounts: number[];
  referenceSample: number[];
  currentSample: number[];
}

function readDriftInputs(dataDir: string, segment: string, feature: string): DriftInputs[] {
  const out = execFileSync(process.execPath, [DRIFT_INPUTS, dataDir, MODEL, '1', feature, segment], {
    encoding: 'utf8',
  });
  return JSON.parse(out) as DriftInputs[];
}

function scipy<T>(cases: readonly unknown[]): T[] {
  const out = execFileSync('/usr/bin/python3', [SCIPY], { input: JSON.stringify(cases), encoding: 'utf8' });
  return JSON.parse(out) as T[];
}

interface FeatureDriftJson {
  feature: string;
  ksStatistic: number;
  ksPValue: number;
  ksReferenceSamples?: string;
  ksCurrentSamples?: string;
  psi: number;
  jensenShannon: number;
}
interface DriftJson {
  version: number;
  windows: {
    windowStart?: string;
    segment?: string;
    rows: string;
    features: FeatureDriftJson[];
  }[];
}

describe('real data (vega-datasets stocks) from the CLI, drift checked against scipy', () => {
  const running: Partial<Record<string, RunningProcess>> = {};
  let env: Record<string, string>;
  let redis: ReturnType<typeof connectRedis>;

  const { cli, ok } = cliRunner(cliPath, dir, () => env);

  beforeAll(async () => {
    redis = connectRedis(REDIS_URL);
    await redis.flushdb();
    env = {
      BALLAST_DATA_DIR: join(dir, 'data'),
      BALLAST_DATABASE_URL: '',
      BALLAST_REDIS_URL: REDIS_URL,
      BALLAST_TF_BACKEND: 'wasm',
      // History from 2000 on: windows that old are kept, and no drift alert retrains.
      BALLAST_MONITOR_WINDOW_RETENTION_MS: String(40 * YEAR_MS),
      BALLAST_MONITOR_DEFAULT_RULE: 'false',
      BALLAST_MONITOR_RETRAIN: 'false',
    };
    Object.assign(running, await startSuite(env));
    await eventually(async () => (cli('status').code === 0 ? true : undefined), 'the suite ready', 900);
  }, 600_000);

  afterAll(async () => {
    await Promise.all(Object.values(running).map((p) => p?.stop()));
    await redis?.flushdb();
    redis?.disconnect();
    rmSync(dir, { recursive: true, force: true });
  });

  it('ingests, trains, replays ten years month by month and reports drift per symbol as scipy computes it', async () => {
    const quotes = readStocks();
    expect(quotes).toHaveLength(560);
    writeFileSync(
      join(dir, 'stocks.csv'),
      `symbol,date,price\n${quotes.map((q) => `${q.symbol},${new Date(q.time).toISOString()},${q.price}`).join('\n')}\n`,
    );

    // schema infer finds the dataset and a view of nothing but the label; the user adds the
    // features (last month's and last quarter's price) and segments by symbol.
    ok(
      'schema',
      'infer',
      'stocks.csv',
      '--dataset',
      MODEL,
      '--label',
      'price',
      '--entity',
      'symbol',
      '--owner',
      'markets',
      '-o',
      'ballast.yaml',
    );
    const inferred = readFileSync(join(dir, 'ballast.yaml'), 'utf8');
    expect(inferred).toMatch(/eventTimeField: date/);
    expect(inferred).toMatch(/features: \[\]/);
    writeFileSync(
      join(dir, 'ballast.yaml'),
      inferred.replace(
        'features: []',
        [
          'segmentFields: [symbol]',
          '    features:',
          '      - { name: last_month, lag: { field: price, days: 28 } }',
          '      - { name: last_quarter, lag: { field: price, days: 89 } }',
        ].join('\n'),
      ),
    );
    expect(ok('apply', '-f', 'ballast.yaml')).toMatch(/^featureView\s+stocks\s+create/m);

    expect(ok('ingest', MODEL, 'stocks.csv', '--commit')).toMatch(
      /560 records, 560 accepted, 0 duplicates dropped, 0 quarantined[\s\S]*committed version [0-9a-f]{12} \(560 records\)/,
    );
    expect(ok('train', MODEL, '--view', MODEL, '--epochs', '10', '--wait')).toMatch(/stocks v1 registered/);
    // The gate compares with the production version; the first has none to beat.
    ok('promote', MODEL, '1', '--force', '--reason', 'first version');

    // The baseline monitor judges windows against: the training statistics of the view (as
    // lineage gives them) declared with the raw values of 2000-2004 as the reference sample,
    // and a window of a year (the data is monthly).
    const feature = createClient(FeatureService, { address: env.BALLAST_FEATURE_ADDR as string });
    const monitor = createClient(MonitorService, { address: env.BALLAST_MONITOR_ADDR as string });
    const inference = createClient(InferenceService, { address: env.BALLAST_INFERENCE_ADDR as string });
    const shown = JSON.parse(ok('features', 'show', MODEL, '--json')) as {
      view: { version: string };
      materializations: { datasetVersion: string }[];
    };
    const { statistics } = await feature.getFeatureStatistics({
      view: MODEL,
      viewVersion: shown.view.version,
      datasetVersion: shown.materializations[0]?.datasetVersion ?? '',
      bins: 20,
    });
    const reference = quotes.filter((q) => q.time < Date.UTC(2005, 0, 1));
    const rowFeatures = (q: Quote) => ({
      last_month: priceAsOf(quotes, q, 28),
      last_quarter: priceAsOf(quotes, q, 89),
    });
    const samples = ['last_month', 'last_quarter'].flatMap((name) =>
      ['', ...new Set(quotes.map((q) => q.symbol))].map((symbol) => ({
        feature: name,
        segment: symbol ? `symbol=${symbol}` : '',
        values: reference
          .filter((q) => !symbol || q.symbol === symbol)
          .map((q) => rowFeatures(q)[name as 'last_month'] ?? Number.NaN),
      })),
    );
    await monitor.setBaseline({
      model: MODEL,
      version: 1,
      statistics,
      samples,
      config: { window: { seconds: BigInt(YEAR_MS / 1000) } },
    });

    // History replayed month by month: each month's quotes as one Predict, stamped with the month.
    const months = [...new Set(quotes.map((q) => q.time))].sort((a, b) => a - b);
    let sent = 0;
    for (const month of months) {
      const rows = quotes
        .filter((q) => q.time === month)
        .flatMap((q) => {
          const f = rowFeatures(q);
          if (f.last_month === undefined || f.last_quarter === undefined) return [];
          return [
            {
              features: { last_month: f.last_month, last_quarter: f.last_quarter },
              entityKey: `symbol=${q.symbol}`,
              segments: { symbol: q.symbol },
              timestamp: timestampFromMs(q.time),
            },
          ];
        });
      if (rows.length === 0) continue;
      const answer = await inference.predict({ model: MODEL, rows });
      expect(answer.predictions).toHaveLength(rows.length);
      sent += rows.length;
    }
    // Every replayed row lands in its own year's window (by event time, not arrival).
    const replayed = await eventually(
      async () => {
        const r = (await monitor.getDrift({ model: MODEL, version: 1, startTime: timestampFromMs(0) }))
          .windows;
        const all = r.filter(
          (w) => w.segment === '' && Number(w.windowStart?.seconds ?? 0) * 1000 < Date.UTC(2011, 0, 1),
        );
        return all.reduce((n, w) => n + Number(w.rows), 0) === sent ? all : undefined;
      },
      'the replayed predictions in their windows',
      600,
    );
    expect(replayed.length).toBeGreaterThanOrEqual(10);

    const perSymbol = JSON.parse(ok('drift', MODEL, '--segment', 'symbol=AAPL', '--json')) as DriftJson;
    expect(perSymbol.version).toBe(1);
    expect(ok('drift', MODEL, '--segment', 'symbol=AAPL')).toMatch(/symbol=AAPL/);
    const overall = JSON.parse(ok('drift', MODEL, '--json')) as DriftJson;

    // Each year of AAPL's history (the replay, window by window) and the latest window of all
    // rows, as the CLI reported it.
    const history = (
      await monitor.getDrift({
        model: MODEL,
        version: 1,
        startTime: timestampFromMs(0),
        segment: 'symbol=AAPL',
      })
    ).windows;
    expect(history.length).toBeGreaterThanOrEqual(10);
    // The CLI's per-symbol report is the history's latest window.
    const ksOf = (features: readonly { feature: string; ksStatistic: number }[]) =>
      features.filter((f) => f.feature.startsWith('last_')).map((f) => [f.feature, f.ksStatistic]);
    expect(ksOf(perSymbol.windows[0]?.features ?? [])).toEqual(ksOf(history.at(-1)?.features ?? []));
    // One more from the CLI, as a user asks it: its event time is now, so it comes after the
    // reports of the history's latest window.
    expect(ok('predict', MODEL, '--features', JSON.stringify({ last_month: 100, last_quarter: 95 }))).toMatch(
      /^prediction: -?[\d.]+$/m,
    );

    // What monitor judged on, read from its store once it has stopped (PGlite is one process's).
    await running.monitor?.stop();
    running.monitor = undefined;
    const read = (segment: string, name: string) => readDriftInputs(join(dir, 'data'), segment, name);

    const reports: { segment: string; windowStart: number; features: FeatureDriftJson[] }[] = [
      ...history.map((w) => ({
        segment: 'symbol=AAPL',
        windowStart: Number(w.windowStart?.seconds ?? 0) * 1000,
        features: w.features.map((f) => ({
          ...f,
          ksReferenceSamples: String(f.ksReferenceSamples),
          ksCurrentSamples: String(f.ksCurrentSamples),
        })),
      })),
      ...overall.windows
        .filter((w) => !w.segment)
        .map((w) => ({ segment: '', windowStart: Date.parse(w.windowStart ?? ''), features: w.features })),
    ];
    const checks: { label: string; reported: FeatureDriftJson; inputs: DriftInputs }[] = [];
    for (const name of ['last_month', 'last_quarter']) {
      const stored = { 'symbol=AAPL': read('symbol=AAPL', name), '': read('', name) };
      for (const report of reports) {
        const label = `${report.segment || 'all rows'} ${new Date(report.windowStart).toISOString()} ${name}`;
        const inputs = stored[report.segment as keyof typeof stored].find(
          (w) => w.windowStart === report.windowStart,
        );
        const reported = report.features.find((f) => f.feature === name);
        expect(inputs, label).toBeDefined();
        expect(reported, label).toBeDefined();
        checks.push({ label, reported: reported as FeatureDriftJson, inputs: inputs as DriftInputs });
      }
    }
    // Eleven years of AAPL (2000-2010) and the latest window of all rows, two features each.
    expect(checks.length).toBeGreaterThanOrEqual(2 * (10 + 1));
    const answers = scipy<{ statistic?: number; pValue?: number; value?: number }>(
      checks.flatMap(({ inputs }) => [
        { kind: 'ks_samples', a: inputs.referenceSample, b: inputs.currentSample },
        { kind: 'psi', reference: inputs.referenceCounts, current: inputs.currentCounts },
        { kind: 'jensenshannon', reference: inputs.referenceCounts, current: inputs.currentCounts },
      ]),
    );
    checks.forEach(({ label, reported, inputs }, i) => {
      const [ks, psi, js] = answers.slice(i * 3, i * 3 + 3) as [
        { statistic: number; pValue: number },
        { value: number },
        { value: number },
      ];
      // The reservoirs hold every value here (fewer than 1,000 each side): KS is exact.
      expect(Number(reported.ksReferenceSamples), label).toBe(inputs.referenceSample.length);
      expect(Number(reported.ksCurrentSamples), label).toBe(inputs.currentSample.length);
      expect(inputs.currentSample.length, label).toBeGreaterThan(0);
      expect(Math.abs(reported.ksStatistic - ks.statistic), `${label} KS`).toBeLessThanOrEqual(1e-9);
      expect(Math.abs(reported.ksPValue - ks.pValue), `${label} KS p`).toBeLessThanOrEqual(1e-9);
      expect(Math.abs(reported.psi - psi.value), `${label} PSI`).toBeLessThanOrEqual(1e-9);
      expect(Math.abs(reported.jensenShannon - js.value), `${label} JS`).toBeLessThanOrEqual(1e-9);
    });

    // Two events of one entity at one time (two trades quoted for MSFT on 2010-04-01): both
    // are records of the next version and both are rows of its materialization.
    writeFileSync(
      join(dir, 'same-time.csv'),
      'symbol,date,price\nMSFT,2010-04-01T00:00:00.000Z,29.16\nMSFT,2010-04-01T00:00:00.000Z,29.29\n',
    );
    expect(ok('ingest', MODEL, 'same-time.csv', '--commit')).toMatch(
      /2 records, 2 accepted, 0 duplicates dropped, 0 quarantined[\s\S]*committed version [0-9a-f]{12} \(562 records\)/,
    );
    type Shown = {
      materializations: { state: string; records?: string; rows?: string; skippedRecords?: string }[];
    };
    const materialized = await eventually(
      async () => {
        const shown = JSON.parse(ok('features', 'show', MODEL, '--json')) as Shown;
        return shown.materializations.find((m) => m.records === '562' && m.state.endsWith('SUCCEEDED'));
      },
      'the materialization of the version with both same-time events',
      1200,
    );
    expect(materialized.rows).toBe('562');
    expect(materialized.skippedRecords ?? '0').toBe('0');
  }, 900_000);
});
