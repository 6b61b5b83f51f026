import type { Sql } from '@ballast/storage';
import { mergeWindow, type WindowHistogram } from './histogram.js';
import { fromStored, type ModelBaseline, type StoredBaseline, toStored } from './model-baseline.js';
import type { Absorbed, LoggedPrediction, WindowKey } from './windows.js';

/** Persistence of baselines, window statistics, joined error, counters. No rules live here. */

export async function putBaseline(sql: Sql, baseline: ModelBaseline): Promise<void> {
  await sql.query(
    `INSERT INTO baselines (model, version, data) VALUES ($1, $2, $3)
     ON CONFLICT (model, version) DO UPDATE SET data = EXCLUDED.data, updated_at = now()`,
    [baseline.model, baseline.version, JSON.stringify(toStored(baseline))],
  );
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

interface StoredHist extends Omit<WindowHistogram, 'min' | 'max'> {
  min: number | null;
  max: number | null;
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

export async function addCounter(sql: Sql, name: string, by: number): Promise<void> {
  if (by === 0) return;
  await sql.query(
    `INSERT INTO counters (name, value) VALUES ($1, $2)
     ON CONFLICT (name) DO UPDATE SET value = counters.value + EXCLUDED.value`,
    [name, by],
  );
}

export async function readCounters(sql: Sql): Promise<Record<string, bigint>> {
  const { rows } = await sql.query<{ name: string; value: string | number }>(
    'SELECT name, value FROM counters',
  );
  return Object.fromEntries(rows.map((r) => [r.name, BigInt(r.value)]));
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
      const { rows } = await tx.query<{
        window_start: string;
        segment: string;
        feature: string;
        hist: StoredHist;
      }>(
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
    const { rows } = await sql.query<{ latest: string | null }>(
      'SELECT max(window_start) AS latest FROM window_stats WHERE model = $1 AND version = $2',
      [q.model, q.version],
    );
    if (rows[0]?.latest == null) return [];
    start = Number(rows[0].latest);
  }
  const { rows } = await sql.query<{
    window_start: string;
    segment: string;
    feature: string;
    hist: StoredHist;
  }>(
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

// --- delayed labels ----------------------------------------------------------------------

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

export interface ErrorSums {
  n: number;
  sumAbs: number;
  sumSq: number;
  sumApe: number;
  nApe: number;
  correct: number;
  /** Classification: predictions of positive and of negative actuals over AUC_BINS bins of [0, 1]. */
  pos?: number[] | undefined;
  neg?: number[] | undefined;
}

/** Bins of the prediction in [0, 1] that AUC is computed over (ties inside a bin count half). */
export const AUC_BINS = 100;

function addBins(a: number[] | undefined, b: number[] | undefined): number[] | undefined {
  if (!a) return b ? [...b] : undefined;
  if (!b) return a;
  return a.map((x, i) => x + (b[i] ?? 0));
}

export function addSums(into: ErrorSums, from: ErrorSums): void {
  into.pos = addBins(into.pos, from.pos);
  into.neg = addBins(into.neg, from.neg);
  into.n += from.n;
  into.sumAbs += from.sumAbs;
  into.sumSq += from.sumSq;
  into.sumApe += from.sumApe;
  into.nApe += from.nApe;
  into.correct += from.correct;
}

/** The version with the newest window of logged predictions. */
export async function newestVersion(sql: Sql, model: string): Promise<number | undefined> {
  const { rows } = await sql.query<{ version: number }>(
    `SELECT version FROM window_stats WHERE model = $1 ORDER BY window_start DESC, version DESC LIMIT 1`,
    [model],
  );
  return rows[0]?.version;
}

export interface ErrorKey {
  version: number;
  windowStart: number;
  segment: string;
}

/** Element-wise sum of two jsonb arrays of numbers in an upsert (either may be null). */
const ADD_BINS = (
  c: string,
) => `CASE WHEN error_stats.${c} IS NULL THEN EXCLUDED.${c} WHEN EXCLUDED.${c} IS NULL THEN error_stats.${c}
  ELSE (SELECT jsonb_agg(x.v::float8 + y.v::float8 ORDER BY x.i)
        FROM jsonb_array_elements_text(error_stats.${c}) WITH ORDINALITY AS x(v, i)
        JOIN jsonb_array_elements_text(EXCLUDED.${c}) WITH ORDINALITY AS y(v, i) USING (i)) END`;

export async function addErrors(sql: Sql, model: string, sums: [ErrorKey, ErrorSums][]): Promise<void> {
  if (sums.length === 0) return;
  const col = <T>(f: (e: [ErrorKey, ErrorSums]) => T) => sums.map(f);
  await sql.query(
    `INSERT INTO error_stats (model, version, window_start, segment, n, sum_abs, sum_sq, sum_ape, n_ape, correct, pos, neg)
     SELECT $1, v, w, s, n, a, q, p, np, c, pb::jsonb, nb::jsonb
     FROM unnest($2::int[], $3::bigint[], $4::text[], $5::bigint[], $6::float8[], $7::float8[],
                 $8::float8[], $9::bigint[], $10::bigint[], $11::text[], $12::text[])
          AS t(v, w, s, n, a, q, p, np, c, pb, nb)
     ON CONFLICT (model, version, window_start, segment) DO UPDATE SET
       n = error_stats.n + EXCLUDED.n, sum_abs = error_stats.sum_abs + EXCLUDED.sum_abs,
       sum_sq = error_stats.sum_sq + EXCLUDED.sum_sq, sum_ape = error_stats.sum_ape + EXCLUDED.sum_ape,
       n_ape = error_stats.n_ape + EXCLUDED.n_ape, correct = error_stats.correct + EXCLUDED.correct,
       pos = ${ADD_BINS('pos')}, neg = ${ADD_BINS('neg')}`,
    [
      model,
      col(([k]) => k.version),
      col(([k]) => k.windowStart),
      col(([k]) => k.segment),
      col(([, s]) => s.n),
      col(([, s]) => s.sumAbs),
      col(([, s]) => s.sumSq),
      col(([, s]) => s.sumApe),
      col(([, s]) => s.nApe),
      col(([, s]) => s.correct),
      col(([, s]) => (s.pos ? JSON.stringify(s.pos) : null)),
      col(([, s]) => (s.neg ? JSON.stringify(s.neg) : null)),
    ],
  );
}

export async function readErrors(
  sql: Sql,
  q: {
    model: string;
    version: number;
    start?: number | undefined;
    end?: number | undefined;
    segment?: string | undefined;
  },
): Promise<[ErrorKey, ErrorSums][]> {
  const { rows } = await sql.query<{
    version: number;
    window_start: string;
    segment: string;
    n: string;
    sum_abs: number;
    sum_sq: number;
    sum_ape: number;
    n_ape: string;
    correct: string;
    pos: number[] | null;
    neg: number[] | null;
  }>(
    `SELECT version, window_start, segment, n, sum_abs, sum_sq, sum_ape, n_ape, correct, pos, neg FROM error_stats
     WHERE model = $1 AND ($2 = 0 OR version = $2) AND window_start >= $3
       AND ($4::bigint IS NULL OR window_start < $4) AND ($5::text IS NULL OR segment = $5)
     ORDER BY window_start, version, segment`,
    [q.model, q.version, q.start ?? 0, q.end ?? null, q.segment ?? null],
  );
  return rows.map((r) => [
    { version: r.version, windowStart: Number(r.window_start), segment: r.segment },
    {
      n: Number(r.n),
      sumAbs: r.sum_abs,
      sumSq: r.sum_sq,
      sumApe: r.sum_ape,
      nApe: Number(r.n_ape),
      correct: Number(r.correct),
      pos: r.pos ?? undefined,
      neg: r.neg ?? undefined,
    },
  ]);
}

/**
 * Forgets what is too old to matter: logged predictions and remembered actuals before
 * `joinBefore` (no actual can join them any more), absorbed-job ids before `jobsBefore`, and
 * window statistics and error before `windowsBefore`. Times in ms since the epoch.
 */
export async function prune(
  sql: Sql,
  cutoffs: { joinBefore: number; jobsBefore: number; windowsBefore: number },
): Promise<Record<string, number>> {
  const run = async (query: string, at: number) => (await sql.query(query, [at])).rows.length;
  return {
    predictions: await run('DELETE FROM predictions WHERE time_ms < $1 RETURNING 1', cutoffs.joinBefore),
    actuals: await run('DELETE FROM actuals_seen WHERE time_ms < $1 RETURNING 1', cutoffs.joinBefore),
    jobs: await run(
      'DELETE FROM processed_jobs WHERE at < to_timestamp($1 / 1000.0) RETURNING 1',
      cutoffs.jobsBefore,
    ),
    windows: await run('DELETE FROM window_stats WHERE window_start < $1 RETURNING 1', cutoffs.windowsBefore),
    errors: await run('DELETE FROM error_stats WHERE window_start < $1 RETURNING 1', cutoffs.windowsBefore),
  };
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
