import { EncodingKind } from '@ballast/contracts/ballast/feature/v1/feature_pb.js';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CompiledView, compileView, DAY_MS } from './definition.js';
import { Materializer } from './materialize.js';
import { MemorySource, type RecordSource, type SourceBatch, type SourceValue } from './records.js';
import { Stage } from './stage.js';
import { BACKENDS, startTestFeature, type TestFeature } from './test-feature.js';
import { batches, DAY0, random, retailDefinition, retailRecords } from './testing/retail.js';

/**
 * The streaming materialization (stream.ts) against the in-memory one, on the same version:
 * the same rows bit for bit, the same fit and counts, the same online vectors, whatever the
 * chunk size (3 records: nearly every entity's rows straddle chunks). The version is shuffled
 * (ingest order is not row order), has same-time events, skipped records, keys that need
 * escaping, and fractional prices, so a fit summed in another order would differ in its
 * last bits.
 */

const VERSION = '5'.repeat(64);

function definition() {
  const base = retailDefinition();
  return retailDefinition({
    name: 'stream',
    fitWindow: {
      startTime: timestampFromMs(DAY0 + 3 * DAY_MS),
      endTime: timestampFromMs(DAY0 + 20 * DAY_MS),
    },
    features: [
      ...base.features,
      // A standardization of a standardization, and of a ratio over one: three fit passes.
      { name: 'price_zz', transform: { case: 'standardize', value: { input: 'price_z' } } },
      {
        name: 'z_per_unit',
        transform: { case: 'ratio', value: { numerator: 'price_z', denominator: 'units' } },
      },
      { name: 'z_per_unit_z', transform: { case: 'standardize', value: { input: 'z_per_unit' } } },
      { name: 'mean_z', transform: { case: 'standardize', value: { input: 'units_mean_7' } } },
      {
        name: 'sku_index',
        transform: { case: 'encoding', value: { field: 'sku', kind: EncodingKind.INDEX, maxCategories: 3 } },
      },
      {
        name: 'promo_index',
        transform: {
          case: 'encoding',
          value: { field: 'promo', kind: EncodingKind.INDEX, maxCategories: 0 },
        },
      },
    ],
  });
}

function records(): Record<string, SourceValue>[] {
  const out = retailRecords({ warehouses: 3, skus: 4, days: 30 });
  const odd = (day: number, sku: string, units: number, id: string) => ({
    event_id: id,
    day: DAY0 + day * DAY_MS,
    warehouse_id: 'w"\\ü',
    sku,
    region: null,
    units,
    price: 4.1 + day / 3,
    promo: day % 2 === 0,
  });
  for (let d = 0; d < 12; d++) out.push(odd(d, 'sku-📦', d + 1, `odd-${d}`));
  out.push(odd(4, 'sku-📦', 40, 'odd-4-again'), odd(4, 'sku-📦', 41, 'odd-4-third'));
  out.push({ ...odd(5, 'sku-x', 1, 'no-time'), day: null }, { ...odd(6, 'sku-x', 1, 'no-key'), sku: null });
  const next = random(11);
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [out[i], out[j]] = [out[j] as Record<string, SourceValue>, out[i] as Record<string, SourceValue>];
  }
  return out;
}

async function snapshot(f: TestFeature, view: CompiledView) {
  const { rows } = await f.sql.query<{ entity_key: string }>(
    `SELECT event_time, entity_key, record, segment, label, encode(features, 'hex') AS features FROM rows
     WHERE view_version = $1 AND dataset_version = $2 ORDER BY entity_key COLLATE "C", event_time, record`,
    [view.version, VERSION],
  );
  const keys = [...new Set(rows.map((r) => r.entity_key))];
  const online = await f.online.readPacked(view.version, keys);
  const recorded = await f.store.materialization(view.version, VERSION);
  return {
    rows,
    // Everything the materialization records but when it was written.
    materialization: recorded && { ...recorded, generation: undefined },
    online: online.map((b) => b?.toString('hex') ?? null),
  };
}

async function stageTables(f: TestFeature): Promise<string[]> {
  const { rows } = await f.sql.query<{ table_name: string }>(
    `SELECT table_name FROM information_schema.tables WHERE table_schema = $1 AND table_name LIKE 'stage\\_%'`,
    [f.sql.schema],
  );
  return rows.map((r) => r.table_name);
}

/** A source that fails after its first batches (ingest dropping the stream mid-version). */
class FailingSource implements RecordSource {
  constructor(private readonly batches: SourceBatch[]) {}
  async *read(): AsyncIterable<SourceBatch> {
    yield* this.batches.slice(0, 2);
    throw new Error('UNAVAILABLE: Connection dropped');
  }
}

describe.each(BACKENDS)('streaming materialization on %s', (kind) => {
  let f: TestFeature;
  const view = compileView(definition());
  const source = new MemorySource();
  const materializer = (mode: 'stream' | 'memory', chunkRecords?: number, from: RecordSource = source) =>
    new Materializer({ store: f.store, online: f.online, source: from, runs: f.runs, mode, chunkRecords });
  let memory: Awaited<ReturnType<typeof snapshot>>;
  let memoryResult: Awaited<ReturnType<Materializer['run']>>;

  beforeAll(async () => {
    f = await startTestFeature(kind);
    source.put('sales', VERSION, batches(records(), 50));
    await f.store.applyView(view);
    memoryResult = await materializer('memory').run(view, VERSION);
    memory = await snapshot(f, view);
  });
  afterAll(async () => {
    await f?.close();
  });

  it('the in-memory reference holds what the comparison needs', () => {
    expect(memoryResult).toMatchObject({
      records: 376,
      rows: 374,
      skipped: 2,
      entities: 13,
      onlineWritten: 13,
    });
    const fit = memory.materialization?.fit;
    expect(Object.keys(fit?.standardization ?? {}).sort()).toEqual([
      'mean_z',
      'price_z',
      'price_zz',
      'z_per_unit_z',
    ]);
    expect(fit?.vocabularies.promo_index).toEqual(['false', 'true']);
    expect(memory.rows.filter((r) => r.entity_key === '["w\\"\\\\ü","sku-📦"]')).toHaveLength(14);
  });

  it.each([3, 7, 1000])(
    'gives the same rows, fit, counts and online vectors with %i records a chunk',
    async (chunk) => {
      const fractions: number[] = [];
      const result = await materializer('stream', chunk).run(view, VERSION, {
        progress: (fraction) => fractions.push(fraction),
      });
      const { run, ...counts } = result;
      const { run: _, ...expected } = memoryResult;
      expect(counts).toEqual(expected);
      expect(run.state).toBe('succeeded');
      const streamed = await snapshot(f, view);
      expect(streamed.rows).toEqual(memory.rows);
      expect(streamed.materialization).toEqual(memory.materialization);
      expect(streamed.online).toEqual(memory.online);
      expect(fractions).toEqual([...fractions].sort((a, b) => a - b));
      expect(fractions.at(-1)).toBe(1);
      expect(await stageTables(f)).toEqual([]);
    },
  );

  it('records a source failed mid-version, keeps the previous rows and drops its stage', async () => {
    const failing = new FailingSource(batches(records(), 50));
    await expect(materializer('stream', 5, failing).run(view, VERSION)).rejects.toThrow(/Connection dropped/);
    const [run] = await f.runs.list({
      view: view.name,
      viewVersion: view.version,
      datasetVersion: VERSION,
      state: undefined,
      limit: 1,
    });
    expect(run).toMatchObject({ state: 'failed', reason: 'UNAVAILABLE: Connection dropped' });
    expect((await snapshot(f, view)).rows).toEqual(memory.rows);
    expect(await stageTables(f)).toEqual([]);
  });

  it('drops a stage left by a run that died once it is a day old, and no other', async () => {
    const dead = await f.store.stage(view);
    const live = await f.store.stage(view);
    await f.sql.exec(`COMMENT ON TABLE "${dead.table}" IS '${Date.now() - 25 * 3_600_000}'`);
    expect((await stageTables(f)).sort()).toEqual(
      [dead.table, `${dead.table}_latest`, live.table, `${live.table}_latest`].sort(),
    );
    expect(await Stage.sweep(f.sql)).toEqual([dead.table]);
    expect((await stageTables(f)).sort()).toEqual([live.table, `${live.table}_latest`].sort());
    await live.drop();
  });

  it('stops on abort while writing rows, and keeps the previous rows', async () => {
    const abort = new AbortController();
    const run = materializer('stream', 5).run(view, VERSION, {
      signal: abort.signal,
      progress: (fraction) => {
        if (fraction > 0.8) abort.abort(new Error('client went away'));
      },
    });
    await expect(run).rejects.toThrow(/client went away/);
    const [recorded] = await f.runs.list({
      view: view.name,
      viewVersion: '',
      datasetVersion: VERSION,
      state: 'failed',
      limit: 1,
    });
    expect(recorded?.reason).toBe('client went away');
    expect((await snapshot(f, view)).rows).toEqual(memory.rows);
    expect(await stageTables(f)).toEqual([]);
  });
});
