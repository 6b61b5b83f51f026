import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { MonitorService } from '@ballast/contracts/ballast/monitor/v1/monitor_pb.js';
import {
  Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from '@ballast/contracts/grpc/health/v1/health_pb.js';
import { createClient } from '@ballast/grpc-kit';
import { freePort } from '@ballast/grpc-kit/testing';
import { connectRedis, createQueue, QueueNames } from '@ballast/queue';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { afterAll, describe, expect, it } from 'vitest';
import { retailStatistics, T0, traffic, WINDOW } from './test-monitor.js';

const require = createRequire(import.meta.url);
const MAIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'main.js');
const REDIS_URL = 'redis://127.0.0.1:6379';
// Queues of this test's own.
const PREFIX = `t-monitor-process-${randomBytes(4).toString('hex')}`;

interface Running {
  child: ChildProcess;
  address: string;
  http: string;
}

/** The built monitor as its own process (as `ballast up` starts it), once it is SERVING. */
async function startMonitorProcess(dataDir: string, ports: { grpc: number; http: number }): Promise<Running> {
  const child = spawn(process.execPath, ['--import', require.resolve('@ballast/telemetry/register'), MAIN], {
    env: {
      ...process.env,
      BALLAST_GRPC_HOST: '127.0.0.1',
      BALLAST_LOG_LEVEL: 'warn',
      BALLAST_DATA_DIR: dataDir,
      BALLAST_DATABASE_URL: '',
      BALLAST_REDIS_URL: REDIS_URL,
      BALLAST_MONITOR_QUEUE_PREFIX: PREFIX,
      BALLAST_MONITOR_GRPC_PORT: String(ports.grpc),
      BALLAST_MONITOR_HTTP_PORT: String(ports.http),
      // Nobody there: versions without a baseline stay unknown.
      BALLAST_REGISTRY_ADDR: '127.0.0.1:1',
      BALLAST_FEATURE_ADDR: '127.0.0.1:1',
      BALLAST_MONITOR_WINDOW_MS: String(WINDOW),
      BALLAST_MONITOR_SCRAPE_TARGETS: `monitor=http://127.0.0.1:${ports.http}/metrics`,
      BALLAST_MONITOR_SCRAPE_INTERVAL_MS: '200',
      BALLAST_MONITOR_EVALUATE_INTERVAL_MS: '0',
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (b: Buffer) => {
    stderr += b.toString();
  });
  const address = `127.0.0.1:${ports.grpc}`;
  const health = createClient(Health, { address, deadlineMs: 1_000, retry: false });
  try {
    for (let i = 0; ; i++) {
      if (child.exitCode !== null) throw new Error(`monitor exited: ${stderr}`);
      const answer = await health.check({ service: MonitorService.typeName }).catch(() => undefined);
      if (answer?.status === ServingStatus.SERVING) break;
      if (i > 900) throw new Error(`monitor never turned SERVING: ${stderr}`);
      await sleep(100);
    }
  } finally {
    health.close();
  }
  return { child, address, http: `http://127.0.0.1:${ports.http}` };
}

describe('the monitor process', () => {
  const redis = connectRedis(REDIS_URL);
  const predictions = createQueue(QueueNames.monitorPredictions, { connection: redis, prefix: PREFIX });
  const training = createQueue(QueueNames.trainingRun, { connection: redis, prefix: PREFIX });
  const children: ChildProcess[] = [];
  let dir = '';
  afterAll(async () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    await predictions.obliterate({ force: true }).catch(() => {});
    await training.obliterate({ force: true }).catch(() => {});
    await predictions.close();
    await training.close();
    redis.disconnect();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('absorbs logged predictions, serves drift, operations and the dashboard, and keeps its windows when killed', async () => {
    dir = await mkdtemp(join(tmpdir(), 'ballast-monitor-process-'));
    const ports = { grpc: await freePort(), http: await freePort() };
    const first = await startMonitorProcess(dir, ports);
    children.push(first.child);
    const client = createClient(MonitorService, { address: first.address, deadlineMs: 30_000 });
    await client.setBaseline({ model: 'demand', version: 1, statistics: retailStatistics() });
    await predictions.addBulk(
      [traffic(T0, 100, 1), traffic(T0 + WINDOW, 100, 2, ['w3'])].map((data) => ({ name: 'log', data })),
    );
    const query = { model: 'demand', version: 1, startTime: timestampFromMs(T0), allSegments: true };
    let before = await client.getDrift(query);
    while (before.windows.length < 8) {
      await sleep(50);
      before = await client.getDrift(query);
    }
    expect(before.windows.find((w) => w.segment === 'warehouse_id=w3' && w.drifted)).toBeDefined();
    const page = await fetch(`${first.http}/dashboard?model=demand`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<path class="series"');

    let ops = await client.getOperations({});
    while (!Number.isFinite(ops.services[0]?.memoryBytes)) {
      await sleep(100);
      ops = await client.getOperations({});
    }
    expect(ops.services[0]).toMatchObject({ service: 'monitor', up: true });
    expect(ops.services[0]?.memoryBytes).toBeGreaterThan(1e6);
    client.close();

    first.child.kill('SIGKILL');
    await once(first.child, 'exit');
    const second = await startMonitorProcess(dir, ports);
    children.push(second.child);
    const again = createClient(MonitorService, { address: second.address, deadlineMs: 30_000 });
    expect((await again.getDrift(query)).windows).toEqual(before.windows);
    // A version without a baseline while registry is unreachable: the job is retried (BullMQ's
    // attempts), then failed and counted; nothing is stored as unknown.
    await predictions.add('log', traffic(T0, 5, 3, [], 'demand', '7'));
    let counters = (await again.getMonitorStatus({})).counters;
    while (!counters.failed_jobs) {
      await sleep(100);
      counters = (await again.getMonitorStatus({})).counters;
    }
    expect(counters.failed_jobs).toBe(1n);
    expect(counters.unknown_model_records).toBeUndefined();
    again.close();
    second.child.kill('SIGTERM');
    await once(second.child, 'exit');
  });
});
