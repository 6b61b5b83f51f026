import type { Sql } from '@ballast/storage';
import { mergeWindow, type WindowHistogram } from '../histogram.js';
import { LATENCY } from '../model-baseline.js';
import type { Absorbed, LoggedPrediction, WindowKey } from '../windows.js';
import { addCounter } from './counters.js';

/**
 * Window statistics (one histogram per model version, window, segment and feature) and the
 * logged predictions that actuals join later; both are written by the same absorbed job.
 */

/** JSON has no infinities: an empty window's open min and max are kept as null. */
interface StoredHist extends Omit<WindowHistogram, 'min' | 'max'> {
  min: number | null;
  max: number | null;
}

interface WindowRow {
  window_start: string;
  segment: string;
  feature: string;
  hist: StoredHist;
}

function encodeHist(h: WindowHistogram): string {
  const stored: StoredHist = {
    ...h,
    min: Number.isFinite(h.min) ? h.min : null,
    max: Number.isFinite(h.max) ? h.max : null,
  };
  return JSON.stringify(stored);
}

function decodeHist(s: StoredHist): WindowHistogram {
  return { ...s, min: s.min ?? Number.POSITIVE_INFINITY, max: s.max ?? Number.NEGATIVE_INFINITY };
}

/**
 * Adds a job's statistics to the stored windows in one transaction, under the model
 * version's lock (so concurrent workers add, never overwrite), and remembers the job so a
 * redelivery adds nothing. False when the job had been absorbed already.
 */
export async function absorbJob(
  sql: Sql,
  jobId: string,
  model: string,
  version: number,
  absorbed: Absorbed,
): Promise<boolean> {
  return sql.transaction(async (tx) => {
    const fresh = await tx.query(
      'INSERT INTO processed_jobs (job_id) VALUES ($1) ON CONFLICT DO NOTHING RETURNING 1',
      [jobId],
    );
    if (fresh.rows.length === 0) return false;
    await tx.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`monitor:${model}:${version}`]);
    const entries = [...absorbed.windows.values()];
    if (entries.length > 0) {
      const starts = [...new Set(entries.map((e) => e.key.windowStart))];
      const { rows } = await tx.query<WindowRow>(
        `SELECT window_start, segment, feature, hist FROM window_stats
         WHERE model = $1 AND version = $2 AND window_start = ANY($3::bigint[])`,
        [model, version, starts],
      );
      const existing = new Map(rows.map((r) => [`${r.window_start}|${r.segment}|${r.feature}`, r.hist]));
      for (const e of entries) {
        const old = existing.get(`${e.key.windowStart}|${e.key.segment}|${e.key.feature}`);
        if (old && old.counts.length === e.hist.counts.length) mergeWindow(e.hist, decodeHist(old));
      }
      await tx.query(
        `INSERT INTO window_stats (model, version, window_start, segment, feature, hist)
         SELECT $1, $2, w, s, f, h::jsonb FROM unnest($3::bigint[], $4::text[], $5::text[], $6::text[]) AS t(w, s, f, h)
         ON CONFLICT (model, version, window_start, segment, feature) DO UPDATE SET hist = EXCLUDED.hist`,
        [
          model,
          version,
          entries.map((e) => e.key.windowStart),
          entries.map((e) => e.key.segment),
          entries.map((e) => e.key.feature),
          entries.map((e) => encodeHist(e.hist)),
        ],
      );
    }
    await insertPredictions(tx, model, version, absorbed.predictions);
    await addCounter(tx, 'absorbed_records', absorbed.records);
    await addCounter(tx, 'malformed_records', absorbed.malformed);
    return true;
  });
}

async function insertPredictions(
  tx: Sql,
  model: string,
  version: number,
  p: LoggedPrediction[],
): Promise<void> {
  if (p.length === 0) return;
  await tx.query(
    `INSERT INTO predictions (model, version, entity_key, time_ms, segment, prediction)
     SELECT $1, $2, e, t, s, p FROM unnest($3::text[], $4::bigint[], $5::text[], $6::float8[]) AS x(e, t, s, p)`,
    [
      model,
      version,
      p.map((x) => x.entityKey),
      p.map((x) => x.time),
      p.map((x) => x.segment),
      p.map((x) => x.prediction),
    ],
  );
}

export interface StoredWindow extends WindowKey {
  hist: WindowHistogram;
}

export interface WindowQuery {
  model: string;
  version: number;
  /** Inclusive; undefined: the latest window only (with `end` undefined too). */
  start?: number | undefined;
  end?: number | undefined;
  /** undefined: every segment. */
  segment?: string | undefined;
}

export async function readWindows(sql: Sql, q: WindowQuery): Promise<StoredWindow[]> {
  let start = q.start;
  if (start === undefined && q.end === undefined) {
    start = await latestWindow(sql, q.model, q.version);
    if (start === undefined) return [];
  }
  const { rows } = await sql.query<WindowRow>(
    `SELECT window_start, segment, feature, hist FROM window_stats
     WHERE model = $1 AND version = $2 AND window_start >= $3 AND ($4::bigint IS NULL OR window_start < $4)
       AND ($5::text IS NULL OR segment = $5)
     ORDER BY window_start, segment, feature`,
    [q.model, q.version, start ?? 0, q.end ?? null, q.segment ?? null],
  );
  return rows.map((r) => ({
    windowStart: Number(r.window_start),
    segment: r.segment,
    feature: r.feature,
    hist: decodeHist(r.hist),
  }));
}

/** The version with the newest window of logged predictions. */
export async function newestVersion(sql: Sql, model: string): Promise<number | undefined> {
  return (await newestWindow(sql, model))?.version;
}

/** The version with the newest window of logged predictions, and that window's start. */
export async function newestWindow(
  sql: Sql,
  model: string,
): Promise<{ version: number; windowStart: number } | undefined> {
  const { rows } = await sql.query<{ version: number; window_start: string }>(
    `SELECT version, window_start FROM window_stats WHERE model = $1
     ORDER BY window_start DESC, version DESC LIMIT 1`,
    [model],
  );
  const row = rows[0];
  return row ? { version: row.version, windowStart: Number(row.window_start) } : undefined;
}

/** Forgets every stored window of a model version (its baseline's layout changed). */
export async function dropWindows(sql: Sql, model: string, version: number): Promise<void> {
  await sql.query('DELETE FROM window_stats WHERE model = $1 AND version = $2', [model, version]);
}

/** The start of a model version's newest stored window. */
export async function latestWindow(sql: Sql, model: string, version: number): Promise<number | undefined> {
  const { rows } = await sql.query<{ latest: string | null }>(
    'SELECT max(window_start) AS latest FROM window_stats WHERE model = $1 AND version = $2',
    [model, version],
  );
  return rows[0]?.latest == null ? undefined : Number(rows[0].latest);
}

/**
 * Latency histograms of the all-rows segment, per model (`model` empty: every model), of
 * the version with the newest window, over the `rangeMs` before that window, oldest first.
 */
export async function recentLatency(
  sql: Sql,
  model: string,
  rangeMs: number,
): Promise<{ model: string; version: number; hist: WindowHistogram }[]> {
  const { rows } = await sql.query<{ model: string; version: number; hist: StoredHist }>(
    `WITH newest AS (
       SELECT DISTINCT ON (model) model, version, window_start FROM window_stats
       WHERE feature = $1 AND segment = '' AND ($2 = '' OR model = $2)
       ORDER BY model, window_start DESC, version DESC)
     SELECT w.model, w.version, w.hist FROM window_stats w JOIN newest n USING (model, version)
     WHERE w.feature = $1 AND w.segment = '' AND w.window_start > n.window_start - $3
     ORDER BY w.model, w.window_start`,
    [LATENCY, model, rangeMs],
  );
  return rows.map((r) => ({ model: r.model, version: r.version, hist: decodeHist(r.hist) }));
}
