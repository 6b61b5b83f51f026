import { Health, HealthCheckResponse_ServingStatus } from '@ballast/contracts/grpc/health/v1/health_pb.js';
import { createClient, RpcError } from '@ballast/grpc-kit';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKENDS, startTestIngest, type TestIngest } from './test-support.js';
import { salesSchema } from './testing/sales.js';
import { insertSyntheticSales } from './testing/synthetic.js';

/** Large enough that a commit takes seconds here, so calls made meanwhile overlap it. */
const RECORDS = 200_000;

describe.each(BACKENDS)('commit operations on %s', (kind) => {
  let t: TestIngest;
  let health: ReturnType<typeof createClient<typeof Health>>;

  const bigDataset = async (name: string) => {
    await t.client.createDataset({ name, schema: salesSchema() });
    const { rows } = await t.sql.query<{ id: string }>('SELECT id FROM datasets WHERE name = $1', [name]);
    await insertSyntheticSales(t.sql, (rows[0] as { id: string }).id, RECORDS);
  };
  const waitDone = async (id: string) => {
    for (;;) {
      const { operation } = await t.client.waitOperation({ id, timeout: { seconds: 5n } });
      if (operation?.done) return operation;
    }
  };

  beforeAll(async () => {
    t = await startTestIngest(kind);
    health = createClient(Health, { address: t.address });
  }, 120_000);
  afterAll(async () => {
    health?.close();
    await t?.close();
  });

  it('answers health checks and GetDataset while a large commit runs', async () => {
    await bigDataset('big-a');
    const { operation } = await t.client.commitVersion({ dataset: 'big-a', returnOperation: true });
    const id = operation?.id ?? '';
    expect(operation).toMatchObject({ dataset: 'big-a', done: false });
    let answeredDuring = 0;
    let progressSeen = false;
    for (;;) {
      const check = await health.check({ service: '' });
      expect(check.status).toBe(HealthCheckResponse_ServingStatus.SERVING);
      const { dataset } = await t.client.getDataset({ name: 'big-a' });
      expect(dataset?.recordCount).toBe(BigInt(RECORDS));
      const { operation: now } = await t.client.getOperation({ id });
      if (now?.done) break;
      answeredDuring++;
      if ((now?.recordsDone ?? 0n) > 0n) {
        progressSeen = true;
        expect(now?.recordsTotal).toBe(BigInt(RECORDS));
      }
    }
    expect(answeredDuring).toBeGreaterThan(0);
    expect(progressSeen).toBe(true);
    const done = await waitDone(id);
    expect(done).toMatchObject({ done: true, recordsDone: BigInt(RECORDS), errorCode: 0, created: true });
    expect(done.version?.recordCount).toBe(BigInt(RECORDS));
  }, 300_000);

  it('joins a running commit of the same dataset, and goes on when the caller cancels or its deadline passes', async () => {
    await bigDataset('big-b');
    const cancelled = new AbortController();
    // Caught at once: they fail long before the assertions below look at them.
    const waiting = t.client
      .commitVersion({ dataset: 'big-b' }, { signal: cancelled.signal })
      .catch((err: unknown) => err);
    const expired = t.client
      .commitVersion({ dataset: 'big-b' }, { timeoutMs: 1 })
      .catch((err: unknown) => err);
    const { operation: first } = await t.client.commitVersion({ dataset: 'big-b', returnOperation: true });
    const { operation: second } = await t.client.commitVersion({ dataset: 'big-b', returnOperation: true });
    expect(second?.id).toBe(first?.id);
    cancelled.abort();
    expect(await waiting).toMatchObject({ code: status.CANCELLED });
    expect(await expired).toMatchObject({ code: status.DEADLINE_EXCEEDED });

    const done = await waitDone(first?.id ?? '');
    expect(done).toMatchObject({ done: true, created: true, errorCode: 0 });
    expect(done.version?.recordCount).toBe(BigInt(RECORDS));
    // One commit ran for all four calls: the dataset has exactly one version.
    expect((await t.client.getVersion({ dataset: 'big-b' })).version).toMatchObject({
      id: done.version?.id,
      number: 1n,
    });
    // A caller that waits gets the version, as before operations existed.
    const again = await t.client.commitVersion({ dataset: 'big-b' });
    expect(again).toMatchObject({ created: false, version: { id: done.version?.id } });
    expect(again.operation?.done).toBe(true);
  }, 300_000);

  it('refuses an unknown dataset or operation with the field named', async () => {
    await expect(t.client.commitVersion({ dataset: 'nope', returnOperation: true })).rejects.toMatchObject({
      code: status.NOT_FOUND,
    });
    await expect(t.client.getOperation({ id: 'nope' })).rejects.toMatchObject({ code: status.NOT_FOUND });
    const missing = t.client.waitOperation({ id: '' });
    await expect(missing).rejects.toBeInstanceOf(RpcError);
    await expect(missing).rejects.toMatchObject({ code: status.INVALID_ARGUMENT, field: 'id' });
  });
});
