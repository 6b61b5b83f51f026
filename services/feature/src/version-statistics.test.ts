import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DAY_MS } from './definition.js';
import { BACKENDS, startTestFeature, type TestFeature } from './test-feature.js';
import { batches, DAY0, retailDefinition, retailRecords } from './testing/retail.js';
import { PRECOMPUTED_BINS } from './version-statistics.js';

/** The answers kept for a version, by request key. */
async function keptRequests(f: TestFeature, viewVersion: string, datasetVersion: string) {
  const { rows } = await f.sql.query<{ request: string }>(
    'SELECT request FROM feature_statistics WHERE view_version = $1 AND dataset_version = $2 ORDER BY request',
    [viewVersion, datasetVersion],
  );
  return rows.map((r) => r.request);
}

describe.each(BACKENDS)('kept feature statistics on %s', (kind) => {
  let f: TestFeature;
  let view = '';
  const dataset = randomBytes(32).toString('hex');
  const records = retailRecords({ warehouses: 2, skus: 3, days: 30 });
  const firstWeeks = records.filter((r) => (r.day as number) < DAY0 + 14 * DAY_MS);

  beforeAll(async () => {
    f = await startTestFeature(kind);
    view = (await f.client.applyFeatureView({ definition: retailDefinition() })).view?.version ?? '';
    f.source.put('sales', dataset, batches(records));
  });
  afterAll(async () => {
    await f?.close();
  });

  const ask = (bins: number) =>
    f.client.getFeatureStatistics({ view: 'demand', viewVersion: view, datasetVersion: dataset, bins });

  it('works out the default and the lineage bin counts after a materialization, and answers from them', async () => {
    await f.client.materialize({ view: 'demand', viewVersion: view, datasetVersion: dataset });
    await f.materializer.settled();
    expect(await keptRequests(f, view, dataset)).toEqual(
      PRECOMPUTED_BINS.map((bins) => `bins=${bins} start=-Infinity end=Infinity`).sort(),
    );
    const answer = await ask(10);
    expect(answer.rowCount).toBe(BigInt(records.length));
    expect(
      answer.statistics.find((s) => s.feature === 'units' && s.segment === '')?.histogram?.counts,
    ).toHaveLength(10);
  });

  it('computes a request once when it comes twice at the same time', async () => {
    const done = await f.store.materialization(view, dataset);
    if (!done) throw new Error('not materialized');
    const resolved = await f.views.resolve('demand', view);
    const request = { bins: 9, start: Number.NEGATIVE_INFINITY, end: Number.POSITIVE_INFINITY };
    const [a, b] = await Promise.all([
      f.statistics.answer(resolved, dataset, done, request),
      f.statistics.answer(resolved, dataset, done, request),
    ]);
    // One computation's answer, handed to both (two would have made two objects).
    expect(a).toBe(b);
    expect(await keptRequests(f, view, dataset)).toContain('bins=9 start=-Infinity end=Infinity');
  });

  it('keeps an answer it had to compute, and gives the same one again', async () => {
    const first = await ask(7);
    expect(await keptRequests(f, view, dataset)).toContain('bins=7 start=-Infinity end=Infinity');
    expect(await ask(7)).toEqual(first);
  });

  it('drops the kept answers when the version is materialized again, and keeps new ones', async () => {
    // The same version name over fewer records: only a fresh computation can count them.
    f.source.put('sales', dataset, batches(firstWeeks));
    await f.client.materialize({ view: 'demand', viewVersion: view, datasetVersion: dataset });
    expect((await ask(7)).rowCount).toBe(BigInt(firstWeeks.length));
    await f.materializer.settled();
    expect((await ask(10)).rowCount).toBe(BigInt(firstWeeks.length));
  });

  it('does not keep an answer worked out over rows that have since been replaced', async () => {
    const before = await f.store.materialization(view, dataset);
    await f.client.materialize({ view: 'demand', viewVersion: view, datasetVersion: dataset });
    await f.materializer.settled();
    const after = await f.store.materialization(view, dataset);
    expect(after?.generation).not.toBe(before?.generation);
    await f.store.keepStatistics(
      view,
      dataset,
      before?.generation ?? '',
      'bins=3 stale',
      new Uint8Array([1]),
    );
    await f.store.keepStatistics(view, dataset, after?.generation ?? '', 'bins=3 fresh', new Uint8Array([1]));
    const kept = await keptRequests(f, view, dataset);
    expect(kept).toContain('bins=3 fresh');
    expect(kept).not.toContain('bins=3 stale');
  });

  it('stops when told to, keeping nothing', async () => {
    await f.client.materialize({ view: 'demand', viewVersion: view, datasetVersion: dataset });
    await f.materializer.settled();
    await f.sql.query('DELETE FROM feature_statistics WHERE dataset_version = $1', [dataset]);
    const stop = new AbortController();
    stop.abort(new Error('shutting down'));
    await expect(
      f.statistics.precompute(await f.views.resolve('demand', view), dataset, stop.signal),
    ).rejects.toThrow('shutting down');
    expect(await keptRequests(f, view, dataset)).toEqual([]);
  });
});
