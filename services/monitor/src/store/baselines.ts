import type { Sql } from '@ballast/storage';
import { fromStored, type ModelBaseline, type StoredBaseline, toStored } from '../model-baseline.js';
import { dropWindows } from './windows.js';

/** Baselines by model version. */

export async function putBaseline(sql: Sql, baseline: ModelBaseline): Promise<void> {
  await sql.query(
    `INSERT INTO baselines (model, version, data) VALUES ($1, $2, $3)
     ON CONFLICT (model, version) DO UPDATE SET data = EXCLUDED.data, updated_at = now()`,
    [baseline.model, baseline.version, JSON.stringify(toStored(baseline))],
  );
}

/**
 * Stores a baseline, first forgetting the version's windows when `dropWindows` (they were
 * cut or binned for another layout), in one transaction so no window outlives its layout.
 */
export async function replaceBaseline(
  sql: Sql,
  baseline: ModelBaseline,
  options: { dropWindows: boolean },
): Promise<void> {
  await sql.transaction(async (tx) => {
    if (options.dropWindows) await dropWindows(tx, baseline.model, baseline.version);
    await putBaseline(tx, baseline);
  });
}

/** The newest baseline of every model (the version serving, or about to). */
export async function latestBaselines(sql: Sql): Promise<ModelBaseline[]> {
  const { rows } = await sql.query<{ model: string; version: number; data: StoredBaseline }>(
    `SELECT b.model, b.version, b.data FROM baselines b
       JOIN (SELECT model, max(version) AS version FROM baselines GROUP BY model) l
         ON l.model = b.model AND l.version = b.version`,
  );
  return rows.map((r) => fromStored(r.model, Number(r.version), r.data));
}

export async function getBaseline(
  sql: Sql,
  model: string,
  version: number,
): Promise<ModelBaseline | undefined> {
  const { rows } = await sql.query<{ data: StoredBaseline }>(
    'SELECT data FROM baselines WHERE model = $1 AND version = $2',
    [model, version],
  );
  const row = rows[0];
  return row ? fromStored(model, version, row.data) : undefined;
}

/** Every model with a baseline and its versions, by name. */
export async function baselineVersions(sql: Sql): Promise<{ model: string; versions: number[] }[]> {
  const { rows } = await sql.query<{ model: string; versions: number[] }>(
    `SELECT model, array_agg(DISTINCT version ORDER BY version) AS versions FROM baselines GROUP BY model ORDER BY model`,
  );
  return rows;
}
