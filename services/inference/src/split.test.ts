import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DEFAULTS,
  demandModelFiles,
  eventually,
  FEATURES,
  failure,
  startTestInference,
  type TestInference,
} from './test-support.js';

/** Requests of more than max_batch_size rows: split into batches, answered whole and in order. */

const MAX_BATCH = DEFAULTS.batcher.max_batch_size;
const ROWS = Array.from({ length: 5000 }, (_, i) => [(i % 97) * 0.37, i % 2, ((i * 7) % 41) - 10]);
const named = (row: number[]) => ({ features: Object.fromEntries(FEATURES.map((f, i) => [f, row[i] ?? 0])) });
const tensor = (rows: number[][]) => ({
  name: 'features',
  datatype: 'FP32',
  shape: [BigInt(rows.length), 3n],
  contents: { fp32Contents: rows.flat() },
});
const batches = (rows: number[][]) =>
  Array.from({ length: Math.ceil(rows.length / MAX_BATCH) }, (_, b) =>
    rows.slice(b * MAX_BATCH, (b + 1) * MAX_BATCH),
  );

let t: TestInference;

beforeAll(async () => {
  t = await startTestInference();
  const files = await demandModelFiles(1);
  t.registry.addVersion('demand', 1, files);
  t.registry.setAlias('demand', 'production', 1);
  t.registry.tags.set('capped', { 'inference.max_rows_per_request': '1000' });
  t.registry.addVersion('capped', 1, files);
  t.registry.setAlias('capped', 'production', 1);
  await eventually(
    () =>
      t.pool.find('demand')?.aliases.get('production') && t.pool.find('capped')?.aliases.get('production'),
    'demand and capped serving',
  );
});

afterAll(async () => {
  await t?.close();
});

/** Batch-sized calls, one after another: the answers a client splitting the rows itself gets. */
async function predictInBatches(rows: number[][]): Promise<number[]> {
  const values: number[] = [];
  for (const batch of batches(rows)) {
    const response = await t.client.predict({ model: 'demand', rows: batch.map(named) });
    values.push(...response.predictions.map((p) => p.outputs.prediction?.values[0] ?? Number.NaN));
  }
  return values;
}

describe('a request larger than max_batch_size', () => {
  it('Predict: 5,000 rows in one call equal batch-sized calls row by row, in order', async () => {
    const executions = t.pool.find('demand')?.aliases.get('production')?.batcher.stats.executionCount ?? 0;
    const response = await t.client.predict({ model: 'demand', rows: ROWS.map(named), requestId: 'big' });
    expect(response.requestId).toBe('big');
    expect(response.predictions).toHaveLength(ROWS.length);
    expect(response.timings?.batchSize).toBe(MAX_BATCH);
    const stats = t.pool.find('demand')?.aliases.get('production')?.batcher.stats;
    expect((stats?.executionCount ?? 0) - executions).toBe(Math.ceil(ROWS.length / MAX_BATCH));
    const whole = response.predictions.map((p) => p.outputs.prediction?.values[0] ?? Number.NaN);
    expect(whole).toEqual(await predictInBatches(ROWS));
  });

  it('ModelInfer: 5,000 rows typed and raw equal batch-sized ModelInfer calls, in order', async () => {
    const typed = await t.oip.modelInfer({ modelName: 'demand', id: 'big', inputs: [tensor(ROWS)] });
    expect(typed.id).toBe('big');
    expect(typed.outputs[0]?.shape).toEqual([5000n, 1n]);
    const raw = await t.oip.modelInfer({
      modelName: 'demand',
      inputs: [{ name: 'features', datatype: 'FP32', shape: [5000n, 3n] }],
      rawInputContents: [new Uint8Array(new Float32Array(ROWS.flat()).buffer)],
    });
    const rawValues = Array.from(new Float32Array(Uint8Array.from(raw.rawOutputContents[0] ?? []).buffer));
    const pieces: number[] = [];
    for (const batch of batches(ROWS)) {
      const answer = await t.oip.modelInfer({ modelName: 'demand', inputs: [tensor(batch)] });
      pieces.push(...(answer.outputs[0]?.contents?.fp32Contents ?? []));
    }
    expect(typed.outputs[0]?.contents?.fp32Contents).toEqual(pieces);
    expect(rawValues).toEqual(pieces);
  });

  it('PredictStream: a 5,000-row request among small ones is answered whole, in order', async () => {
    async function* requests() {
      yield { request: { model: 'demand', requestId: 'small-0', rows: [named(ROWS[1] ?? [])] } };
      yield { request: { model: 'demand', requestId: 'big', rows: ROWS.map(named) } };
      yield { request: { model: 'demand', requestId: 'small-1', rows: [named(ROWS[2] ?? [])] } };
    }
    const answers = new Map<string, number[]>();
    for await (const message of t.client.predictStream(requests())) {
      expect(message.result.case).toBe('response');
      if (message.result.case === 'response') {
        answers.set(
          message.requestId,
          message.result.value.predictions.map((p) => p.outputs.prediction?.values[0] ?? Number.NaN),
        );
      }
    }
    expect([...answers.keys()].sort()).toEqual(['big', 'small-0', 'small-1']);
    const want = await predictInBatches(ROWS);
    // Small requests may share a batch with the last piece: equal to float precision.
    for (const [i, value] of (answers.get('big') ?? []).entries()) expect(value).toBeCloseTo(want[i] ?? 0, 5);
    expect(answers.get('small-0')?.[0]).toBeCloseTo(want[1] ?? 0, 5);
  });

  it('past the row cap (the model tag max_rows_per_request) is RESOURCE_EXHAUSTED naming the field and rule', async () => {
    const rows = ROWS.slice(0, 1001);
    expect(
      (await t.client.predict({ model: 'capped', rows: rows.slice(0, 1000).map(named) })).predictions,
    ).toHaveLength(1000);
    const predict = await failure(t.client.predict({ model: 'capped', rows: rows.map(named) }));
    expect(predict.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(predict.field).toBe('rows');
    expect(predict.rule).toBe('at most 1000 rows per request (max_rows_per_request), got 1001');
    const infer = await failure(t.oip.modelInfer({ modelName: 'capped', inputs: [tensor(rows)] }));
    expect(infer.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(infer.field).toBe('inputs[0].shape');
    expect(infer.rule).toContain('at most 1000 rows');
    const entities = await failure(
      t.client.predict({
        model: 'capped',
        entities: { entities: Array.from({ length: 1001 }, (_, i) => ({ keys: { warehouse: String(i) } })) },
      }),
    );
    expect(entities.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(entities.field).toBe('entities.entities');
  });

  it('fails whole when its deadline cannot be met, leaving nothing of it queued', async () => {
    const late = await failure(
      t.client.predict({ model: 'demand', rows: ROWS.map(named) }, { timeoutMs: 1 }),
    );
    expect([status.DEADLINE_EXCEEDED, status.RESOURCE_EXHAUSTED]).toContain(late.code);
    const batcher = t.pool.find('demand')?.aliases.get('production')?.batcher;
    await eventually(() => batcher?.queuedRows === 0, 'the queue drained');
    expect(
      (await t.client.predict({ model: 'demand', rows: ROWS.slice(0, 40).map(named) })).predictions,
    ).toHaveLength(40);
  });
});
