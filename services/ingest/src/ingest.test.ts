import { FieldType, VolumeStatus } from '@ballast/contracts/ballast/ingest/v1/ingest_pb.js';
import { RpcError } from '@ballast/grpc-kit';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKENDS, feed, startTestIngest, type TestIngest } from './test-support.js';
import { SALES_FIELDS, salesBatch, salesRows, salesSchema } from './testing/sales.js';

async function rpcError(promise: Promise<unknown>): Promise<RpcError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof RpcError) return err;
    throw err;
  }
  throw new Error('expected the call to fail');
}

async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of iterable) out.push(x);
  return out;
}

describe.each(BACKENDS.map((b) => [b]))('ingest on %s', (backend) => {
  let t: TestIngest;
  beforeAll(async () => {
    t = await startTestIngest(backend, { maxBatchRecords: 5_000 });
  });
  afterAll(async () => {
    await t?.close();
  });

  const create = (name: string) =>
    t.client.createDataset({ name, description: 'sales', schema: salesSchema() });
  const count = async (name: string) => (await t.client.getDataset({ name })).dataset?.recordCount;

  it('creates, gets and lists datasets; refuses a taken name and a bad schema', async () => {
    const { dataset } = await create('sales-a');
    expect(dataset?.schema?.major).toBe(1);
    expect(dataset?.schema?.minor).toBe(0);
    expect(
      (await t.client.getDataset({ name: 'sales-a' })).dataset?.schema?.fields.map((f) => f.name),
    ).toEqual(SALES_FIELDS);
    expect((await t.client.listDatasets({})).datasets.map((d) => d.name)).toContain('sales-a');
    expect((await rpcError(create('sales-a'))).code).toBe(status.ALREADY_EXISTS);
    expect((await rpcError(t.client.getDataset({ name: 'nope' }))).code).toBe(status.NOT_FOUND);
    const bad = await rpcError(
      t.client.createDataset({ name: 'bad', schema: { ...salesSchema(), eventTimeField: 'sku' } }),
    );
    expect(bad.code).toBe(status.INVALID_ARGUMENT);
    expect(bad.metadata.get('ballast-field')).toEqual(['schema.event_time_field']);
  });

  it('accepts valid records, drops a retried batch as duplicates, and reports quality', async () => {
    await create('sales-b');
    const batch = salesBatch('sales-b', 'warehouse-1', salesRows('w1', 0, 1000));
    const first = (await t.client.ingestBatch({ batch })).result;
    expect(first).toMatchObject({ accepted: 1000, duplicates: 0, quarantined: 0 });
    const price = first?.quality?.fields.find((f) => f.field === 'price');
    expect(price?.nullCount).toBe(11n); // n % 97 === 0 for n in 0..999
    const retry = (await t.client.ingestBatch({ batch })).result;
    expect(retry).toMatchObject({ accepted: 0, duplicates: 1000, quarantined: 0 });
    expect(await count('sales-b')).toBe(1000n);
  });

  it('quarantines invalid records with the rule each field broke, and replays them after a schema fix', async () => {
    await create('sales-c');
    const rows = salesRows('w2', 0, 10);
    const batch = salesBatch('sales-c', 'warehouse-2', rows);
    const units = batch.columns?.find((c) => c.name === 'units');
    const price = batch.columns?.find((c) => c.name === 'price');
    const region = batch.columns?.find((c) => c.name === 'region');
    if (
      units?.values?.case !== 'ints' ||
      price?.values?.case !== 'doubles' ||
      region?.values?.case !== 'strings'
    ) {
      throw new Error('unexpected batch shape');
    }
    (units.values.value.values as bigint[])[1] = -5n; // below min 0
    (price.values.value.values as number[])[2] = Number.NaN; // not finite
    (price.values.value.values as number[])[3] = Number.POSITIVE_INFINITY;
    (region.values.value.values as string[])[4] = 'central'; // not an allowed value
    (units.values.value.values as bigint[])[5] = 2n ** 60n; // beyond 2^53
    const result = (await t.client.ingestBatch({ batch })).result;
    expect(result).toMatchObject({ accepted: 5, duplicates: 0, quarantined: 5 });
    expect(result?.violations.map((v) => [v.recordIndex, v.field, v.rule])).toEqual([
      [1, 'units', 'min'],
      [2, 'price', 'finite'],
      [3, 'price', 'finite'],
      [4, 'region', 'allowed_values'],
      [5, 'units', 'safe_integer'],
    ]);
    expect(result?.quality?.fields.find((f) => f.field === 'units')?.outOfRangeCount).toBe(1n);

    // A retry does not quarantine the same records twice.
    expect((await t.client.ingestBatch({ batch })).result).toMatchObject({
      accepted: 0,
      duplicates: 5,
      quarantined: 5,
    });
    const listed = await t.client.listQuarantine({ dataset: 'sales-c' });
    expect(listed.records.map((r) => r.eventId)).toEqual([
      'w2-000000001',
      'w2-000000002',
      'w2-000000003',
      'w2-000000004',
      'w2-000000005',
    ]);
    expect(listed.records[3]?.violations[0]?.rule).toBe('allowed_values');
    expect(listed.records[3]?.record?.values.length).toBe(SALES_FIELDS.length);
    const page = await t.client.listQuarantine({ dataset: 'sales-c', pageSize: 2 });
    expect(page.records).toHaveLength(2);
    const rest = await t.client.listQuarantine({
      dataset: 'sales-c',
      pageSize: 10,
      pageToken: page.nextPageToken,
    });
    expect(rest.records).toHaveLength(3);

    // The region list was too narrow: widen it (compatible, minor version) and replay.
    const schema = salesSchema();
    const regionField = schema.fields?.find((f) => f.name === 'region');
    if (regionField) regionField.allowedValues = ['north', 'south', 'east', 'west', 'central'];
    const put = await t.client.putSchema({ dataset: 'sales-c', schema });
    expect(put.schema).toMatchObject({ major: 1, minor: 1 });
    const replay = await t.client.replayQuarantine({ dataset: 'sales-c' });
    expect(replay).toMatchObject({ accepted: 1, duplicates: 0, stillQuarantined: 4 });
    expect(new Set(replay.violations.map((v) => v.rule))).toEqual(new Set(['min', 'finite', 'safe_integer']));
    expect((await t.client.listQuarantine({ dataset: 'sales-c' })).records).toHaveLength(4);
    expect(await count('sales-c')).toBe(6n);
  });

  it('refuses malformed batches whole: unknown dataset, unknown or repeated column, ragged column, oversize', async () => {
    await create('sales-d');
    const ok = salesBatch('sales-d', 's', salesRows('w1', 0, 3));
    const unknown = await rpcError(t.client.ingestBatch({ batch: { ...ok, dataset: 'missing' } }));
    expect(unknown.code).toBe(status.NOT_FOUND);
    const extra = await rpcError(
      t.client.ingestBatch({ batch: { ...ok, columns: [...(ok.columns ?? []), { name: 'colour' }] } }),
    );
    expect(extra.code).toBe(status.INVALID_ARGUMENT);
    expect(extra.metadata.get('ballast-field')).toEqual(['batch.columns[8].name']);
    const ragged = await rpcError(t.client.ingestBatch({ batch: { ...ok, rowCount: 4 } }));
    expect(ragged.code).toBe(status.INVALID_ARGUMENT);
    const big = await rpcError(
      t.client.ingestBatch({ batch: salesBatch('sales-d', 's', salesRows('w1', 0, 5_001)) }),
    );
    expect(big.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(big.details).toContain('5000');
    expect(await count('sales-d')).toBe(0n);
  });

  it('quarantines wrong types, missing required fields and out-of-range timestamps per record', async () => {
    await create('sales-e');
    const rows = salesRows('w1', 0, 4);
    const batch = salesBatch('sales-e', 's', rows);
    const columns = (batch.columns ?? []).filter((c) => c.name !== 'sku');
    const ts = columns.find((c) => c.name === 'ts');
    if (ts?.values?.case !== 'timestamps') throw new Error('unexpected batch shape');
    (ts.values.value.seconds as bigint[])[0] = 300_000_000_000n;
    const units = {
      name: 'units',
      values: { case: 'strings' as const, value: { values: ['1', '2', '3', '4'] } },
    };
    const result = (
      await t.client.ingestBatch({
        batch: { ...batch, columns: [...columns.filter((c) => c.name !== 'units'), units] },
      })
    ).result;
    expect(result).toMatchObject({ accepted: 0, quarantined: 4 });
    const rules = (await t.client.listQuarantine({ dataset: 'sales-e' })).records[0]?.violations.map(
      (v) => `${v.field}:${v.rule}`,
    );
    expect(rules).toEqual(expect.arrayContaining(['sku:required', 'ts:range', 'units:type']));
  });

  it('keeps exactly one copy when two warehouse streams overlap and retry', async () => {
    await create('sales-f');
    const batches = (w: string, source: string) =>
      Array.from({ length: 10 }, (_, i) => ({
        batch: salesBatch('sales-f', source, salesRows(w, i * 200, 200)),
      }));
    // Each warehouse's stream, and a relay that forwards both warehouses' events again.
    const [a, b, relay] = await Promise.all([
      collect(t.client.ingest(feed(batches('w1', 'warehouse-1')))),
      collect(t.client.ingest(feed(batches('w2', 'warehouse-2')))),
      collect(t.client.ingest(feed([...batches('w2', 'relay'), ...batches('w1', 'relay')].reverse()))),
    ]);
    expect(a.map((r) => r.result?.batchIndex)).toEqual(Array.from({ length: 10 }, (_, i) => BigInt(i)));
    const total = (rs: typeof a, key: 'accepted' | 'duplicates') =>
      rs.reduce((s, r) => s + (r.result?.[key] ?? 0), 0);
    expect(total(a, 'accepted') + total(b, 'accepted') + total(relay, 'accepted')).toBe(4000);
    expect(total(a, 'duplicates') + total(b, 'duplicates') + total(relay, 'duplicates')).toBe(4000);
    expect(await count('sales-f')).toBe(4000n);
  });

  it('keeps what was acknowledged when a stream is cut half-way', async () => {
    await create('sales-g');
    const controller = new AbortController();
    const acks: number[] = [];
    let release!: () => void;
    const cut = new Promise<void>((resolve) => {
      release = resolve;
    });
    const requests = feed(
      Array.from({ length: 3 }, (_, i) => ({
        batch: salesBatch('sales-g', 's', salesRows('w3', i * 100, 100)),
      })),
      cut,
    );
    const call = (async () => {
      for await (const response of t.client.ingest(requests, { signal: controller.signal })) {
        acks.push(response.result?.accepted ?? 0);
        if (acks.length === 3) {
          controller.abort();
          release();
        }
      }
    })();
    expect((await rpcError(call)).code).toBe(status.CANCELLED);
    expect(acks).toEqual([100, 100, 100]);
    expect(await count('sales-g')).toBe(300n);
  });

  it('commits a version named by its content hash, whatever order the records came in', async () => {
    await create('sales-h1');
    await create('sales-h2');
    const rows = [...salesRows('w1', 0, 300), ...salesRows('w2', 0, 300)];
    await t.client.ingestBatch({ batch: salesBatch('sales-h1', 'a', rows.slice(0, 250)) });
    await t.client.ingestBatch({ batch: salesBatch('sales-h1', 'b', rows.slice(250)) });
    // The same records in reverse order, other batches, other column order, another source.
    const reversed = [...rows].reverse();
    const columnOrder = [...SALES_FIELDS].reverse();
    for (let i = 0; i < reversed.length; i += 70) {
      await t.client.ingestBatch({
        batch: salesBatch('sales-h2', 'c', reversed.slice(i, i + 70), columnOrder),
      });
    }
    const one = await t.client.commitVersion({ dataset: 'sales-h1' });
    const two = await t.client.commitVersion({ dataset: 'sales-h2' });
    expect(one.created).toBe(true);
    expect(one.version?.id).toMatch(/^[0-9a-f]{64}$/);
    expect(two.version?.id).toBe(one.version?.id);
    const again = await t.client.commitVersion({ dataset: 'sales-h1' });
    expect(again).toMatchObject({ created: false });
    expect(again.version?.id).toBe(one.version?.id);
    expect(one.version).toMatchObject({ number: 1n, recordCount: 600n, addedCount: 600n });
    expect(one.version?.minEventTime?.seconds).toBe(1_700_000_000n);
    expect(one.version?.maxEventTime?.seconds).toBe(1_700_000_000n + 299n * 60n);
    const units = one.version?.fields.find((f) => f.field === 'units');
    expect(units).toMatchObject({ type: FieldType.INT, count: 600n, min: 0, max: 39 });
    const job = await t.queue.getJob(`sales-h1.${one.version?.id}`);
    expect(job?.data).toEqual({ datasetName: 'sales-h1', datasetVersion: one.version?.id });

    const got = await t.client.getVersion({ dataset: 'sales-h1', id: one.version?.id ?? '' });
    expect(got.version).toEqual(one.version);
    expect((await t.client.getDataset({ name: 'sales-h1' })).dataset?.latestVersion).toBe(one.version?.id);

    const chunks = await collect(t.client.readVersion({ dataset: 'sales-h2', chunkSize: 250 }));
    expect(chunks.map((c) => c.batch?.rowCount)).toEqual([250, 250, 100]);
    const ids = chunks.flatMap((c) => {
      const col = c.batch?.columns.find((x) => x.name === 'event_id');
      return col?.values.case === 'strings' ? col.values.value.values : [];
    });
    expect(ids).toEqual(rows.map((r) => r.eventId).sort());
    const price = chunks[0]?.batch?.columns.find((x) => x.name === 'price');
    expect(price?.nullRows).toContain(0); // w1-000000000 has no price
  });

  it('reports a warehouse that stopped sending, and new categorical values, against the previous version', async () => {
    await create('sales-i');
    for (const w of ['w1', 'w2', 'w3']) {
      await t.client.ingestBatch({ batch: salesBatch('sales-i', `warehouse-${w}`, salesRows(w, 0, 100)) });
    }
    await t.client.commitVersion({ dataset: 'sales-i' });
    // Next period: w3 sends nothing, w4 appears.
    for (const w of ['w1', 'w2', 'w4']) {
      await t.client.ingestBatch({ batch: salesBatch('sales-i', `warehouse-${w}`, salesRows(w, 100, 100)) });
    }
    const batch = (await t.client.ingestBatch({ batch: salesBatch('sales-i', 'x', salesRows('w5', 0, 1)) }))
      .result;
    expect(batch?.quality?.fields.find((f) => f.field === 'warehouse_id')?.newValues).toEqual(['w5']);
    const { version } = await t.client.commitVersion({ dataset: 'sales-i' });
    expect(version).toMatchObject({ number: 2n, recordCount: 601n, addedCount: 301n });
    const w3 = version?.quality?.volume.find((v) => v.dimension === 'warehouse_id' && v.key === 'w3');
    expect(w3).toMatchObject({ count: 0n, previousCount: 100n, status: VolumeStatus.MISSING });
    const source = version?.quality?.volume.find((v) => v.dimension === 'source' && v.key === 'warehouse-w3');
    expect(source?.status).toBe(VolumeStatus.MISSING);
    expect(version?.quality?.anomalies).toContain(
      'segment warehouse_id=w3: missing (sent nothing) (0 now, 100 in the previous version)',
    );
    expect(version?.quality?.fields.find((f) => f.field === 'warehouse_id')?.newValues.sort()).toEqual([
      'w4',
      'w5',
    ]);
  });

  it('refuses a breaking schema change unless it is declared as a new major version', async () => {
    await create('sales-j');
    const schema = salesSchema();
    const dropped = { ...schema, fields: (schema.fields ?? []).filter((f) => f.name !== 'promo') };
    const refused = await rpcError(t.client.putSchema({ dataset: 'sales-j', schema: dropped }));
    expect(refused.code).toBe(status.FAILED_PRECONDITION);
    expect(refused.details).toContain('dropped field promo');
    const major = await t.client.putSchema({ dataset: 'sales-j', schema: dropped, newMajorVersion: true });
    expect(major).toMatchObject({ created: true, schema: { major: 2, minor: 0 } });
    const same = await t.client.putSchema({ dataset: 'sales-j', schema: dropped });
    expect(same).toMatchObject({ created: false, schema: { major: 2, minor: 0 } });
    const added = {
      ...dropped,
      fields: [...(dropped.fields ?? []), { name: 'channel', type: FieldType.STRING, nullable: true }],
    };
    const minor = await t.client.putSchema({ dataset: 'sales-j', schema: added });
    expect(minor).toMatchObject({
      created: true,
      schema: { major: 2, minor: 1 },
      changes: ['added field channel (optional)'],
    });
    // A batch carrying the dropped field is now malformed.
    const old = await rpcError(
      t.client.ingestBatch({ batch: salesBatch('sales-j', 's', salesRows('w1', 0, 2)) }),
    );
    expect(old.code).toBe(status.INVALID_ARGUMENT);
    expect(old.details).toContain('unknown field "promo"');
  });
});
