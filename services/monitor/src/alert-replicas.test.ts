import { randomBytes } from 'node:crypto';
import { type Alert, AlertState, MonitorService } from '@ballast/contracts/ballast/monitor/v1/monitor_pb.js';
import { createClient, type ServiceClient } from '@ballast/grpc-kit';
import {
  createTestDatabase,
  type PostgresTestDatabase,
  type Replicas,
  type ServiceProcess,
  startReplicas,
  waitUntil,
} from '@ballast/grpc-kit/testing';
import { connectRedis, createQueue, QueueNames } from '@ballast/queue';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_RULE_NAME } from './alert-rules.js';
import { retailStatistics, T0, traffic, WINDOW } from './test-monitor.js';

// Two monitor processes (dist/main.js) on one Postgres database and one Redis, as two pods of
// the k8s Deployment: both take monitor.predictions jobs, both evaluate the alert rules (one
// replica at a time per model, store/evaluation-lock.ts), both serve WatchAlerts.

const REDIS_URL = 'redis://127.0.0.1:6379';
// Queues of this test's own.
const PREFIX = `t-monitor-replicas-${randomBytes(4).toString('hex')}`;
type Client = ServiceClient<typeof MonitorService>;

describe('two monitor replicas on one Postgres and one Redis', () => {
  const redis = connectRedis(REDIS_URL);
  const predictions = createQueue(QueueNames.monitorPredictions, { connection: redis, prefix: PREFIX });
  const training = createQueue(QueueNames.trainingRun, { connection: redis, prefix: PREFIX });
  let db: PostgresTestDatabase;
  let started: Replicas | undefined;
  let replicas: ServiceProcess[] = [];
  let a: Client;
  let b: Client;

  beforeAll(async () => {
    db = await createTestDatabase('monitor_replicas');
    started = await startReplicas(2, {
      package: '@ballast/monitor',
      ready: MonitorService.typeName,
      telemetry: false,
      env: {
        BALLAST_DATABASE_URL: db.url,
        BALLAST_REDIS_URL: REDIS_URL,
        BALLAST_MONITOR_QUEUE_PREFIX: PREFIX,
        // Nobody there: the baseline is given, no registry or feature lookup is needed.
        BALLAST_REGISTRY_ADDR: '127.0.0.1:1',
        BALLAST_FEATURE_ADDR: '127.0.0.1:1',
        BALLAST_MONITOR_WINDOW_MS: String(WINDOW),
        BALLAST_MONITOR_WATCH_POLL_MS: '200',
        BALLAST_MONITOR_EVALUATE_INTERVAL_MS: '0',
      },
    });
    replicas = started.replicas;
    [a, b] = replicas.map((r) =>
      createClient(MonitorService, { address: r.address, deadlineMs: 30_000 }),
    ) as [Client, Client];
  }, 180_000);

  afterAll(async () => {
    a?.close();
    b?.close();
    await started?.stop();
    await predictions.obliterate({ force: true }).catch(() => {});
    await training.obliterate({ force: true }).catch(() => {});
    await predictions.close();
    await training.close();
    redis.disconnect();
    await db?.close();
  });

  it('counts each prediction once, fires one alert, and streams it from the other replica', async () => {
    await a.setBaseline({ model: 'demand', version: 1, statistics: retailStatistics() });
    const abort = new AbortController();
    const watched: Alert[] = [];
    const watching = (async () => {
      for await (const { alert } of b.watchAlerts({ model: 'demand' }, { signal: abort.signal }))
        if (alert) watched.push(alert);
    })().catch(() => undefined);

    // Three windows of 100 rows per warehouse, w3 shifted in the last two (the default rule
    // wants two), in jobs of 20 rows per warehouse so that both replicas take some.
    const split = [0, 1, 2].flatMap((window) =>
      Array.from({ length: 5 }, (_, i) =>
        traffic(T0 + window * WINDOW, 20, 10 * window + i + 1, window > 0 ? ['w3'] : []),
      ),
    );
    await predictions.addBulk(split.map((data) => ({ name: 'log', data })));

    const firing = async (c: Client) =>
      (await c.listAlerts({ model: 'demand', state: AlertState.FIRING })).alerts;
    await waitUntil(async () => (await firing(a)).length > 0, 'an alert firing', {
      process: replicas[0] as ServiceProcess,
    });
    await waitUntil(async () => watched.length > 0, 'the alert on the watch of the other replica', {
      process: replicas[1] as ServiceProcess,
    });
    abort.abort();
    await watching;

    for (const c of [a, b])
      expect((await firing(c)).map((x) => [x.rule, x.segment])).toEqual([
        [DEFAULT_RULE_NAME, 'warehouse_id=w3'],
      ]);
    expect(watched.map((x) => [x.segment, x.state])).toEqual([['warehouse_id=w3', AlertState.FIRING]]);
    // Every row counted once, whichever replica took its job.
    const windows = (
      await b.getDrift({ model: 'demand', version: 1, startTime: timestampFromMs(T0), allSegments: true })
    ).windows.filter((w) => w.segment === 'warehouse_id=w1');
    expect(windows.map((w) => w.rows)).toEqual([100n, 100n, 100n]);
  });
});
