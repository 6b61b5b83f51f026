import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ContentHash, versionOrderKey } from './content-hash.js';
import { BACKENDS, startTestIngest, type TestIngest } from './test-support.js';
import { salesBatch, salesRows, salesSchema } from './testing/sales.js';
import { insertSyntheticSales } from './testing/synthetic.js';

/**
 * A commit reads records in arrival order and deals them into bucket files by their order
 * key (hash-order-sort.ts). With buckets this small and only four at a time, every commit
 * here deals its buckets again, level after level, and the version must still be named by
 * the hash of its records in the order of their event ids' sha256 digests, as the database
 * itself orders them.
 */
describe.each(BACKENDS)('commit through bucket files on %s', (kind) => {
  let t: TestIngest;
  let directory: string;

  /** The content hash of the dataset's records up to `records`, in the order the database gives by sha256. */
  const expectedId = async (dataset: string, records: number) => {
    const { rows } = await t.sql.query<{ event_id: string; data: string }>(
      `SELECT r.event_id, r.data::text AS data FROM records r JOIN datasets d ON d.id = r.dataset_id
       WHERE d.name = $1 ORDER BY sha256(convert_to(r.event_id, 'UTF8'))`,
      [dataset],
    );
    expect(rows).toHaveLength(records);
    const hash = new ContentHash();
    for (const r of rows) hash.add(versionOrderKey(r.event_id), r.data);
    return hash.digest();
  };

  /**
   * The version id of the dataset's records as an outsider computes it, in Python, with the
   * expression the README gives (records as event id and canonical JSON, in any order).
   */
  const pythonId = async (dataset: string) => {
    const { rows } = await t.sql.query<{ event_id: string; data: string }>(
      `SELECT r.event_id, r.data::text AS data FROM records r JOIN datasets d ON d.id = r.dataset_id
       WHERE d.name = $1 ORDER BY r.seq DESC`,
      [dataset],
    );
    const script = [
      'import json, sys',
      'from hashlib import sha256',
      'records = [(r[0], r[1].encode()) for r in json.load(sys.stdin)]',
      'print(sha256(b"".join(json + b"\\n" for id, json in sorted(records, key=lambda r: sha256(r[0].encode()).digest()))).hexdigest())',
    ].join('\n');
    const run = spawnSync('python3', ['-c', script], {
      input: JSON.stringify(rows.map((r) => [r.event_id, r.data])),
      encoding: 'utf8',
    });
    expect(run.stderr).toBe('');
    return run.stdout.trim();
  };

  beforeAll(async () => {
    directory = await mkdtemp(join(tmpdir(), 'ballast-commit-sort-test-'));
    t = await startTestIngest(kind, undefined, { bucketSize: 150, maxBuckets: 4, directory });
  }, 120_000);
  afterAll(async () => {
    await t?.close();
    await rm(directory, { recursive: true, force: true });
  });

  it('names the version by the hash in digest order, counts what each version added, and leaves no run file', async () => {
    await t.client.createDataset({ name: 'sorted', schema: salesSchema() });
    const { rows } = await t.sql.query<{ id: string }>("SELECT id FROM datasets WHERE name = 'sorted'");
    // md5 event ids: their order is unrelated to arrival order.
    await insertSyntheticSales(t.sql, (rows[0] as { id: string }).id, 3_000);

    const { operation } = await t.client.commitVersion({ dataset: 'sorted', returnOperation: true });
    let done = operation;
    while (!done?.done) {
      ({ operation: done } = await t.client.waitOperation({
        id: operation?.id ?? '',
        timeout: { seconds: 5n },
      }));
    }
    expect(done).toMatchObject({ errorCode: 0, created: true, recordsDone: 3_000n, recordsTotal: 3_000n });
    expect(done.version).toMatchObject({ number: 1n, recordCount: 3_000n, addedCount: 3_000n });
    expect(done.version?.id).toBe(await expectedId('sorted', 3_000));
    expect(done.version?.id).toBe(await pythonId('sorted'));

    // Records arriving later sort in among the earlier ones; only they count as added.
    await t.client.ingestBatch({ batch: salesBatch('sorted', 'late', salesRows('w9', 0, 400)) });
    const second = await t.client.commitVersion({ dataset: 'sorted' });
    expect(second.version).toMatchObject({ number: 2n, recordCount: 3_400n, addedCount: 400n });
    expect(second.version?.id).toBe(await expectedId('sorted', 3_400));
    const w9 = second.version?.quality?.volume.find((v) => v.dimension === 'warehouse_id' && v.key === 'w9');
    expect(w9?.count).toBe(400n);

    const again = await t.client.commitVersion({ dataset: 'sorted' });
    expect(again).toMatchObject({ created: false });
    expect(again.version?.id).toBe(second.version?.id);
    expect(await readdir(directory)).toEqual([]);
  });
});
