import { Split, type TrainingSetBatch } from '@ballast/contracts/ballast/feature/v1/feature_pb.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DAY_MS } from './definition.js';
import { BACKENDS, collect, startTestFeature, type TestFeature } from './test-feature.js';
import { batches, DAY0, retailDefinition } from './testing/retail.js';

const VERSION = 'd'.repeat(64);

/**
 * Two events of one entity at the same event time (a correction sent twice, two sales
 * recorded in one tick): both are rows, nothing is dropped unseen, and where one must be
 * chosen (online latest, label) the record ingested last wins.
 */
function record(day: number, sku: string, units: number, id: string) {
  return {
    event_id: id,
    day: DAY0 + day * DAY_MS,
    warehouse_id: 'w0',
    sku,
    region: 'north',
    units,
    price: 5,
    promo: false,
  };
}

const RECORDS = [
  record(0, 'a', 10, 'a0'),
  record(1, 'a', 11, 'a1-first'),
  record(1, 'a', 13, 'a1-second'),
  record(2, 'a', 20, 'a2-first'),
  record(0, 'b', 7, 'b0'),
  record(2, 'a', 22, 'a2-second'),
  record(2, 'b', 8, 'b2'),
  { ...record(3, 'b', 9, 'b3-no-time'), day: null },
];

describe.each(BACKENDS)('same-time events on %s', (kind) => {
  let f: TestFeature;
  let version = '';
  beforeAll(async () => {
    f = await startTestFeature(kind);
    f.source.put('sales', VERSION, batches(RECORDS, 3));
    const applied = await f.client.applyFeatureView({
      definition: retailDefinition({ name: 'same-time' }),
    });
    version = applied.view?.version ?? '';
  });
  afterAll(async () => {
    await f?.close();
  });

  it('keeps every record: rows + skipped = records read', async () => {
    const done = await f.client.materialize({ view: 'same-time', datasetVersion: VERSION });
    expect(done.records).toBe(8n);
    expect(done.rows).toBe(7n);
    expect(done.skippedRecords).toBe(1n);
    expect(done.rows + done.skippedRecords).toBe(done.records);
    expect(done.entities).toBe(2n);
  });

  it('returns both same-time rows in training sets, in ingest order, with a rolling window over both', async () => {
    const parts = await collect(
      f.client.getTrainingSet({
        view: 'same-time',
        viewVersion: version,
        datasetVersion: VERSION,
        split: Split.ALL,
      }),
    );
    const rows = parts.flatMap((p) => (p.part.case === 'batch' ? [p.part.value] : [])) as TrainingSetBatch[];
    const width = 13;
    const units: number[] = [];
    const means: number[] = [];
    const labels: number[] = [];
    const times: number[] = [];
    for (const b of rows) {
      for (let i = 0; i < b.rowCount; i++) {
        if (b.entities[1]?.values[i] !== 'a') continue;
        units.push(b.features[i * width] as number);
        means.push(b.features[i * width + 2] as number);
        labels.push(b.labels[i] as number);
        times.push(Number(b.eventTimeUnixMillis[i]));
      }
    }
    // Labelled rows of sku a: day 0 and both day-1 records (day 2 has no next day).
    expect(times).toEqual([DAY0, DAY0 + DAY_MS, DAY0 + DAY_MS]);
    expect(units).toEqual([10, 11, 13]);
    // Each day-1 row's window (t - 7 days, t] holds every record at t: 10, 11 and 13.
    expect(means.slice(1)).toEqual([34 / 3, 34 / 3]);
    // The label of day 0 is the day-1 record ingested last; day 1's is day 2's last.
    expect(labels).toEqual([13, 22, 22]);
  });

  it('serves the record ingested last as the online latest vector', async () => {
    const online = await f.client.getOnlineFeatures({
      view: 'same-time',
      entities: [{ values: ['w0', 'a'] }, { values: ['w0', 'b'] }],
    });
    expect(online.eventTimeUnixMillis).toEqual([BigInt(DAY0 + 2 * DAY_MS), BigInt(DAY0 + 2 * DAY_MS)]);
    expect(online.values[0]).toBe(22);
    expect(online.values[13]).toBe(8);
  });
});
