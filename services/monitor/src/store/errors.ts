import type { Sql } from '@ballast/storage';

/** Joined error per model version, window and segment: sums that add, so windows merge. */

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

/** The version with the newest error window, and that window's start. */
export async function newestErrorWindow(
  sql: Sql,
  model: string,
): Promise<{ version: number; windowStart: number } | undefined> {
  const { rows } = await sql.query<{ version: number; latest: string }>(
    `SELECT version, max(window_start) AS latest FROM error_stats WHERE model = $1
     GROUP BY version ORDER BY max(window_start) DESC, version DESC LIMIT 1`,
    [model],
  );
  const row = rows[0];
  return row ? { version: row.version, windowStart: Number(row.latest) } : undefined;
}
