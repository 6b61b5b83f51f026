import type { Sql } from '@ballast/storage';

/**
 * Runs `run` while this process holds `model`'s evaluation lock, so that monitor replicas
 * evaluate one model's alert rules one at a time: the state machine (fire, update, resolve)
 * always starts from what the previous evaluation, on whichever replica, wrote.
 *
 * The lock is a Postgres transaction-level advisory lock. Its transaction does nothing but
 * hold it: `run` works through the service's own handle, on other pooled connections, and
 * the transaction ends (releasing the lock) when `run` settles, or when the connection dies
 * with its process, so a killed replica never leaves a model locked. A replica asking while
 * another evaluates waits for it, then evaluates itself on what that one wrote.
 *
 * PGlite is one process's own database (no replica can share it) with one connection,
 * which the holding transaction would take from `run`: there, `run` runs unlocked.
 */
/** The advisory lock's name: one per model, shared by every replica. */
export const evaluationLockName = (model: string) => `ballast.monitor.evaluate:${model}`;

export async function withEvaluationLock<T>(sql: Sql, model: string, run: () => Promise<T>): Promise<T> {
  if (sql.kind === 'pglite') return run();
  let release = () => {};
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  let acquired = () => {};
  const locked = new Promise<void>((resolve) => {
    acquired = resolve;
  });
  const holding = sql.transaction(async (tx) => {
    await tx.query(`SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, [
      `ballast.monitor.evaluate:${model}`,
    ]);
    acquired();
    await released;
  });
  // The holder failing (the database is down) fails the evaluation; otherwise wait for the lock.
  await Promise.race([locked, holding]);
  try {
    return await run();
  } finally {
    release();
    await holding.catch(() => undefined);
  }
}
