import type { Sql } from '@ballast/storage';
import { addToRecordCount } from '../store.js';

/**
 * Writes `count` sales records of the reference schema straight into the records table, in
 * SQL, for tests and benchmarks that need a large version without timing its ingestion
 * (the dataset's running count is kept, as the service keeps it).
 * Event ids are md5 of the row number, so their order is unrelated to arrival (seq) order,
 * as with many sources; chunks keep each statement (and PGlite's memory) bounded.
 */
export async function insertSyntheticSales(sql: Sql, datasetId: string, count: number): Promise<void> {
  const chunk = 50_000;
  for (let first = 0; first < count; first += chunk) {
    await sql.transaction(async (tx) => {
      const inserted = await tx.query(
        `INSERT INTO records (dataset_id, event_id, event_time, source, schema_major, schema_minor, data)
       SELECT $1, id, to_timestamp(ts), 'w' || (k % 3 + 1), 1, 0,
         format('{"event_id":"%s","price":%s,"promo":%s,"region":"%s","sku":"sku-%s","ts":"%s","units":%s,"warehouse_id":"w%s"}',
           id, CASE WHEN k % 97 = 0 THEN 'null' ELSE (5 + (k % 13) * 0.5)::text END,
           CASE WHEN k % 7 = 0 THEN 'true' ELSE 'false' END,
           (ARRAY['north','south','east','west'])[k % 4 + 1], k % 500,
           to_char(to_timestamp(ts) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), k % 40, k % 3 + 1)::json
       FROM (SELECT k, md5(k::text) AS id, 1700000000 + k * 60 AS ts
             FROM generate_series($2::bigint, $3::bigint) AS k) AS g`,
        [datasetId, first, Math.min(count, first + chunk) - 1],
      );
      await addToRecordCount(tx, datasetId, inserted.rowCount);
    });
  }
}
