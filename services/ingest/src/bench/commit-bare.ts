import { createHash } from 'node:crypto';
import { SchemaSchema } from '@ballast/contracts/ballast/ingest/v1/ingest_pb.js';
import { create } from '@bufbuild/protobuf';
import { ContentHash } from '../content-hash.js';
import { HashOrderSort, type SortRecord } from '../hash-order-sort.js';
import { VersionAccumulator } from '../quality.js';
import { parseSchema } from '../schema.js';
import { salesSchema } from '../testing/sales.js';

/**
 * The commit's own work on N records with nothing around it, the baseline the commit bench
 * (commit.ts) sets the service against in the same run: a bare process, no service, no
 * database, no probes. Records like insertSyntheticSales's (md5 event ids, the same JSON)
 * are made a page of 5,000 at a time, untimed; what is timed is what commitNow does with
 * them: dealing them into the sort (pass one), then sorting the buckets and taking every
 * record into the content hash and the summaries (pass two), yielding the loop between
 * pages and batches as the service does. Prints one JSON line: seconds per pass.
 */
const n = Number(process.argv[2]);
const PAGE = 5_000;
const yieldToLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

function page(first: number): SortRecord[] {
  const rows: SortRecord[] = [];
  for (let k = first; k < Math.min(n, first + PAGE); k++) {
    const id = createHash('md5').update(String(k)).digest('hex');
    const ts = new Date((1_700_000_000 + k * 60) * 1000).toISOString().replace('.000Z', 'Z');
    const price = k % 97 === 0 ? 'null' : String(5 + (k % 13) * 0.5);
    const region = ['north', 'south', 'east', 'west'][k % 4];
    const data = `{"event_id":"${id}","price":${price},"promo":${k % 7 === 0},"region":"${region}","sku":"sku-${k % 500}","ts":"${ts}","units":${k % 40},"warehouse_id":"w${(k % 3) + 1}"}`;
    rows.push({ eventId: id, seq: String(k + 1), source: `w${(k % 3) + 1}`, data });
  }
  return rows;
}

const schema = {
  ...parseSchema(create(SchemaSchema, salesSchema())),
  major: 1,
  minor: 0,
  createdAt: new Date(),
};
const sort = new HashOrderSort(n);
let firstPassMs = 0;
try {
  for (let first = 0; first < n; first += PAGE) {
    const rows = page(first);
    await yieldToLoop();
    const t0 = performance.now();
    await sort.add(rows);
    firstPassMs += performance.now() - t0;
  }
  const t1 = performance.now();
  const hash = new ContentHash();
  const accumulator = new VersionAccumulator(schema, undefined);
  for await (const items of sort.sorted()) {
    await yieldToLoop();
    for (const { key, record } of items) {
      hash.add(key, record.data);
      accumulator.add(record.source, JSON.parse(record.data) as Record<string, unknown>, true);
    }
  }
  accumulator.finish([]);
  const secondPassMs = performance.now() - t1;
  if (hash.count !== n) throw new Error(`hashed ${hash.count} records, not ${n}`);
  process.stdout.write(
    `${JSON.stringify({ firstPassS: firstPassMs / 1000, secondPassS: secondPassMs / 1000 })}\n`,
  );
} finally {
  await sort.dispose();
}
