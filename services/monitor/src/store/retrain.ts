import type { Sql } from '@ballast/storage';

/** Retrainings requested, one per alert, with when: what the cooldown and the rate limit count. */

/**
 * Runs `fn` in a transaction holding the model's retrain lock, so two replicas deciding on
 * alerts of one model see each other's retrainings.
 */
export async function withRetrainLock<T>(sql: Sql, model: string, fn: (tx: Sql) => Promise<T>): Promise<T> {
  return sql.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`monitor-retrain:${model}`]);
    return fn(tx);
  });
}

/** The job already requested for an alert, if any. */
export async function retrainJobOf(sql: Sql, alertId: string): Promise<string | undefined> {
  const { rows } = await sql.query<{ job_id: string }>('SELECT job_id FROM retrains WHERE alert_id = $1', [
    alertId,
  ]);
  return rows[0]?.job_id;
}

/** When the model was last retrained (ms), and how many retrainings came after `sinceMs`. */
export async function retrainHistory(
  sql: Sql,
  model: string,
  sinceMs: number,
): Promise<{ last: number | undefined; since: number }> {
  const { rows } = await sql.query<{ last: string | null; n: string }>(
    `SELECT max(at_ms) AS last, count(*) FILTER (WHERE at_ms > $2) AS n FROM retrains WHERE model = $1`,
    [model, sinceMs],
  );
  return {
    last: rows[0]?.last == null ? undefined : Number(rows[0].last),
    since: Number(rows[0]?.n ?? 0),
  };
}

export async function recordRetrain(
  sql: Sql,
  retrain: { model: string; jobId: string; alertId: string; atMs: number },
): Promise<void> {
  await sql.query('INSERT INTO retrains (model, job_id, alert_id, at_ms) VALUES ($1, $2, $3, $4)', [
    retrain.model,
    retrain.jobId,
    retrain.alertId,
    retrain.atMs,
  ]);
}
