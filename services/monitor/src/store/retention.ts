import type { Sql } from '@ballast/storage';

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
