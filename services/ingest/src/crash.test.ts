import { IngestService } from '@ballast/contracts/ballast/ingest/v1/ingest_pb.js';
import { createClient } from '@ballast/grpc-kit';
import {
  createTestDatabase,
  type ServiceProcess,
  startServiceProcess,
  type TestDatabase,
} from '@ballast/grpc-kit/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { BACKENDS } from './test-support.js';
import { salesBatch, salesRows, salesSchema } from './testing/sales.js';

describe.each(BACKENDS.map((b) => [b]))('crash safety on %s', (backend) => {
  let db: TestDatabase | undefined;
  let ingest: ServiceProcess | undefined;

  afterAll(async () => {
    await ingest?.kill();
    await db?.close();
  });

  it('keeps every acknowledged record exactly once after kill -9 mid-stream, and nothing half-written', async () => {
    db = await createTestDatabase('ingest_crash', { postgres: backend === 'postgres' });
    const first = await startServiceProcess({
      package: '@ballast/ingest',
      env: db.env,
      ready: IngestService.typeName,
    });
    ingest = first;
    const client = createClient(IngestService, { address: first.address, deadlineMs: 60_000, retry: false });
    await client.createDataset({ name: 'sales', schema: salesSchema() });

    const BATCH = 500;
    const batches = Array.from({ length: 200 }, (_, i) =>
      salesBatch('sales', 'w1', salesRows('w1', i * BATCH, BATCH)),
    );
    const acked: number[] = [];
    let sent = 0;
    async function* send() {
      for (const batch of batches) {
        sent++;
        yield { batch };
      }
    }
    const stream = (async () => {
      for await (const response of client.ingest(send())) {
        acked.push(Number(response.result?.batchIndex));
        expect(response.result?.accepted).toBe(BATCH);
        if (acked.length === 5) first.child.kill('SIGKILL');
      }
    })();
    await expect(stream).rejects.toThrow();
    client.close();
    // Acknowledgements already on the wire when the kill landed may still arrive.
    expect(acked.slice(0, 5)).toEqual([0, 1, 2, 3, 4]);
    expect(sent).toBeGreaterThan(acked.length); // the kill landed with batches still coming

    await first.restart();
    const again = createClient(IngestService, { address: first.address, deadlineMs: 60_000 });
    try {
      const { version } = await again.commitVersion({ dataset: 'sales' });
      const ids: string[] = [];
      for await (const chunk of again.readVersion({ dataset: 'sales', chunkSize: 5_000 })) {
        const column = chunk.batch?.columns.find((c) => c.name === 'event_id');
        if (column?.values.case === 'strings') ids.push(...column.values.value.values);
      }
      expect(ids.length).toBe(Number(version?.recordCount));
      expect(new Set(ids).size).toBe(ids.length);
      const present = new Set(ids);
      // Every acknowledged record is there; every batch is there whole or not at all.
      for (const [index, batch] of batches.entries()) {
        const column = batch.columns?.find((c) => c.name === 'event_id');
        const batchIds = column?.values?.case === 'strings' ? (column.values.value.values as string[]) : [];
        const found = batchIds.filter((id) => present.has(id)).length;
        if (acked.includes(index)) expect(found).toBe(BATCH);
        else expect([0, BATCH]).toContain(found);
      }

      // The producer retries everything it sent: the result is every record exactly once.
      const results = [];
      for await (const response of again.ingest(
        (async function* () {
          for (const batch of batches) yield { batch };
        })(),
      )) {
        results.push(response.result);
      }
      const accepted = results.reduce((s, r) => s + (r?.accepted ?? 0), 0);
      const duplicates = results.reduce((s, r) => s + (r?.duplicates ?? 0), 0);
      expect(duplicates).toBe(ids.length);
      expect(accepted + duplicates).toBe(batches.length * BATCH);
      expect((await again.getDataset({ name: 'sales' })).dataset?.recordCount).toBe(
        BigInt(batches.length * BATCH),
      );
    } finally {
      again.close();
      expect(await first.stop()).toBe(0);
    }
  }, 180_000);
});
