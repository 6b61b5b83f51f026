import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MonitorService } from '@ballast/contracts/ballast/monitor/v1/monitor_pb.js';
import { createClient } from '@ballast/grpc-kit';
import { freePort, type ServiceProcess, startServiceProcess, waitUntil } from '@ballast/grpc-kit/testing';
import { connectRedis, createQueue, QueueNames } from '@ballast/queue';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { afterAll, describe, expect, it } from 'vitest';
import { retailStatistics, T0, traffic, WINDOW } from './test-monitor.js';

const REDIS_URL = 'redis://127.0.0.1:6379';
// Queues of this test's own.
const PREFIX = `t-monitor-process-${randomBytes(4).toString('hex')}`;

/** The built monitor as its own process (as `ballast up` starts it), once it is SERVING. */
async function startMonitorProcess(dataDir: string): Promise<ServiceProcess> {
  const http = await freePort();
  return startServiceProcess({
    package: '@ballast/monitor',
    ports: { http },
    env: {
      BALLAST_DATA_DIR: dataDir,
      BALLAST_DATABASE_URL: '',
      BALLAST_REDIS_URL: REDIS_URL,
      BALLAST_MONITOR_QUEUE_PREFIX: PREFIX,
      // Nobody there: versions without a baseline stay unknown.
      BALLAST_REGISTRY_ADDR: '127.0.0.1:1',
      BALLAST_FEATURE_ADDR: '127.0.0.1:1',
      BALLAST_MONITOR_WINDOW_MS: String(WINDOW),
      BALLAST_MONITOR_SCRAPE_TARGETS: `monitor=http://127.0.0.1:${http}/metrics`,
      BALLAST_MONITOR_SCRAPE_INTERVAL_MS: '200',
      BALLAST_MONITOR_EVALUATE_INTERVAL_MS: '0',
    },
    ready: MonitorService.typeName,
  });
}

describe('the monitor process', () => {
  const redis = connectRedis(REDIS_URL);
  const predictions = createQueue(QueueNames.monitorPredictions, { connection: redis, prefix: PREFIX });
  const training = createQueue(QueueNames.trainingRun, { connection: redis, prefix: PREFIX });
  let monitor: ServiceProcess | undefined;
  let dir = '';
  afterAll(async () => {
    await monitor?.kill();
    await predictions.obliterate({ force: true }).catch(() => {});
    await training.obliterate({ force: true }).catch(() => {});
    await predictions.close();
    await training.close();
    redis.disconnect();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('absorbs logged predictions, serves drift, operations and the dashboard, and keeps its windows when killed', async () => {
    dir = await mkdtemp(join(tmpdir(), 'ballast-monitor-process-'));
    monitor = await startMonitorProcess(dir);
    const client = createClient(MonitorService, { address: monitor.address, deadlineMs: 30_000 });
    await client.setBaseline({ model: 'demand', version: 1, statistics: retailStatistics() });
    await predictions.addBulk(
      [traffic(T0, 100, 1), traffic(T0 + WINDOW, 100, 2, ['w3'])].map((data) => ({ name: 'log', data })),
    );
    const query = { model: 'demand', version: 1, startTime: timestampFromMs(T0), allSegments: true };
    let before = await client.getDrift(query);
    await waitUntil(
      async () => {
        before = await client.getDrift(query);
        return before.windows.length >= 8;
      },
      '8 drift windows',
      { process: monitor },
    );
    expect(before.windows.find((w) => w.segment === 'warehouse_id=w3' && w.drifted)).toBeDefined();
    const page = await fetch(`${monitor.httpUrl}/dashboard?model=demand`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<path class="series"');

    let ops = await client.getOperations({});
    await waitUntil(
      async () => {
        ops = await client.getOperations({});
        return Number.isFinite(ops.services[0]?.memoryBytes);
      },
      'a scrape of its own memory',
      { process: monitor },
    );
    expect(ops.services[0]).toMatchObject({ service: 'monitor', up: true });
    expect(ops.services[0]?.memoryBytes).toBeGreaterThan(1e6);
    client.close();

    // A crash, then the same process again on the same ports and data directory.
    await monitor.kill('SIGKILL');
    await monitor.restart();
    const again = createClient(MonitorService, { address: monitor.address, deadlineMs: 30_000 });
    expect((await again.getDrift(query)).windows).toEqual(before.windows);
    // A version without a baseline while registry is unreachable: the job is retried (BullMQ's
    // attempts), then failed and counted; nothing is stored as unknown.
    await predictions.add('log', traffic(T0, 5, 3, [], 'demand', '7'));
    let counters = (await again.getMonitorStatus({})).counters;
    await waitUntil(
      async () => {
        counters = (await again.getMonitorStatus({})).counters;
        return Boolean(counters.failed_jobs);
      },
      'a failed job counted',
      { process: monitor },
    );
    expect(counters.failed_jobs).toBe(1n);
    expect(counters.unknown_model_records).toBeUndefined();
    again.close();
    await monitor.stop();
  }, 120_000);
});
