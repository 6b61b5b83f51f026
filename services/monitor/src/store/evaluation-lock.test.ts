import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createTestDatabase, type PostgresTestDatabase } from '@ballast/grpc-kit/testing';
import { openDatabase, type Sql } from '@ballast/storage';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EvaluationScheduler } from '../alert-scheduler.js';
import { evaluationLockName, withEvaluationLock } from './evaluation-lock.js';

// Alert evaluation across replicas: each replica has its own database pool (its own
// sessions), as two monitor processes do, on one real Postgres.

describe('alert evaluations across replicas (store/evaluation-lock.ts)', () => {
  let db: PostgresTestDatabase;
  const pools: Sql[] = [];
  beforeAll(async () => {
    db = await createTestDatabase('monitor_eval_lock');
    for (let i = 0; i < 3; i++) pools.push(await openDatabase({ url: db.url, schema: 'monitor' }));
  });
  afterAll(async () => {
    for (const pool of pools) await pool.close();
    await db?.close();
  });

  it('evaluates one model on one replica at a time', async () => {
    const events: string[] = [];
    const evaluate = (replica: string, sql: Sql) => async (model: string) => {
      events.push(`${model} start ${replica}`);
      // Real work on the replica's own pool between start and end, as an evaluation does.
      for (let i = 0; i < 5; i++) await sql.query('SELECT pg_sleep(0.01)');
      events.push(`${model} end ${replica}`);
    };
    const [a, b] = pools as [Sql, Sql];
    const schedulerA = new EvaluationScheduler(evaluate('a', a), 0, (m, run) =>
      withEvaluationLock(a, m, run),
    );
    const schedulerB = new EvaluationScheduler(evaluate('b', b), 0, (m, run) =>
      withEvaluationLock(b, m, run),
    );
    await Promise.all(
      Array.from({ length: 6 }, () => [schedulerA.soon('demand'), schedulerB.soon('demand')]).flat(),
    );
    await Promise.all([schedulerA.idle(), schedulerB.idle()]);
    // Per model, every start is followed by its own end before the next start.
    const demand = events.filter((e) => e.startsWith('demand '));
    expect(demand.length).toBeGreaterThanOrEqual(4);
    for (let i = 0; i < demand.length; i += 2) {
      const replica = demand[i]?.split(' ')[2];
      expect(demand.slice(i, i + 2)).toEqual([`demand start ${replica}`, `demand end ${replica}`]);
    }
    expect(new Set(demand.map((e) => e.split(' ')[2]))).toEqual(new Set(['a', 'b']));
  });

  it('a replica killed while it evaluates leaves the model unlocked', async () => {
    // Another process holds the lock as withEvaluationLock does (a transaction doing nothing
    // else), then is killed with SIGKILL mid-evaluation.
    const holder = spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import pg from 'pg';
         const client = new pg.Client({ connectionString: process.argv[1] });
         await client.connect();
         await client.query('BEGIN');
         await client.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [process.argv[2]]);
         console.log('locked');
         setInterval(() => {}, 60_000);`,
        db.url,
        evaluationLockName('demand'),
      ],
      { stdio: ['ignore', 'pipe', 'inherit'], cwd: process.cwd() },
    );
    const [first] = (await once(holder.stdout, 'data')) as [Buffer];
    expect(first.toString()).toContain('locked');
    const sql = pools[2] as Sql;
    const waiting = withEvaluationLock(sql, 'demand', async () => 'evaluated');
    // The evaluation waits on the lock...
    const lockWaits = async () =>
      Number(
        (
          await sql.query<{ n: string }>(
            `SELECT count(*)::text AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`,
          )
        ).rows[0]?.n,
      );
    while ((await lockWaits()) === 0) await new Promise((r) => setImmediate(r));
    // ...until the holder dies: its session ends and the lock goes with it.
    holder.kill('SIGKILL');
    await once(holder, 'exit');
    expect(await waiting).toBe('evaluated');
  });
});
