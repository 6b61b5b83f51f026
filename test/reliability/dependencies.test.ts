// Dependencies down or slow: Redis (the suite's own, AOF on) killed and restarted, Postgres
// cut by a TCP proxy (the shared cluster cannot be stopped), Redis slowed by a proxy that
// holds every chunk. Services must say NOT_SERVING while a dependency is down, recover by
// themselves, and inference's p99 must not follow Redis (the prediction log is off the hot path).
import { setTimeout as sleep } from 'node:timers/promises';
import { FeatureService } from '@ballast/contracts/ballast/feature/v1/feature_pb.js';
import { InferenceService } from '@ballast/contracts/ballast/inference/v1/inference_pb.js';
import { IngestService } from '@ballast/contracts/ballast/ingest/v1/ingest_pb.js';
import { RegistryService } from '@ballast/contracts/ballast/registry/v1/registry_pb.js';
import { createClient, RpcError } from '@ballast/grpc-kit';
import { connectRedis, createQueue, QueueNames } from '@ballast/queue';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { saveLog, suiteRecorder } from './report.js';
import {
  createTestDatabase,
  healthStatus,
  PG_ADMIN_URL,
  percentile,
  round,
  type ServiceProcess,
  ServingStatus,
  startRedis,
  startService,
  type TcpProxy,
  type TestRedis,
  tcpProxy,
  tempDir,
  waitHealth,
} from './support.js';
import { predictRequest, registerDemandModel, salesBatch, salesSchema } from './workload.js';

const record = suiteRecorder(
  'dependencies',
  'Dependencies down or slow: Redis restart, Postgres cut, slow Redis',
);

let redis: TestRedis;
let redisProxy: TcpProxy;
let pgProxy: TcpProxy;
let db: Awaited<ReturnType<typeof createTestDatabase>>;
const procs = new Map<string, ServiceProcess>();
const TYPE: Record<string, string> = {
  ingest: IngestService.typeName,
  feature: FeatureService.typeName,
  registry: RegistryService.typeName,
  inference: InferenceService.typeName,
};

beforeAll(async () => {
  redis = await startRedis();
  redisProxy = await tcpProxy(redis.port);
  db = await createTestDatabase('deps');
  pgProxy = await tcpProxy(Number(new URL(PG_ADMIN_URL).port || 5432));
  const viaProxy = new URL(db.url);
  viaProxy.port = String(pgProxy.port);
  const redisUrl = `redis://127.0.0.1:${redisProxy.port}`;
  const common = {
    BALLAST_REDIS_URL: redisUrl,
    BALLAST_DATA_DIR: tempDir('deps'),
    BALLAST_LOG_LEVEL: 'warn',
  };
  // the registry and ingest reach Postgres through the proxy that will be cut
  const registry = await startService('registry', { ...common, BALLAST_DATABASE_URL: viaProxy.toString() });
  procs.set('registry', registry);
  const ingest = await startService('ingest', { ...common, BALLAST_DATABASE_URL: viaProxy.toString() });
  procs.set('ingest', ingest);
  procs.set(
    'feature',
    await startService('feature', {
      ...common,
      BALLAST_DATABASE_URL: db.url,
      BALLAST_INGEST_ADDR: ingest.address,
    }),
  );
  await waitHealth(registry, RegistryService.typeName, ServingStatus.SERVING, 90_000);
  const registryClient = createClient(RegistryService, { address: registry.address, deadlineMs: 30_000 });
  await registerDemandModel(registryClient);
  registryClient.close();
  procs.set(
    'inference',
    await startService('inference', {
      ...common,
      BALLAST_DATABASE_URL: db.url,
      BALLAST_REGISTRY_ADDR: registry.address,
      BALLAST_TF_BACKEND: 'cpu',
    }),
  );
  for (const [name, proc] of procs)
    await waitHealth(proc, TYPE[name] as string, ServingStatus.SERVING, 120_000);
}, 240_000);

afterAll(async () => {
  for (const proc of procs.values()) {
    await proc.kill('SIGKILL');
    saveLog(`dependencies-${proc.service}`, proc.output());
  }
  await redisProxy?.close();
  await pgProxy?.close();
  await redis?.close();
  await db?.close();
});

/** Polls every service's readiness until `want` holds for each of `names`; ms per service. */
async function untilAll(
  names: string[],
  want: ServingStatus,
  timeoutMs: number,
): Promise<Record<string, number>> {
  const started = Date.now();
  const reached: Record<string, number> = {};
  while (Date.now() - started < timeoutMs && Object.keys(reached).length < names.length) {
    for (const name of names) {
      if (reached[name] !== undefined) continue;
      const proc = procs.get(name) as ServiceProcess;
      if ((await healthStatus(proc.address, TYPE[name] as string)) === want)
        reached[name] = Date.now() - started;
    }
    await sleep(100);
  }
  return reached;
}

/** Closed-loop Predict for `ms` with `workers` callers; latencies of OK answers and other statuses. */
async function predictLoad(ms: number, workers = 2) {
  const client = createClient(InferenceService, {
    address: (procs.get('inference') as ServiceProcess).address,
    deadlineMs: 5_000,
    retry: false,
  });
  const latencies: number[] = [];
  const errors = new Map<string, number>();
  const end = Date.now() + ms;
  await Promise.all(
    Array.from({ length: workers }, async (_, w) => {
      for (let i = 0; Date.now() < end; i++) {
        const t = process.hrtime.bigint();
        try {
          await client.predict(predictRequest('demand', i * workers + w));
          latencies.push(Number(process.hrtime.bigint() - t) / 1e6);
        } catch (err) {
          const name = err instanceof RpcError ? (status[err.code] as string) : String(err);
          errors.set(name, (errors.get(name) ?? 0) + 1);
          await sleep(20);
        }
      }
    }),
  );
  client.close();
  return {
    n: latencies.length,
    p50: round(percentile(latencies, 50), 2),
    p99: round(percentile(latencies, 99), 2),
    errors: [...errors].map(([k, v]) => `${k} ${v}`).join(', ') || 'none',
  };
}

async function metric(name: string): Promise<number> {
  const proc = procs.get('inference') as ServiceProcess;
  const body = await (await fetch(`http://127.0.0.1:${proc.httpPort}/metrics`)).text();
  return body
    .split('\n')
    .filter((l) => l.startsWith(name))
    .reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
}

describe('slow Redis', () => {
  it('does not move inference p99: the prediction log is off the hot path', async () => {
    await predictLoad(1_000); // warm-up
    const base1 = await predictLoad(4_000);
    const loggedBefore = await metric('ballast_inference_prediction_log_records_total');
    redisProxy.delayMs = 50;
    await sleep(500);
    const slow = await predictLoad(4_000);
    const loggedSlow = await metric('ballast_inference_prediction_log_records_total');
    const droppedSlow = await metric('ballast_inference_prediction_log_dropped_total');
    redisProxy.delayMs = 0;
    await sleep(1_000);
    const base2 = await predictLoad(4_000);
    const baseline = Math.max(base1.p99, base2.p99);
    const pass = record({
      scenario: 'slow Redis: inference Predict latency with Redis delayed 50 ms per chunk',
      headline: `Redis slowed by 50 ms per chunk: Predict p99 ${slow.p99} ms, against ${base1.p99} and ${base2.p99} ms without`,
      injected:
        'a TCP proxy between inference (and ingest, feature) and Redis holding every chunk 50 ms each way, for 4 s of closed-loop Predict (2 callers); baselines before and after without delay',
      measured: {
        'baseline before: calls, p50 / p99 (ms)': `${base1.n}, ${base1.p50} / ${base1.p99}`,
        'Redis +50 ms: calls, p50 / p99 (ms)': `${slow.n}, ${slow.p50} / ${slow.p99}`,
        'baseline after: calls, p50 / p99 (ms)': `${base2.n}, ${base2.p50} / ${base2.p99}`,
        'errors (baseline / slow / baseline)': `${base1.errors} / ${slow.errors} / ${base2.errors}`,
        'prediction-log records written while slow': loggedSlow - loggedBefore,
        'prediction-log records dropped (total)': droppedSlow,
        'asserted relation': `slow p99 < max(baseline p99s) + 40 ms: ${slow.p99} < ${round(baseline + 40, 2)}`,
      },
      pass: slow.p99 < baseline + 40 && slow.errors === 'none',
    });
    expect(slow.errors).toBe('none');
    expect(slow.p99).toBeLessThan(baseline + 40);
    expect(pass).toBe(true);
  }, 60_000);
});

describe('Redis restart', () => {
  it('turns the Redis users NOT_SERVING while it is down, and SERVING again by themselves', async () => {
    const users = ['ingest', 'feature', 'inference'];
    // the prediction log's jobs (no monitor consumes them here) are what must survive in Redis
    const counter = connectRedis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    counter.on('error', () => {});
    const predictionJobs = async () => {
      const queue = createQueue(QueueNames.monitorPredictions, { connection: counter, onError: () => {} });
      try {
        const counts = await queue.getJobCounts('waiting', 'active', 'delayed', 'completed', 'failed');
        return Object.values(counts).reduce((a, b) => a + b, 0);
      } finally {
        await queue.close();
      }
    };
    await predictLoad(1_000, 1); // some predictions in the log before the kill
    await sleep(1_500);
    const jobsBefore = await predictionJobs();
    const droppedBefore = await metric('ballast_inference_prediction_log_dropped_total');
    const loggedBefore = await metric('ballast_inference_prediction_log_records_total');
    const killedAt = Date.now();
    await redis.stop(); // SIGKILL: AOF (appendfsync always) is what survives
    const down = await untilAll(users, ServingStatus.NOT_SERVING, 30_000);
    const registryWhileDown = await healthStatus(
      (procs.get('registry') as ServiceProcess).address,
      RegistryService.typeName,
    );
    const predictWhileDown = await predictLoad(1_000, 1);
    await sleep(2_000);
    const restartAt = Date.now();
    await redis.start();
    const up = await untilAll(users, ServingStatus.SERVING, 60_000);
    const jobsAfterRestart = await predictionJobs();
    await sleep(1_500); // the log flushes what it buffered while Redis was away
    const droppedDuring = (await metric('ballast_inference_prediction_log_dropped_total')) - droppedBefore;
    const loggedDuring = (await metric('ballast_inference_prediction_log_records_total')) - loggedBefore;
    counter.disconnect();
    const predictAfter = await predictLoad(1_000, 1);
    const pass = record({
      scenario: 'Redis killed (-9) and restarted (AOF on, its own port)',
      headline: `Redis kill -9: NOT_SERVING within ${Math.max(...Object.values(down))} ms, SERVING ${Math.max(...Object.values(up))} ms after its restart; Predict kept answering (${predictWhileDown.errors === 'none' ? 'no errors' : predictWhileDown.errors}); ${jobsAfterRestart} of ${jobsBefore} queued prediction-log jobs kept`,
      injected: `redis-server --appendonly yes --appendfsync always on port ${redis.port}, SIGKILL, down ${round((restartAt - killedAt) / 1000, 1)} s, started again on the same directory`,
      measured: {
        'time to NOT_SERVING after the kill (ms)': users.map((u) => `${u} ${down[u] ?? 'never'}`).join(', '),
        'registry (no Redis) while Redis was down':
          typeof registryWhileDown === 'string' ? registryWhileDown : ServingStatus[registryWhileDown],
        'Predict while Redis was down: OK calls, p99 (ms), errors': `${predictWhileDown.n}, ${predictWhileDown.p99}, ${predictWhileDown.errors}`,
        'time to SERVING after the restart (ms)': users.map((u) => `${u} ${up[u] ?? 'never'}`).join(', '),
        'Predict after: OK calls, errors': `${predictAfter.n}, ${predictAfter.errors}`,
        'prediction-log jobs in Redis before the kill / after the restart': `${jobsBefore} / ${jobsAfterRestart}`,
        'prediction-log records written / dropped while Redis was away (bounded buffer, drops counted)': `${loggedDuring} / ${droppedDuring}`,
      },
      pass:
        users.every((u) => down[u] !== undefined && up[u] !== undefined) &&
        registryWhileDown === ServingStatus.SERVING &&
        predictAfter.errors === 'none' &&
        jobsAfterRestart >= jobsBefore,
    });
    expect(Object.keys(down).sort()).toEqual([...users].sort());
    expect(Object.keys(up).sort()).toEqual([...users].sort());
    expect(registryWhileDown).toBe(ServingStatus.SERVING);
    expect(predictAfter.errors).toBe('none');
    expect(jobsBefore).toBeGreaterThan(0);
    expect(jobsAfterRestart).toBeGreaterThanOrEqual(jobsBefore);
    expect(pass).toBe(true);
  }, 120_000);
});

describe('Postgres cut', () => {
  it('turns ingest and the registry NOT_SERVING with UNAVAILABLE answers while cut, and recovers by itself', async () => {
    const ingest = createClient(IngestService, {
      address: (procs.get('ingest') as ServiceProcess).address,
      deadlineMs: 5_000,
      retry: false,
    });
    const registry = createClient(RegistryService, {
      address: (procs.get('registry') as ServiceProcess).address,
      deadlineMs: 5_000,
      retry: false,
    });
    await ingest.createDataset({ name: 'sales', schema: salesSchema() });
    const code = (p: Promise<unknown>) =>
      p.then(
        () => 'OK',
        (e: unknown) => (e instanceof RpcError ? (status[e.code] as string) : String(e)),
      );
    const cutAt = Date.now();
    pgProxy.cut();
    const users = ['ingest', 'registry'];
    const down = await untilAll(users, ServingStatus.NOT_SERVING, 30_000);
    const whileCut = {
      'ingest GetDataset': await code(ingest.getDataset({ name: 'sales' })),
      'ingest IngestBatch': await code(ingest.ingestBatch({ batch: salesBatch('sales', 0, 10) })),
      'registry ListModels': await code(registry.listModels({})),
      'registry GetModel': await code(registry.getModel({ name: 'demand' })),
    };
    const featureWhileCut = await healthStatus(
      (procs.get('feature') as ServiceProcess).address,
      FeatureService.typeName,
    );
    await sleep(1_000);
    const restoredAt = Date.now();
    pgProxy.restore();
    const up = await untilAll(users, ServingStatus.SERVING, 60_000);
    const after = {
      'ingest IngestBatch': await code(ingest.ingestBatch({ batch: salesBatch('sales', 0, 10) })),
      'registry GetModel': await code(registry.getModel({ name: 'demand' })),
    };
    ingest.close();
    registry.close();
    const unavailableOnly = Object.values(whileCut).every(
      (c) => c === 'UNAVAILABLE' || c === 'DEADLINE_EXCEEDED',
    );
    const pass = record({
      scenario: 'Postgres cut by a TCP proxy, then restored',
      headline: `Postgres cut: NOT_SERVING within ${Math.max(...Object.values(down))} ms, calls UNAVAILABLE, SERVING ${Math.max(...Object.values(up))} ms after the restore`,
      injected: `ingest and the registry reach Postgres through a proxy that drops every connection and refuses new ones for ${round((restoredAt - cutAt) / 1000, 1)} s (feature on a direct connection, as a control)`,
      measured: {
        'time to NOT_SERVING after the cut (ms)': users.map((u) => `${u} ${down[u] ?? 'never'}`).join(', '),
        'answers while cut': Object.entries(whileCut)
          .map(([k, v]) => `${k} ${v}`)
          .join(', '),
        'feature (direct connection) while cut':
          typeof featureWhileCut === 'string' ? featureWhileCut : ServingStatus[featureWhileCut],
        'time to SERVING after the restore (ms)': users.map((u) => `${u} ${up[u] ?? 'never'}`).join(', '),
        'answers after': Object.entries(after)
          .map(([k, v]) => `${k} ${v}`)
          .join(', '),
      },
      pass:
        users.every((u) => down[u] !== undefined && up[u] !== undefined) &&
        unavailableOnly &&
        Object.values(after).every((c) => c === 'OK'),
    });
    expect(Object.keys(down).sort()).toEqual(users);
    expect(whileCut).toEqual(Object.fromEntries(Object.keys(whileCut).map((k) => [k, 'UNAVAILABLE'])));
    expect(Object.keys(up).sort()).toEqual(users);
    expect(after).toEqual({ 'ingest IngestBatch': 'OK', 'registry GetModel': 'OK' });
    expect(pass).toBe(true);
  }, 120_000);
});
