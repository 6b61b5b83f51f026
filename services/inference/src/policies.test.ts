import { randomUUID } from 'node:crypto';
import type { RpcError } from '@ballast/grpc-kit';
import type { MonitorPredictionsJob } from '@ballast/queue';
import { startHttpServer } from '@ballast/telemetry';
import { status } from '@grpc/grpc-js';
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PredictionJob, predictionQueue, queueSink } from './prediction-log.js';
import {
  demandModelFiles,
  eventually,
  FEATURES,
  startTestInference,
  type TestInference,
} from './test-support.js';

const REDIS_URL = process.env.BALLAST_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const row = (entityKey = '', segments: Record<string, string> = {}) => ({
  features: Object.fromEntries(FEATURES.map((f, i) => [f, i + 1])),
  entityKey,
  segments,
});

let t: TestInference;
const prefix = `t-inference-${randomUUID().slice(0, 8)}`;
let predictions: ReturnType<typeof predictionQueue>;

beforeAll(async () => {
  predictions = predictionQueue(REDIS_URL);
  const queue = new Queue('monitor.predictions', { connection: predictions.redis, prefix });
  // The log writes to a queue under this file's own prefix, on the real Redis.
  t = await startTestInference({
    sink: queueSink(queue as unknown as Parameters<typeof queueSink>[0]),
  });
  t.registry.addVersion('demand', 1, await demandModelFiles(1));
  t.registry.addVersion('demand', 2, await demandModelFiles(2));
  t.registry.setAlias('demand', 'production', 1);
  t.registry.setAlias('demand', 'candidate', 2);
  await eventually(() => t.pool.find('demand')?.aliases.get('candidate'), 'candidate loaded');
});

afterAll(async () => {
  await t?.close();
  const queue = new Queue('monitor.predictions', { connection: predictions.redis, prefix });
  await queue.obliterate({ force: true }).catch(() => {});
  await queue.close();
  await predictions?.close();
});

/** Re-announces an alias so that the model's tags (its serving config) are read again. */
async function retag(tags: Record<string, string>) {
  t.registry.tags.set('demand', tags);
  t.registry.setAlias('demand', 'candidate', 2);
  await t.follower.settled();
  await eventually(() => {
    const config = t.pool.find('demand')?.config;
    return (
      config?.canaryPercent === Number(tags['inference.canary_percent'] ?? 0) &&
      config.shadow === (tags['inference.shadow'] === 'true')
    );
  }, 'config');
}

describe('traffic policies', () => {
  it('canary: sends a share of production traffic to candidate, the same side for the same entity', async () => {
    await retag({ 'inference.canary_percent': '50' });
    const sides = new Map<string, number>();
    for (let i = 0; i < 40; i++) {
      const key = `warehouse=${i}`;
      const first = await t.client.predict({ model: 'demand', rows: [row(key)] });
      const again = await t.client.predict({ model: 'demand', rows: [row(key)] });
      expect(again.version).toBe(first.version);
      expect(first.alias).toBe(first.version === 2 ? 'candidate' : 'production');
      sides.set(key, first.version);
    }
    expect(new Set(sides.values())).toEqual(new Set([1, 2]));
    // An explicit alias is not subject to the canary.
    expect(
      (await t.client.predict({ model: 'demand', alias: 'candidate', rows: [row('warehouse=0')] })).version,
    ).toBe(2);
  });

  it('shadow: mirrors requests to candidate, logs its answers, returns only production', async () => {
    await retag({ 'inference.shadow': 'true' });
    const ids = Array.from({ length: 5 }, (_, i) => `shadow-${i}`);
    for (const requestId of ids) {
      const response = await t.client.predict({ model: 'demand', requestId, rows: [row('warehouse=1')] });
      expect(response.version).toBe(1);
    }
    const queue = new Queue('monitor.predictions', { connection: predictions.redis, prefix });
    try {
      const shadowed = await eventually(async () => {
        const jobs = await queue.getJobs(['waiting']);
        const records = jobs.flatMap((job) =>
          ((job.data as MonitorPredictionsJob).records ?? []).map((r) => ({
            ...r,
            version: job.data.version,
          })),
        );
        const found = records.filter((r) => r.shadow && ids.includes(r.requestId));
        return found.length === ids.length ? found : undefined;
      }, 'shadow records in monitor.predictions');
      expect(new Set(shadowed.map((r) => r.version))).toEqual(new Set(['2']));
    } finally {
      await queue.close();
    }
  });
});

describe('prediction log', () => {
  it('writes inputs, outputs, version, latency, trace id, entity and segment keys to monitor.predictions', async () => {
    await retag({});
    const requestId = `log-${randomUUID()}`;
    const response = await t.client.predict({
      model: 'demand',
      requestId,
      rows: [row('warehouse=7/sku=1', { region: 'north' }), row('warehouse=7/sku=2', { region: 'north' })],
    });
    const queue = new Queue('monitor.predictions', { connection: predictions.redis, prefix });
    try {
      const job = await eventually(async () => {
        const jobs = await queue.getJobs(['waiting']);
        return jobs.find((j) =>
          (j.data as MonitorPredictionsJob).records?.some((r) => r.requestId === requestId),
        );
      }, 'the logged request');
      const data = job.data as MonitorPredictionsJob;
      expect(data.model).toBe('demand');
      expect(data.version).toBe('1');
      const record = data.records?.find((r) => r.requestId === requestId);
      expect(record?.inputs.features).toEqual([1, 2, 3, 1, 2, 3]);
      expect(record?.outputs.prediction?.[0]).toBeCloseTo(
        response.predictions[0]?.outputs.prediction?.values[0] ?? 0,
        4,
      );
      expect(record?.entityKeys).toEqual(['warehouse=7/sku=1', 'warehouse=7/sku=2']);
      expect(record?.segments).toEqual({ region: 'north' });
      expect(record?.traceId).toMatch(/^[0-9a-f]{32}$/);
      expect(record?.latencyUs).toBeGreaterThan(0);
    } finally {
      await queue.close();
    }
  });

  it('logs the rows of one request per segment when they belong to different segments', async () => {
    await retag({});
    const requestId = `mixed-${randomUUID()}`;
    await t.client.predict({
      model: 'demand',
      requestId,
      rows: [
        row('w1/sku=1', { warehouse_id: 'W1' }),
        row('w2/sku=1', { warehouse_id: 'W2' }),
        row('w1/sku=2', { warehouse_id: 'W1' }),
      ],
    });
    const queue = new Queue('monitor.predictions', { connection: predictions.redis, prefix });
    try {
      const logged = await eventually(async () => {
        const jobs = await queue.getJobs(['waiting']);
        const records = jobs.flatMap((j) =>
          ((j.data as MonitorPredictionsJob).records ?? []).filter((r) => r.requestId === requestId),
        );
        return records.length === 2 ? records : undefined;
      }, 'two records for the mixed request');
      const bySegment = Object.fromEntries(logged.map((r) => [r.segments?.warehouse_id, r]));
      expect(bySegment.W1?.entityKeys).toEqual(['w1/sku=1', 'w1/sku=2']);
      expect(bySegment.W1?.inputs.features).toEqual([1, 2, 3, 1, 2, 3]);
      expect(bySegment.W1?.outputs.prediction).toHaveLength(2);
      expect(bySegment.W2?.entityKeys).toEqual(['w2/sku=1']);
      expect(bySegment.W2?.outputs.prediction).toHaveLength(1);
    } finally {
      await queue.close();
    }
  });

  it('never fails or holds a prediction when Redis is absent: records are dropped and counted', async () => {
    const absent = predictionQueue('redis://127.0.0.1:1');
    const other = await startTestInference({
      sink: queueSink(absent.queue),
      log: { maxBuffer: 10, flushTimeoutMs: 200 },
    });
    try {
      other.registry.addVersion('demand', 1, await demandModelFiles(1));
      other.registry.setAlias('demand', 'production', 1);
      await eventually(() => other.pool.find('demand')?.aliases.get('production'), 'loaded');
      for (let i = 0; i < 30; i++) {
        expect((await other.client.predict({ model: 'demand', rows: [row()] })).version).toBe(1);
      }
      const dropped = await eventually(async () => {
        const s = await other.client.getServingStatus({});
        return s.predictionLogDropped >= 20n ? s.predictionLogDropped : undefined;
      }, 'drops counted');
      expect(dropped).toBeGreaterThanOrEqual(20n);
    } finally {
      await other.close();
      await absent.close();
    }
  });
});

describe('overload', () => {
  it('sheds with RESOURCE_EXHAUSTED at once when the expected wait exceeds what a request may wait', async () => {
    // On the model worker (inline_max_us 0): inline, this small model answers each request
    // before the next is read, so no queue forms to shed from.
    t.registry.tags.set('slow', {
      'inference.default_timeout_microseconds': '1',
      'inference.max_batch_size': '1',
      'inference.inline_max_us': '0',
    });
    t.registry.addVersion('slow', 1, await demandModelFiles(3, 256));
    t.registry.setAlias('slow', 'production', 1);
    await eventually(() => t.pool.find('slow')?.aliases.get('production'), 'slow loaded');
    const results = await Promise.all(
      Array.from({ length: 32 }, () =>
        t.client.predict({ model: 'slow', rows: [row()] }).then(
          () => 'ok',
          (e: RpcError) =>
            `${status[e.code]} ${e.details.includes('expected wait') ? 'expected wait' : e.details}`,
        ),
      ),
    );
    expect(new Set(results)).toEqual(new Set(['ok', 'RESOURCE_EXHAUSTED expected wait']));
  });

  it('sheds a burst beyond max_queue_size with RESOURCE_EXHAUSTED and answers every accepted request', async () => {
    t.registry.tags.set('small', {
      'inference.max_queue_size': '2',
      'inference.max_batch_size': '1',
      'inference.inline_max_us': '0',
    });
    t.registry.addVersion('small', 1, await demandModelFiles(4, 256));
    t.registry.setAlias('small', 'production', 1);
    await eventually(() => t.pool.find('small')?.aliases.get('production'), 'small loaded');
    const results = await Promise.all(
      Array.from({ length: 64 }, () =>
        t.client.predict({ model: 'small', rows: [row()] }).then(
          (r) => r.version,
          (e: RpcError) => e.code,
        ),
      ),
    );
    const codes = new Set(results.map((r) => (r === 1 ? 'ok' : status[r as number])));
    expect(codes).toEqual(new Set(['ok', 'RESOURCE_EXHAUSTED']));
  });

  it('exports requests, batch sizes, shedding, load time, queue depth and backend on /metrics', async () => {
    const http = await startHttpServer({ host: '127.0.0.1', port: 0, ready: () => true });
    try {
      const body = await (await fetch(`${http.url}/metrics`)).text();
      expect(body).toMatch(/ballast_inference_requests_total\{[^}]*model="demand"[^}]*status="OK"/);
      expect(body).toMatch(/ballast_inference_shed_total\{[^}]*reason="expected_wait"/);
      expect(body).toMatch(/ballast_inference_shed_total\{[^}]*reason="queue_full"/);
      for (const name of [
        'ballast_inference_request_duration_seconds_bucket',
        'ballast_inference_batch_size_bucket',
        'ballast_inference_queue_wait_seconds_bucket',
        'ballast_inference_execution_seconds_bucket',
        'ballast_inference_model_load_seconds_bucket',
        'ballast_inference_queue_depth',
      ]) {
        expect(body).toContain(name);
      }
    } finally {
      await http.close();
    }
  });
});

export type { PredictionJob };
