import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { ModelStatistics } from '@ballast/contracts/inference/grpc_predict_v2_pb.js';
import { DataType } from '@ballast/contracts/inference/model_config_pb.js';
import type { TfModel } from '@ballast/ml';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  demandModelFiles,
  eventually,
  failure,
  referenceModel,
  referencePredict,
  startTestInference,
  type TestInference,
} from './test-support.js';

/** Triton's gRPC extensions: ModelConfig, ModelStatistics, RepositoryIndex, ModelStreamInfer. */

const MAX_BATCH = 64;
const row = (i: number) => [(i % 97) * 0.37, i % 2, ((i * 7) % 41) - 10];
const tensor = (rows: number[][], datatype = 'FP32') => ({
  name: 'features',
  datatype,
  shape: [BigInt(rows.length), 3n],
  contents: { fp32Contents: rows.flat() },
});

let t: TestInference;
let model: TfModel;

beforeAll(async () => {
  t = await startTestInference();
  const files = await demandModelFiles(1);
  model = await referenceModel(files);
  t.registry.tags.set('demand', {
    'inference.max_batch_size': String(MAX_BATCH),
    'inference.preferred_batch_size': '8,16',
    'inference.max_queue_delay_microseconds': '100',
    'inference.max_rows_per_request': '20000',
  });
  t.registry.addVersion('demand', 1, files);
  t.registry.setAlias('demand', 'production', 1);
  // A model whose only version is refused at load (its weights cut short).
  t.registry.addVersion(
    'broken',
    1,
    files.map((f) => (f.path === 'weights.bin' ? { ...f, data: f.data.subarray(0, 10) } : f)),
  );
  t.registry.setAlias('broken', 'production', 1);
  await eventually(
    () => t.pool.find('demand')?.aliases.get('production') && t.pool.find('broken')?.failures.length,
    'demand serving and broken refused',
  );
});

afterAll(async () => {
  await t?.close();
});

const statsOf = async (): Promise<ModelStatistics> => {
  const response = await t.oip.modelStatistics({ name: 'demand', version: '1' });
  expect(response.modelStats).toHaveLength(1);
  return response.modelStats[0] as ModelStatistics;
};

describe("Triton's extensions", () => {
  it('ModelConfig maps the serving version: tensors, max_batch_size, the dynamic batcher, the row cap', async () => {
    const { config } = await t.oip.modelConfig({ name: 'demand', version: '' });
    expect(config?.name).toBe('demand');
    expect(config?.platform).toBe('tensorflowjs_wasm');
    expect(config?.maxBatchSize).toBe(MAX_BATCH);
    expect(config?.input).toEqual([
      expect.objectContaining({ name: 'features', dataType: DataType.TYPE_FP32, dims: [3n] }),
    ]);
    expect(config?.output).toEqual([
      expect.objectContaining({ name: 'prediction', dataType: DataType.TYPE_FP32, dims: [1n] }),
    ]);
    expect(config?.schedulingChoice.case).toBe('dynamicBatching');
    const batching = config?.schedulingChoice.value;
    expect(batching?.preferredBatchSize).toEqual([8, 16]);
    expect(batching?.maxQueueDelayMicroseconds).toBe(100n);
    expect(batching?.defaultQueuePolicy?.maxQueueSize).toBe(1024);
    expect(batching?.defaultQueuePolicy?.defaultTimeoutMicroseconds).toBe(0n);
    expect(config?.parameters.max_rows_per_request?.stringValue).toBe('20000');
    expect((await t.oip.modelConfig({ name: 'demand', version: '1' })).config?.maxBatchSize).toBe(MAX_BATCH);
    expect((await failure(t.oip.modelConfig({ name: 'demand', version: '9' }))).code).toBe(status.NOT_FOUND);
    expect((await failure(t.oip.modelConfig({ name: 'nope', version: '' }))).code).toBe(status.NOT_FOUND);
    const bad = await failure(t.oip.modelConfig({ name: 'demand', version: 'v1' }));
    expect(bad.code).toBe(status.INVALID_ARGUMENT);
    expect(bad.field).toBe('version');
  });

  it('ModelStatistics counts requests, rows, executions, failures, queue and compute', async () => {
    const before = await statsOf();
    await t.oip.modelInfer({ modelName: 'demand', inputs: [tensor([row(1), row(2), row(3)])] });
    const refused = await failure(
      t.oip.modelInfer({ modelName: 'demand', inputs: [tensor([row(1)], 'FP64')] }),
    );
    expect(refused.code).toBe(status.INVALID_ARGUMENT);
    const after = await statsOf();
    const delta = (get: (s: ModelStatistics) => bigint | undefined) =>
      (get(after) ?? 0n) - (get(before) ?? 0n);
    expect(after.name).toBe('demand');
    expect(after.version).toBe('1');
    expect(delta((s) => s.inferenceCount)).toBe(3n);
    expect(delta((s) => s.executionCount)).toBe(1n);
    expect(delta((s) => s.inferenceStats?.success?.count)).toBe(1n);
    expect(delta((s) => s.inferenceStats?.fail?.count)).toBe(1n);
    for (const kind of ['queue', 'computeInput', 'computeInfer', 'computeOutput'] as const) {
      expect(delta((s) => s.inferenceStats?.[kind]?.count)).toBe(1n);
    }
    expect(delta((s) => s.inferenceStats?.success?.ns)).toBeGreaterThan(0n);
    expect(delta((s) => s.inferenceStats?.computeInfer?.ns)).toBeGreaterThan(0n);
    expect(after.lastInference).toBeGreaterThan(0n);
    // Every model's versions when none is named; an unknown model or version is NOT_FOUND.
    const all = await t.oip.modelStatistics({ name: '', version: '' });
    expect(all.modelStats.map((s) => `${s.name}/${s.version}`)).toEqual(['demand/1']);
    expect((await failure(t.oip.modelStatistics({ name: 'nope', version: '' }))).code).toBe(status.NOT_FOUND);
    expect((await failure(t.oip.modelStatistics({ name: 'demand', version: '4' }))).code).toBe(
      status.NOT_FOUND,
    );
  });

  it('RepositoryIndex lists versions READY or UNAVAILABLE with the reason, and only the ready ones when asked', async () => {
    const { models } = await t.oip.repositoryIndex({});
    expect(models.map((m) => [m.name, m.version, m.state])).toEqual([
      ['broken', '1', 'UNAVAILABLE'],
      ['demand', '1', 'READY'],
    ]);
    expect(models[0]?.reason).toMatch(/^refused at load: .*(weights|bytes|shard|size)/i);
    expect(models[1]?.reason).toBe('');
    const ready = await t.oip.repositoryIndex({ ready: true });
    expect(ready.models.map((m) => m.name)).toEqual(['demand']);
  });

  it('ModelStreamInfer answers each request under its id; a bad one gets error_message and the stream goes on', async () => {
    async function* requests() {
      for (let i = 0; i < 20; i++) {
        yield {
          modelName: 'demand',
          id: `s-${i}`,
          inputs: [i === 7 ? tensor([row(i)], 'INT32') : tensor([row(i), row(i + 1)])],
        };
      }
      yield { modelName: 'nope', id: 'unknown-model', inputs: [tensor([row(0)])] };
    }
    const answers = new Map<string, { error: string; values: number[]; version: string }>();
    for await (const answer of t.oip.modelStreamInfer(requests())) {
      const response = answer.inferResponse;
      answers.set(response?.id ?? '', {
        error: answer.errorMessage,
        values: response?.outputs[0]?.contents?.fp32Contents ?? [],
        version: response?.modelVersion ?? '',
      });
    }
    expect(answers.size).toBe(21);
    expect(answers.get('s-7')?.error).toMatch(/^INVALID_ARGUMENT: inputs\[0\]\.datatype/);
    expect(answers.get('unknown-model')?.error).toMatch(/^NOT_FOUND: /);
    for (let i = 0; i < 20; i++) {
      if (i === 7) continue;
      const answer = answers.get(`s-${i}`);
      expect(answer?.error).toBe('');
      expect(answer?.version).toBe('1');
      const want = referencePredict(model, [row(i), row(i + 1)]);
      for (const [j, v] of (answer?.values ?? []).entries()) expect(v).toBeCloseTo(want[j] ?? 0, 4);
    }
  });
});

describe('a Triton client outside Node', () => {
  it("runs Triton's flow with Debian's python3-grpcio: index, config, a 5,000-row ModelInfer, statistics, a stream", async () => {
    const here = dirname(fileURLToPath(import.meta.url));
    const rows = 5000;
    // Asynchronously: the server answering it runs in this process's event loop.
    const { stdout, stderr } = await promisify(execFile)(
      '/usr/bin/python3',
      [
        join(here, 'triton_client.py'),
        t.address,
        join(here, '..', '..', '..', 'proto'),
        'demand',
        String(rows),
      ],
      { encoding: 'utf8', timeout: 120_000, maxBuffer: 64 * 1024 * 1024 },
    );
    expect(stderr).toBe('');
    type Stats = { inference_count: number; execution_count: number; success: { count: number } } & Record<
      string,
      { count: number; ns: number }
    >;
    const seen = JSON.parse(stdout) as {
      live: boolean;
      index: { name: string; version: string; state: string; reason: string }[];
      config: Record<string, unknown>;
      infer: { id: string; version: string; shape: number[]; values: number[] };
      statistics: { before: Stats[]; after: Stats[] };
      stream: Record<string, { error?: string; value?: number; version?: string }>;
    };
    expect(seen.live).toBe(true);
    expect(seen.index).toContainEqual({ name: 'demand', version: '1', state: 'READY', reason: '' });
    expect(seen.config).toEqual({
      name: 'demand',
      platform: 'tensorflowjs_wasm',
      max_batch_size: MAX_BATCH,
      input: [{ name: 'features', data_type: 'TYPE_FP32', dims: [3] }],
      output: [{ name: 'prediction', data_type: 'TYPE_FP32', dims: [1] }],
      scheduling: 'dynamic_batching',
      preferred_batch_size: [8, 16],
      max_queue_delay_microseconds: 100,
      max_queue_size: 1024,
      timeout_action: 'REJECT',
      parameters: { max_rows_per_request: '20000', engine: 'js' },
    });
    // One request of 5,000 rows, split into batches of max_batch_size, answered whole and in order.
    expect(seen.infer.id).toBe('big');
    expect(seen.infer.shape).toEqual([rows, 1]);
    const want = referencePredict(
      model,
      Array.from({ length: rows }, (_, i) => row(i)),
    );
    expect(seen.infer.values).toHaveLength(rows);
    for (const [i, v] of seen.infer.values.entries()) expect(v).toBeCloseTo(want[i] ?? 0, 4);
    const [before] = seen.statistics.before;
    const [after] = seen.statistics.after;
    expect(after?.inference_count).toBe((before?.inference_count ?? 0) + rows);
    expect(after?.execution_count).toBe((before?.execution_count ?? 0) + Math.ceil(rows / MAX_BATCH));
    expect(after?.success.count).toBe((before?.success.count ?? 0) + 1);
    expect(after?.queue?.count).toBe((before?.queue?.count ?? 0) + Math.ceil(rows / MAX_BATCH));
    expect(after?.compute_infer?.ns).toBeGreaterThan(before?.compute_infer?.ns ?? 0);
    // 100 streamed requests, each answered under its id; request 37 alone failed.
    expect(Object.keys(seen.stream).sort()).toEqual(Array.from({ length: 100 }, (_, i) => `req-${i}`).sort());
    for (let i = 0; i < 100; i++) {
      const answer = seen.stream[`req-${i}`];
      if (i === 37) {
        expect(answer?.error).toMatch(/^INVALID_ARGUMENT: inputs\[0\]\.datatype/);
        continue;
      }
      expect(answer?.error).toBeUndefined();
      expect(answer?.value).toBeCloseTo(want[i] ?? 0, 4);
    }
  });
});
