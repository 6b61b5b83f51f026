// What grows with traffic, measured on this machine's Redis and Postgres (README, "Toward
// internet scale"): bytes per online entity (feature's packed vector under its key), bytes
// per logged prediction row waiting in `monitor.predictions`, bytes per prediction row kept
// for actuals to join (monitor's `predictions` table and its join index) and per stored
// window histogram with a full reservoir. Needs `npm run build` first; uses Redis DB 15 and a
// scratch table in the `test` database, both emptied after. Writes
// test/bench/results/scale.json.
//   node scripts/scale-figures.mjs
import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { createQueue, QueueNames } from '@ballast/queue';
import { Redis } from 'ioredis';
import pg from 'pg';
import { packVector } from '../services/feature/dist/online.js';
import { numericBaseline } from '../services/monitor/dist/histogram.js';
import { buildBaseline } from '../services/monitor/dist/model-baseline.js';
import { absorb } from '../services/monitor/dist/windows.js';

const REDIS_URL = process.env.BALLAST_SCALE_REDIS_URL ?? 'redis://127.0.0.1:6379/15';
const DATABASE_URL = process.env.BALLAST_SCALE_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const out = { loadAverage: loadavg()[0] };

const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
const usedMemory = async () => Number((await redis.info('memory')).match(/used_memory:(\d+)/)?.[1]);

// 1. Online store: 100,000 entities of one view version, as feature writes them.
const VIEW = 'a5e2e7a6385c794bae43ec1cdd460797a367b8a21034ab45d4b93b3bd2dc0b3d';
for (const features of [16, 64]) {
  await redis.flushdb();
  const before = await usedMemory();
  const n = 100_000;
  for (let i = 0; i < n; i += 1_000) {
    const batch = redis.pipeline();
    for (let j = i; j < i + 1_000; j++)
      batch.set(
        `ballast:feature:${VIEW}:sku-${j}/warehouse-${j % 50}`,
        packVector('ba8490b1f2e4', Date.now(), new Float64Array(features).fill(j)),
      );
    await batch.exec();
  }
  out[`redis_bytes_per_online_entity_${features}_features`] = Math.round(((await usedMemory()) - before) / n);
}

// 2. The prediction log: jobs of 500 one-row records (inference's flush size), 3 features.
await redis.flushdb();
const queue = createQueue(QueueNames.monitorPredictions, {
  connection: redis,
  prefix: 'scale',
  telemetry: false,
});
const records = Array.from({ length: 500 }, (_, i) => ({
  requestId: `req-${i}-0123456789ab`,
  time: Date.now(),
  latencyUs: 812,
  inputs: { price: [9.99 + i / 1000], promo: [i % 2], dow: [i % 7] },
  outputs: { prediction: [42.123456 + i] },
  entityKeys: [`W${i % 6}/S0${i % 8}/2024-03-01`],
  segments: { warehouse_id: `W${i % 6}` },
}));
const beforeJobs = await usedMemory();
const jobs = 200;
for (let i = 0; i < jobs; i++)
  await queue.add('batch', { model: 'demand', version: '1', rows: 500, records });
out.redis_bytes_per_logged_row = Math.round(((await usedMemory()) - beforeJobs) / jobs / 500);
await queue.obliterate({ force: true });
await queue.close();
await redis.flushdb();
redis.disconnect();

// 3. Postgres: monitor's predictions table (same columns and join index) and one window row.
const db = new pg.Client({ connectionString: DATABASE_URL });
await db.connect();
try {
  await db.query(`DROP TABLE IF EXISTS scale_predictions;
    CREATE TABLE scale_predictions (model text NOT NULL, version integer NOT NULL,
      entity_key text NOT NULL, time_ms bigint NOT NULL, segment text NOT NULL,
      prediction double precision NOT NULL);
    CREATE INDEX scale_predictions_join ON scale_predictions (model, entity_key, time_ms);
    INSERT INTO scale_predictions
      SELECT 'demand', 1, 'W' || (i % 6) || '/S' || (i % 800) || '/2024-03-' || (i % 28),
             1700000000000 + i, 'warehouse_id=W' || (i % 6), i * 0.5
      FROM generate_series(1, 200000) i;`);
  const { rows } = await db.query(`SELECT pg_total_relation_size('scale_predictions') / 200000 AS b`);
  out.postgres_bytes_per_join_row = Number(rows[0].b);
  // One numeric feature's window in one segment after 5,000 values: bins and a full reservoir.
  const reference = Array.from({ length: 640 }, (_, i) => 10 + Math.sin(i) * 2);
  const base = numericBaseline(reference, 10);
  const model = buildBaseline(
    'scale',
    1,
    [
      {
        feature: 'price',
        segment: '',
        isLabel: false,
        count: 640n,
        nullCount: 0n,
        mean: base.mean,
        std: base.std,
        histogram: { edges: base.edges, counts: base.counts.map(BigInt) },
      },
    ],
    undefined,
    { windowMs: 3_600_000 },
  );
  const values = Array.from({ length: 5_000 }, (_, i) => ({
    requestId: `r${i}`,
    time: 1_000,
    latencyUs: 1_000,
    inputs: { price: [10 + Math.cos(i) * 2] },
    outputs: {},
  }));
  const hist = [...absorb(model, values).windows.values()].find((w) => w.key.feature === 'price')?.hist;
  const size = await db.query('SELECT pg_column_size($1::jsonb) AS b', [JSON.stringify(hist)]);
  out.postgres_bytes_per_window_row = Number(size.rows[0].b);
} finally {
  await db.query('DROP TABLE IF EXISTS scale_predictions');
  await db.end();
}

console.table(out);
const file = new URL('../test/bench/results/scale.json', import.meta.url);
writeFileSync(file, `${JSON.stringify({ measuredAt: new Date().toISOString(), ...out }, null, 2)}\n`);
console.log(`wrote ${file.pathname}`);
