import type { Sql } from '@ballast/storage';

/**
 * Actuals (delayed labels): which were seen, the predictions they join, and the ingest
 * dataset version each model last read them from.
 */

export interface ActualRow {
  entityKey: string;
  time: number;
  value: number;
}

/** The actuals not recorded before (by model, entity and time), remembered from now on. */
export async function newActuals(
  sql: Sql,
  model: string,
  actuals: readonly ActualRow[],
): Promise<ActualRow[]> {
  if (actuals.length === 0) return [];
  const { rows } = await sql.query<{ i: string }>(
    `WITH a AS (SELECT * FROM unnest($2::text[], $3::bigint[]) WITH ORDINALITY AS a(entity_key, time_ms, i)),
          ins AS (INSERT INTO actuals_seen (model, entity_key, time_ms)
                  SELECT DISTINCT $1::text, entity_key, time_ms FROM a
                  ON CONFLICT DO NOTHING RETURNING entity_key, time_ms)
     SELECT min(a.i) AS i FROM a JOIN ins USING (entity_key, time_ms) GROUP BY a.entity_key, a.time_ms ORDER BY 1`,
    [model, actuals.map((a) => a.entityKey), actuals.map((a) => a.time)],
  );
  return rows.map((r) => actuals[Number(r.i) - 1] as ActualRow);
}

export interface JoinedActual {
  version: number;
  segment: string;
  predictionTime: number;
  prediction: number;
  actual: number;
}

/**
 * The latest logged prediction of each actual's entity at or before the actual's time and
 * no more than `joinWindowMs` before it. Unmatched actuals come back as undefined.
 */
export async function joinActuals(
  sql: Sql,
  model: string,
  actuals: readonly ActualRow[],
  joinWindowMs: number,
): Promise<(JoinedActual | undefined)[]> {
  if (actuals.length === 0) return [];
  const { rows } = await sql.query<{
    i: number;
    version: number | null;
    segment: string | null;
    time_ms: string | null;
    prediction: number | null;
  }>(
    `SELECT a.i, p.version, p.segment, p.time_ms, p.prediction
     FROM unnest($2::text[], $3::bigint[]) WITH ORDINALITY AS a(entity_key, time_ms, i)
     LEFT JOIN LATERAL (
       SELECT version, segment, time_ms, prediction FROM predictions
       WHERE model = $1 AND entity_key = a.entity_key AND time_ms <= a.time_ms AND time_ms >= a.time_ms - $4
       ORDER BY time_ms DESC LIMIT 1
     ) p ON true
     ORDER BY a.i`,
    [model, actuals.map((a) => a.entityKey), actuals.map((a) => a.time), joinWindowMs],
  );
  return rows.map((r) => {
    const actual = actuals[Number(r.i) - 1] as ActualRow;
    return r.version === null || r.time_ms === null
      ? undefined
      : {
          version: r.version,
          segment: r.segment ?? '',
          predictionTime: Number(r.time_ms),
          prediction: Number(r.prediction),
          actual: actual.value,
        };
  });
}

/** The dataset version last read as actuals for a model, if any. */
export async function actualsSourceVersion(
  sql: Sql,
  model: string,
  dataset: string,
): Promise<string | undefined> {
  const { rows } = await sql.query<{ version: string }>(
    'SELECT version FROM actuals_sources WHERE model = $1 AND dataset = $2',
    [model, dataset],
  );
  return rows[0]?.version;
}

export async function setActualsSourceVersion(
  sql: Sql,
  source: { model: string; dataset: string; version: string; records: number },
): Promise<void> {
  await sql.query(
    `INSERT INTO actuals_sources (model, dataset, version, records) VALUES ($1, $2, $3, $4)
     ON CONFLICT (model, dataset) DO UPDATE SET version = EXCLUDED.version, records = EXCLUDED.records, read_at = now()`,
    [source.model, source.dataset, source.version, source.records],
  );
}
