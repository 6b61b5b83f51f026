import { FieldType, IngestService } from '@ballast/contracts/ballast/ingest/v1/ingest_pb.js';
import { createClient, type ServiceClient } from '@ballast/grpc-kit';
import {
  createTestDatabase,
  type ServiceProcess,
  startServiceProcess,
  type TestDatabase,
} from '@ballast/grpc-kit/testing';
import { createQueue, QueueNames } from '@ballast/queue';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IngestSource } from './ingest-source.js';
import { MemorySource, type RecordSource } from './records.js';
import { collect, startTestFeature, TEST_REDIS_URL, type TestFeature } from './test-feature.js';
import { batches, retailDefinition, retailRecords } from './testing/retail.js';

// Materialization from the real ingest service (its process, over gRPC): a dataset version
// committed there gives the same rows as the same records fed to the engine directly. The
// ingest process runs from its build, on a database of its own (a devDependency, so that nx
// builds it first).
describe('materializing from ingest', () => {
  let db: TestDatabase;
  let ingest: ServiceProcess;
  let ingestClient: ServiceClient<typeof IngestService>;
  let f: TestFeature;
  let source: IngestSource;
  const memory = new MemorySource();
  const dataset = `sales-${Date.now().toString(36)}`;
  const records = retailRecords({ warehouses: 2, skus: 3, days: 30 });

  beforeAll(async () => {
    db = await createTestDatabase('feature_ingest');
    ingest = await startServiceProcess({
      package: '@ballast/ingest',
      env: { ...db.env, BALLAST_REDIS_URL: TEST_REDIS_URL },
      ready: IngestService.typeName,
    });
    ingestClient = createClient(IngestService, { address: ingest.address, deadlineMs: 60_000 });
    source = new IngestSource(ingest.address, { chunkSize: 50 });
    const routed: RecordSource = {
      read: (name, version, signal) => (version === 'memory' ? memory : source).read(name, version, signal),
    };
    f = await startTestFeature('postgres', { source: routed });
    memory.put(dataset, 'memory', batches(records));
  }, 180_000);
  afterAll(async () => {
    source?.close();
    await f?.close();
    ingestClient?.close();
    await ingest?.stop();
    await db?.close();
  });

  it('reads a committed version through ReadVersion and matches the in-memory result', async () => {
    await ingestClient.createDataset({
      name: dataset,
      schema: {
        fields: [
          { name: 'event_id', type: FieldType.STRING, required: true },
          { name: 'day', type: FieldType.TIMESTAMP, required: true },
          { name: 'warehouse_id', type: FieldType.STRING, required: true },
          { name: 'sku', type: FieldType.STRING, required: true },
          { name: 'region', type: FieldType.CATEGORICAL },
          { name: 'units', type: FieldType.FLOAT, required: true },
          { name: 'price', type: FieldType.FLOAT, nullable: true },
          { name: 'promo', type: FieldType.BOOL },
        ],
        eventIdField: 'event_id',
        eventTimeField: 'day',
        entityFields: ['warehouse_id', 'sku'],
        segmentFields: ['warehouse_id'],
      },
    });
    const col = <T>(pick: (r: (typeof records)[number]) => T) => records.map(pick);
    const ingested = await ingestClient.ingestBatch({
      batch: {
        dataset,
        source: 'test',
        rowCount: records.length,
        columns: [
          {
            name: 'event_id',
            values: { case: 'strings', value: { values: col((r) => r.event_id as string) } },
          },
          {
            name: 'day',
            values: {
              case: 'timestamps',
              value: { seconds: col((r) => BigInt((r.day as number) / 1000)) },
            },
          },
          {
            name: 'warehouse_id',
            values: { case: 'strings', value: { values: col((r) => r.warehouse_id as string) } },
          },
          { name: 'sku', values: { case: 'strings', value: { values: col((r) => r.sku as string) } } },
          {
            name: 'region',
            values: { case: 'strings', value: { values: col((r) => r.region as string) } },
          },
          {
            name: 'units',
            values: { case: 'doubles', value: { values: col((r) => r.units as number) } },
          },
          {
            name: 'price',
            values: { case: 'doubles', value: { values: col((r) => r.price as number) } },
          },
          {
            name: 'promo',
            values: { case: 'bools', value: { values: col((r) => r.promo as boolean) } },
          },
        ],
      },
    });
    expect(ingested.result?.accepted).toBe(records.length);
    const committed = await ingestClient.commitVersion({ dataset });
    const datasetVersion = committed.version?.id ?? '';
    expect(datasetVersion).toMatch(/^[0-9a-f]{64}$/);

    // The commit enqueued features.materialize for this version (on the shared queue: the
    // test only checks the job and removes it, leaving other workers' jobs alone).
    const queue = createQueue(QueueNames.featuresMaterialize, { connection: f.redis, telemetry: false });
    try {
      const job = await queue.getJob(`${dataset}.${datasetVersion}`);
      expect(job?.data).toEqual({ datasetName: dataset, datasetVersion });
      await job?.remove().catch(() => undefined);
    } finally {
      await queue.close();
    }

    const definition = retailDefinition();
    if (definition.source) definition.source.dataset = dataset;
    const { view } = await f.client.applyFeatureView({ definition });
    const version = view?.version ?? '';
    const fromIngest = await f.client.materialize({ view: 'demand', viewVersion: version, datasetVersion });
    expect(fromIngest).toMatchObject({
      records: BigInt(records.length),
      rows: BigInt(records.length),
      entities: 6n,
    });
    await f.client.materialize({ view: 'demand', viewVersion: version, datasetVersion: 'memory' });

    const rows = async (dv: string) =>
      batchesOf(
        await collect(f.client.getTrainingSet({ view: 'demand', viewVersion: version, datasetVersion: dv })),
      );
    const a = await rows(datasetVersion);
    expect(a.length).toBeGreaterThan(0);
    expect(a).toEqual(await rows('memory'));
  });
});

function batchesOf(parts: { part: { case: string | undefined; value?: unknown } }[]) {
  return parts.filter((p) => p.part.case === 'batch').map((p) => p.part.value);
}
