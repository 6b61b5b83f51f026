import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FieldType, IngestService } from '@ballast/contracts/ballast/ingest/v1/ingest_pb.js';
import { MonitorService, Task } from '@ballast/contracts/ballast/monitor/v1/monitor_pb.js';
import { createClient } from '@ballast/grpc-kit';
import { connectRedis, createQueue, QueueNames, type RedisConnection } from '@ballast/queue';
import { durationFromMs } from '@bufbuild/protobuf/wkt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, type RunningProcess, startServiceProcess, waitServing } from './support.js';

// Actuals that arrive through ingest: monitor reads each committed version of the dataset a
// model's baseline names, joins its records to the logged predictions, and counts a record
// read again in a later version once. Real ingest and monitor processes, Redis DB 15.
const REDIS_URL = 'redis://127.0.0.1:6379/15';
const dataDir = mkdtempSync(join(tmpdir(), 'ballast-actuals-e2e-'));
const running: RunningProcess[] = [];

/** Feature statistics over ten equal bins of [0, 100), as feature's GetFeatureStatistics gives them. */
function uniformStatistics(feature: string, isLabel: boolean) {
  const edges = Array.from({ length: 11 }, (_, i) => i * 10);
  return {
    feature,
    isLabel,
    segment: '',
    count: 1000n,
    nullCount: 0n,
    mean: 50,
    std: 28.9,
    min: 0,
    max: 100,
    histogram: { edges, counts: Array.from({ length: 10 }, () => 100n) },
  };
}

describe('actuals through ingest', () => {
  let redis: RedisConnection;
  let ingest: ReturnType<typeof createClient<typeof IngestService>>;
  let monitor: ReturnType<typeof createClient<typeof MonitorService>>;

  beforeAll(async () => {
    redis = connectRedis(REDIS_URL);
    await redis.flushdb();
    const common = { BALLAST_DATA_DIR: dataDir, BALLAST_DATABASE_URL: '', BALLAST_REDIS_URL: REDIS_URL };
    const ingestProc = await startServiceProcess('ingest', common);
    running.push(ingestProc);
    const monitorProc = await startServiceProcess('monitor', {
      ...common,
      BALLAST_INGEST_ADDR: `127.0.0.1:${ingestProc.grpcPort}`,
      BALLAST_MONITOR_ACTUALS_POLL_MS: '300',
      BALLAST_MONITOR_SCRAPE_TARGETS: 'none',
    });
    running.push(monitorProc);
    await waitServing(`127.0.0.1:${ingestProc.grpcPort}`, IngestService.typeName);
    await waitServing(`127.0.0.1:${monitorProc.grpcPort}`, MonitorService.typeName);
    ingest = createClient(IngestService, { address: `127.0.0.1:${ingestProc.grpcPort}`, deadlineMs: 30_000 });
    monitor = createClient(MonitorService, {
      address: `127.0.0.1:${monitorProc.grpcPort}`,
      deadlineMs: 30_000,
    });
  }, 240_000);

  afterAll(async () => {
    ingest?.close();
    monitor?.close();
    await Promise.all(running.map((p) => p.stop()));
    await redis?.flushdb();
    redis?.disconnect();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('joins the records of each committed version to logged predictions, each actual once', async () => {
    const model = 'demand-actuals';
    await monitor.setBaseline({
      model,
      version: 1,
      statistics: [uniformStatistics('price', false), uniformStatistics('units', true)],
      config: {
        task: Task.REGRESSION,
        window: durationFromMs(60_000),
        actuals: { dataset: 'sales-actuals', entityKeyField: 'forecast_key', valueField: 'units' },
      },
    });
    // Three forecasts logged by inference (here: the jobs it would write).
    const now = Date.now();
    const queue = createQueue(QueueNames.monitorPredictions, { connection: redis });
    const forecasts = [
      ['W1/S01/2026-12-01', 40],
      ['W1/S02/2026-12-01', 20],
      ['W2/S01/2026-12-01', 30],
    ] as const;
    await queue.add('log', {
      model,
      version: '1',
      rows: forecasts.length,
      records: forecasts.map(([key, prediction], i) => ({
        requestId: `r${i}`,
        time: now - 60_000,
        latencyUs: 800,
        inputs: { price: [50] },
        outputs: { units: [prediction] },
        entityKeys: [key],
      })),
    });
    await queue.close();

    await ingest.createDataset({
      name: 'sales-actuals',
      schema: {
        fields: [
          { name: 'forecast_key', type: FieldType.STRING, required: true },
          { name: 'known_at', type: FieldType.TIMESTAMP, required: true },
          { name: 'units', type: FieldType.FLOAT, required: true, min: 0 },
        ],
        eventIdField: 'forecast_key',
        eventTimeField: 'known_at',
        entityFields: ['forecast_key'],
      },
    });
    const send = async (rows: [string, number][]) => {
      await ingest.ingestBatch({
        batch: {
          dataset: 'sales-actuals',
          source: 'pos',
          rowCount: rows.length,
          columns: [
            { name: 'forecast_key', values: { case: 'strings', value: { values: rows.map(([k]) => k) } } },
            {
              name: 'known_at',
              values: {
                case: 'timestamps',
                value: { seconds: rows.map(() => BigInt(Math.floor(now / 1000))) },
              },
            },
            { name: 'units', values: { case: 'doubles', value: { values: rows.map(([, v]) => v) } } },
          ],
        },
      });
      await ingest.commitVersion({ dataset: 'sales-actuals' });
    };
    const errorOf = async () => {
      const { windows } = await monitor.getError({
        model,
        startTime: { seconds: BigInt(Math.floor(now / 1000) - 3600) },
      });
      return windows.find((w) => w.segment === '');
    };

    // Two of the three actuals: |40-44| and |20-26|.
    await send([
      ['W1/S01/2026-12-01', 44],
      ['W1/S02/2026-12-01', 26],
    ]);
    const first = await eventually(
      async () => ((await errorOf())?.count === 2n ? errorOf() : undefined),
      'two actuals joined',
      300,
    );
    expect(first?.mae).toBeCloseTo(5, 9);

    // The next version holds the first two again and the third (|30-27|) and one with no
    // forecast: only the new matched one is added.
    await send([
      ['W2/S01/2026-12-01', 27],
      ['W9/S09/2026-12-01', 1],
    ]);
    const second = await eventually(
      async () => ((await errorOf())?.count === 3n ? errorOf() : undefined),
      'the third actual joined',
      300,
    );
    expect(second?.mae).toBeCloseTo((4 + 6 + 3) / 3, 9);
    const { counters } = await monitor.getMonitorStatus({});
    expect(counters).toMatchObject({ unmatched_actuals: 1n, matched_actuals: 3n, duplicate_actuals: 2n });
  }, 120_000);
});
