import { createServer } from 'node:net';
import { MaterializationState } from '@ballast/contracts/ballast/feature/v1/feature_pb.js';
import { startHttpServer } from '@ballast/telemetry';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IngestSource } from './ingest-source.js';
import { materializeQueue, rejection, startTestFeature, type TestFeature } from './test-feature.js';
import { batches, retailDefinition, retailRecords } from './testing/retail.js';

const VERSION = 'e'.repeat(64);

/** A loopback port nothing listens on: ingest down. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function until<T>(read: () => Promise<T>, done: (value: T) => boolean): Promise<T> {
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function failedCount(): Promise<number> {
  const http = await startHttpServer({ host: '127.0.0.1', port: 0, ready: () => true });
  try {
    const body = await (await fetch(`${http.url}/metrics`)).text();
    const line = body
      .split('\n')
      .find((l) => /^ballast_feature_materializations_total\{[^}]*outcome="failed"/.test(l));
    return line ? Number(line.split(' ').at(-1)) : 0;
  } finally {
    await http.close();
  }
}

describe('a materialization whose ingest is unreachable', () => {
  let f: TestFeature;
  let source: IngestSource;
  beforeAll(async () => {
    source = new IngestSource(`127.0.0.1:${await closedPort()}`);
    f = await startTestFeature('postgres', { source });
    await f.client.applyFeatureView({ definition: retailDefinition() });
  });
  afterAll(async () => {
    await f?.close();
    source?.close();
  });

  it('records each failed job attempt with its reason, in ListMaterializations and the metric', async () => {
    const before = await failedCount();
    const { queue, events, close } = await materializeQueue(f);
    try {
      const job = await queue.add(
        'commit',
        { datasetName: 'sales', datasetVersion: VERSION },
        { attempts: 2, backoff: { type: 'fixed', delay: 10 } },
      );
      await expect(job.waitUntilFinished(events, 30_000)).rejects.toThrow(/UNAVAILABLE/);
      const { materializations } = await f.client.listMaterializations({
        view: 'demand',
        state: MaterializationState.FAILED,
      });
      expect(materializations).toHaveLength(1);
      expect(materializations[0]).toMatchObject({
        view: 'demand',
        datasetVersion: VERSION,
        state: MaterializationState.FAILED,
        attempts: 2,
        trigger: `job ${job.id}`,
      });
      expect(materializations[0]?.reason).toMatch(/^UNAVAILABLE: /);
      expect(materializations[0]?.endTime).toBeDefined();
      expect(await failedCount()).toBe(before + 2);
    } finally {
      await close();
    }
  });

  it('answers a background Materialize at once, and its failure is recorded', async () => {
    const started = await f.client.materialize({
      view: 'demand',
      datasetVersion: 'f'.repeat(64),
      background: true,
    });
    expect(started.run?.state).toBe(MaterializationState.RUNNING);
    expect(started.rows).toBe(0n);
    const [run] = await until(
      async () => (await f.client.listMaterializations({ datasetVersion: 'f'.repeat(64) })).materializations,
      (runs) => runs[0]?.state !== MaterializationState.RUNNING,
    );
    expect(run).toMatchObject({ state: MaterializationState.FAILED, trigger: 'rpc background', attempts: 1 });
    expect(run?.reason).toMatch(/^UNAVAILABLE: /);
  });

  it('refuses a page size over the limit, naming the field', async () => {
    const err = await rejection(f.client.listMaterializations({ pageSize: 1001 }));
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.field).toBe('page_size');
  });
});

describe('a background Materialize that succeeds', () => {
  let f: TestFeature;
  beforeAll(async () => {
    f = await startTestFeature('pglite');
    f.source.put('sales', VERSION, batches(retailRecords({ warehouses: 2, skus: 2, days: 10 })));
    await f.client.applyFeatureView({ definition: retailDefinition() });
  });
  afterAll(async () => {
    await f?.close();
  });

  it('goes on after the answer, and ends SUCCEEDED with every record counted', async () => {
    const started = await f.client.materialize({ view: 'demand', datasetVersion: VERSION, background: true });
    expect(started.run?.state).toBe(MaterializationState.RUNNING);
    const [run] = await until(
      async () => (await f.client.listMaterializations({ view: 'demand' })).materializations,
      (runs) => runs[0]?.state !== MaterializationState.RUNNING,
    );
    expect(run).toMatchObject({
      state: MaterializationState.SUCCEEDED,
      reason: '',
      records: 40n,
      rows: 40n,
      skippedRecords: 0n,
      entities: 4n,
    });
    const again = await f.client.materialize({ view: 'demand', datasetVersion: VERSION });
    expect(again.run).toMatchObject({ state: MaterializationState.SUCCEEDED, attempts: 2, trigger: 'rpc' });
  });
});

describe('a materialize job over a version the view cannot read', () => {
  let f: TestFeature;
  beforeAll(async () => {
    f = await startTestFeature('pglite');
    // price is declared FLOAT; one record carries it as text, as a CSV with a stray cell would.
    const records = retailRecords({ warehouses: 1, skus: 2, days: 5 });
    records[3] = { ...records[3], price: 'n/a' };
    f.source.put('sales', VERSION, batches(records));
    await f.client.applyFeatureView({ definition: retailDefinition() });
  });
  afterAll(async () => {
    await f?.close();
  });

  it('fails at once, not once per attempt, and its run stays FAILED with the reason', async () => {
    const { queue, events, close } = await materializeQueue(f);
    try {
      const job = await queue.add(
        'commit',
        { datasetName: 'sales', datasetVersion: VERSION },
        { attempts: 3, backoff: { type: 'fixed', delay: 10 } },
      );
      await expect(job.waitUntilFinished(events, 30_000)).rejects.toThrow(
        /dataset field price does not match the view's source: declared FLOAT, got string "n\/a"/,
      );
      expect((await queue.getJob(job.id as string))?.attemptsMade).toBe(1);
      const { materializations } = await f.client.listMaterializations({ datasetVersion: VERSION });
      expect(materializations).toHaveLength(1);
      expect(materializations[0]).toMatchObject({
        state: MaterializationState.FAILED,
        attempts: 1,
        trigger: `job ${job.id}`,
      });
      expect(materializations[0]?.reason).toMatch(/^dataset field price does not match/);
    } finally {
      await close();
    }
  });
});
