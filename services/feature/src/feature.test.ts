import {
  FieldStatus,
  type GetTrainingSetResponse,
  Split,
  type TrainingSetBatch,
} from '@ballast/contracts/ballast/feature/v1/feature_pb.js';
import { durationFromMs, timestampFromMs } from '@bufbuild/protobuf/wkt';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DAY_MS } from './definition.js';
import {
  BACKENDS,
  collect,
  materializeQueue,
  rejection,
  startTestFeature,
  type TestFeature,
} from './test-feature.js';
import { keysMatching } from './testing/redis-keys.js';
import { batches, DAY0, retailDefinition, retailRecords } from './testing/retail.js';

const V1 = 'a'.repeat(64);
const V2 = 'b'.repeat(64);
const DAYS = 40;

function batchesOf(parts: GetTrainingSetResponse[]): TrainingSetBatch[] {
  return parts.flatMap((p) => (p.part.case === 'batch' ? [p.part.value] : []));
}

describe.each(BACKENDS)('feature service on %s', (kind) => {
  let f: TestFeature;
  let version = '';
  const records = retailRecords({ warehouses: 3, skus: 4, days: DAYS });
  beforeAll(async () => {
    f = await startTestFeature(kind);
    f.source.put('sales', V1, batches(records.filter((r) => (r.day as number) < DAY0 + 30 * DAY_MS)));
    f.source.put('sales', V2, batches(records));
  });
  afterAll(async () => {
    await f?.close();
  });

  it('versions definitions by content: unchanged is a no-op, changed is a new version, both stay usable', async () => {
    const first = await f.client.applyFeatureView({ definition: retailDefinition() });
    expect(first.created).toBe(true);
    version = first.view?.version ?? '';
    expect(version).toMatch(/^[0-9a-f]{64}$/);
    const again = await f.client.applyFeatureView({ definition: retailDefinition() });
    expect(again).toMatchObject({ created: false, view: { version } });

    const changed = await f.client.applyFeatureView({
      definition: retailDefinition({ onlineMaxAge: durationFromMs(DAY_MS) }),
    });
    expect(changed.created).toBe(true);
    expect(changed.view?.version).not.toBe(version);
    expect((await f.client.getFeatureView({ name: 'demand' })).view?.version).toBe(changed.view?.version);
    expect(
      (await f.client.getFeatureView({ name: 'demand', version })).view?.definition?.onlineMaxAge,
    ).toBeUndefined();
    const missing = await rejection(f.client.getFeatureView({ name: 'demand', version: 'c'.repeat(64) }));
    expect(missing.code).toBe(status.NOT_FOUND);
  });

  it('refuses bad definitions with INVALID_ARGUMENT and the path', async () => {
    const bad = retailDefinition();
    const lag = bad.features[1]?.transform;
    if (lag?.case === 'lag') lag.value.timeField = 'units';
    const refused = await rejection(f.client.applyFeatureView({ definition: bad }));
    expect(refused).toMatchObject({
      code: status.INVALID_ARGUMENT,
      field: 'definition.features[1].lag.time_field',
    });
    const unknownEntity = await rejection(
      f.client.applyFeatureView({
        definition: retailDefinition({ entityFields: ['warehouse_id', 'store'] }),
      }),
    );
    expect(unknownEntity).toMatchObject({
      code: status.INVALID_ARGUMENT,
      field: 'definition.entity_fields[1]',
    });
  });

  it('materializes idempotently: a re-run gives the same rows and vectors', async () => {
    const first = await f.client.materialize({ view: 'demand', viewVersion: version, datasetVersion: V2 });
    expect(first).toMatchObject({
      viewVersion: version,
      records: BigInt(records.length),
      entities: 12n,
      onlineWritten: 12n,
    });
    expect(first.rows).toBe(BigInt(records.length));
    const dump = async () => {
      const { rows } = await f.sql.query(
        `SELECT event_time, entity_key, segment, label, encode(features, 'hex') AS f FROM rows
         WHERE view_version = $1 AND dataset_version = $2 ORDER BY event_time, entity_key`,
        [version, V2],
      );
      const keys = (await keysMatching(f.redis, `${f.prefix}:${version}:*`)).sort();
      const vectors = await Promise.all(keys.map((k) => f.redis.getBuffer(k)));
      return { rows, keys, vectors: vectors.map((v) => v?.toString('hex')) };
    };
    const before = await dump();
    expect(before.rows).toHaveLength(records.length);
    expect(before.keys).toHaveLength(12);
    const second = await f.client.materialize({ view: 'demand', viewVersion: version, datasetVersion: V2 });
    // The same result; the run record is the one thing that moves (one more attempt, a later end).
    expect({ ...second, run: undefined }).toEqual({ ...first, run: undefined });
    expect(second.run?.attempts).toBe((first.run?.attempts ?? 0) + 1);
    expect(await dump()).toEqual(before);
  });

  it('serves online vectors equal to the offline row at each entity’s latest event time', async () => {
    const view = await f.views.resolve('demand', version);
    const offline = new Map<string, { eventTime: number; features: Float64Array }>();
    for await (const rows of f.store.readRows(
      { viewVersion: version, datasetVersion: V2, start: -Infinity, end: Infinity, labelledOnly: false },
      1000,
    )) {
      for (const row of rows) offline.set(row.entityKey, row); // ordered by time: the last one wins
    }
    expect(offline.size).toBe(12);
    const entities = [...offline.keys()].map((k) => ({ values: JSON.parse(k) as string[] }));
    entities.splice(3, 0, { values: ['w9', 'sku-0'] });
    const response = await f.client.getOnlineFeatures({ view: 'demand', viewVersion: version, entities });
    const width = view.featureNames.length;
    expect(response.featureNames).toEqual(view.featureNames);
    expect(response.statuses[3]).toBe(FieldStatus.NOT_FOUND);
    expect(response.values.slice(3 * width, 4 * width).every(Number.isNaN)).toBe(true);
    expect(response.eventTimeUnixMillis[3]).toBe(0n);
    entities.forEach((entity, i) => {
      if (i === 3) return;
      const row = offline.get(JSON.stringify(entity.values));
      expect(response.statuses[i]).toBe(FieldStatus.PRESENT);
      expect(response.eventTimeUnixMillis[i]).toBe(BigInt(row?.eventTime ?? -1));
      expect(response.eventTimeUnixMillis[i]).toBe(BigInt(DAY0 + (DAYS - 1) * DAY_MS));
      expect(response.datasetVersions[i]).toBe(V2);
      expect(Number(response.ageMillis[i])).toBeGreaterThan(Date.now() - DAY0 - DAYS * DAY_MS);
      expect(response.values.slice(i * width, (i + 1) * width)).toEqual(Array.from(row?.features ?? []));
    });

    // Packed: the same numbers as little-endian float64 bytes.
    const packed = await f.client.getOnlineFeatures({
      view: 'demand',
      viewVersion: version,
      entities,
      packed: true,
    });
    expect(packed.values).toEqual([]);
    expect(packed.packedValues.byteLength).toBe(8 * width * entities.length);
    expect(Array.from(new Float64Array(Uint8Array.from(packed.packedValues).buffer))).toEqual(
      response.values,
    );
    expect(packed.statuses).toEqual(response.statuses);

    const arity = await rejection(
      f.client.getOnlineFeatures({ view: 'demand', viewVersion: version, entities: [{ values: ['w1'] }] }),
    );
    expect(arity).toMatchObject({ code: status.INVALID_ARGUMENT, field: 'entities[0].values' });
  });

  it('keeps the newer online vector when an older dataset version is materialized again', async () => {
    const older = await f.client.materialize({ view: 'demand', viewVersion: version, datasetVersion: V1 });
    expect(older).toMatchObject({ rows: BigInt(12 * 30), entities: 12n, onlineWritten: 0n });
    const response = await f.client.getOnlineFeatures({
      view: 'demand',
      viewVersion: version,
      entities: [{ values: ['w2', 'sku-3'] }],
    });
    expect(response.eventTimeUnixMillis).toEqual([BigInt(DAY0 + (DAYS - 1) * DAY_MS)]);
    expect(response.datasetVersions).toEqual([V2]);
    const again = await f.client.materialize({ view: 'demand', viewVersion: version, datasetVersion: V2 });
    expect(again.onlineWritten).toBe(12n);
  });

  it('marks vectors older than the view’s max age, never serving them as fresh', async () => {
    const latest = await f.client.getFeatureView({ name: 'demand' });
    await f.client.materialize({ view: 'demand', datasetVersion: V1 });
    const response = await f.client.getOnlineFeatures({
      view: 'demand',
      entities: [{ values: ['w0', 'sku-1'] }, { values: ['w0', 'nope'] }],
    });
    expect(response.viewVersion).toBe(latest.view?.version);
    expect(response.statuses).toEqual([FieldStatus.OUTSIDE_MAX_AGE, FieldStatus.NOT_FOUND]);
    expect(response.values[0]).not.toBeNaN();
    expect(response.datasetVersions[0]).toBe(V1);
  });

  it('streams a point-in-time correct training set in a deterministic order with a time split', async () => {
    const request = {
      view: 'demand',
      viewVersion: version,
      datasetVersion: V2,
      batchSize: 100,
      validationStartTime: timestampFromMs(DAY0 + 30 * DAY_MS),
    };
    const parts = await collect(f.client.getTrainingSet(request));
    const header = parts[0]?.part;
    expect(header?.case).toBe('header');
    if (header?.case !== 'header') return;
    expect(header.value).toMatchObject({
      viewVersion: version,
      labelName: 'units_next_day',
      entityFields: ['warehouse_id', 'sku'],
    });
    // The last day has no next-day label: left out.
    expect(header.value.rowCount).toBe(BigInt(12 * (DAYS - 1)));
    const rows = batchesOf(parts);
    expect(rows.reduce((n, b) => n + b.rowCount, 0)).toBe(12 * (DAYS - 1));
    const times = rows.flatMap((b) => b.eventTimeUnixMillis.map(Number));
    const keys = rows.flatMap(
      (b) => b.entities[0]?.values.map((w, i) => `${w}/${b.entities[1]?.values[i]}`) ?? [],
    );
    const order = times.map((t, i) => `${String(t).padStart(15, '0')} ${keys[i]}`);
    expect(order).toEqual([...order].sort());
    expect(rows.flatMap((b) => b.validation)).toEqual(times.map((t) => t >= DAY0 + 30 * DAY_MS));

    // Each label is the next day's units, and each units_mean_7 uses only days up to the row's.
    const width = header.value.featureNames.length;
    const mean = header.value.featureNames.indexOf('units_mean_7');
    const units = (w: string, s: string, d: number) =>
      records.find((r) => r.warehouse_id === w && r.sku === s && r.day === DAY0 + d * DAY_MS)
        ?.units as number;
    for (const batch of rows.slice(0, 3)) {
      for (let i = 0; i < batch.rowCount; i++) {
        const [w, s] = [batch.entities[0]?.values[i] as string, batch.entities[1]?.values[i] as string];
        const d = (Number(batch.eventTimeUnixMillis[i]) - DAY0) / DAY_MS;
        expect(batch.labels[i]).toBe(units(w, s, d + 1));
        const past = Array.from({ length: Math.min(7, d + 1) }, (_, k) => units(w, s, d - k));
        expect(batch.features[i * width + mean]).toBeCloseTo(
          past.reduce((a, b) => a + b, 0) / past.length,
          9,
        );
      }
    }

    const train = batchesOf(await collect(f.client.getTrainingSet({ ...request, split: Split.TRAIN })));
    const validation = batchesOf(
      await collect(f.client.getTrainingSet({ ...request, split: Split.VALIDATION })),
    );
    expect(train.reduce((n, b) => n + b.rowCount, 0)).toBe(12 * 30);
    expect(validation.reduce((n, b) => n + b.rowCount, 0)).toBe(12 * (DAYS - 31));
    expect(validation.every((b) => b.validation.every(Boolean))).toBe(true);

    const unpinned = await rejection(
      collect(f.client.getTrainingSet({ view: 'demand', datasetVersion: V2 })),
    );
    expect(unpinned).toMatchObject({ code: status.INVALID_ARGUMENT, field: 'view_version' });
    const notMaterialized = await rejection(
      collect(
        f.client.getTrainingSet({ view: 'demand', viewVersion: version, datasetVersion: 'c'.repeat(64) }),
      ),
    );
    expect(notMaterialized.code).toBe(status.NOT_FOUND);
  });

  it('reports feature statistics per feature and segment', async () => {
    const response = await f.client.getFeatureStatistics({
      view: 'demand',
      viewVersion: version,
      datasetVersion: V2,
      bins: 5,
    });
    expect(response.rowCount).toBe(BigInt(records.length));
    expect(response.quantileSampleRows).toBe(0n); // every row fits: exact quantiles
    const units = response.statistics.find((s) => s.feature === 'units' && s.segment === '');
    const values = records.map((r) => r.units as number);
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    expect(units).toMatchObject({
      count: BigInt(values.length),
      nullCount: 0n,
      min: Math.min(...values),
      max: Math.max(...values),
    });
    expect(units?.mean).toBeCloseTo(mean, 9);
    expect(units?.histogram?.edges).toHaveLength(6);
    expect(units?.histogram?.counts.reduce((a, b) => a + b, 0n)).toBe(BigInt(values.length));
    expect(units?.quantiles.find((q) => q.q === 0.5)?.value).toBe(
      [...values].sort((a, b) => a - b)[values.length / 2 - 1],
    );
    const w1 = response.statistics.find((s) => s.feature === 'units' && s.segment === 'warehouse_id=w1');
    expect(w1?.count).toBe(BigInt(4 * DAYS));
    const lag = response.statistics.find((s) => s.feature === 'units_lag_7' && s.segment === '');
    expect(lag?.nullCount).toBe(BigInt(12 * 7));
    const label = response.statistics.find((s) => s.isLabel && s.segment === '');
    expect(label).toMatchObject({ feature: 'units_next_day', nullCount: 12n });
    // Every feature and the label, overall and for 3 warehouses.
    expect(response.statistics).toHaveLength(response.statistics.filter((s) => s.segment === '').length * 4);
  });

  it('materializes on features.materialize jobs, with progress', async () => {
    const { worker, queue, events, close } = await materializeQueue(f);
    try {
      const progress: number[] = [];
      worker.on('progress', (_job, value) => progress.push(value as number));
      const job = await queue.add('commit', { datasetName: 'sales', datasetVersion: V1 });
      const result = (await job.waitUntilFinished(events, 30_000)) as {
        views: { version: string; rows: number }[];
      };
      const latest = (await f.client.getFeatureView({ name: 'demand' })).view?.version ?? '';
      expect(result.views).toEqual([{ name: 'demand', version: latest, rows: 12 * 30, entities: 12 }]);
      expect(progress.at(-1)).toBe(100);
      expect(progress).toEqual([...progress].sort((a, b) => a - b));
      const training = await collect(
        f.client.getTrainingSet({ view: 'demand', viewVersion: latest, datasetVersion: V1 }),
      );
      expect(training[0]?.part.case === 'header' && training[0].part.value.rowCount).toBe(BigInt(12 * 29));
    } finally {
      await close();
    }
  });
});
