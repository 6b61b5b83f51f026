import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Sql } from './sql.js';
import { TestBackend, uniqueSchema } from './test-backends.js';

// PGlite runs its statements synchronously in WebAssembly; these check what running it on a
// worker thread (pglite-worker.ts) must give the service: a free event loop, and nothing
// that keeps a finished process alive.
describe('PGlite on its worker thread', () => {
  const backend = new TestBackend('pglite');
  let sql: Sql;

  beforeAll(async () => {
    sql = await backend.open(uniqueSchema('pglite'));
  });

  afterAll(() => backend.cleanup());

  it('leaves the event loop running while a long statement executes', async () => {
    let ticks = 0;
    const timer = setInterval(() => ticks++, 10);
    let statementMs: number;
    try {
      const started = performance.now();
      // About a second of work inside the database (longer on a loaded machine).
      await sql.query('SELECT count(*) FROM generate_series(1, 3000000) g WHERE md5(g::text) > $1', ['8']);
      statementMs = performance.now() - started;
    } finally {
      clearInterval(timer);
    }
    // In the service's own thread the timer could not fire until the statement returned:
    // at most one tick. On the worker it keeps ticking, if slower than every 10 ms under load.
    expect(statementMs).toBeGreaterThan(200);
    expect(ticks).toBeGreaterThanOrEqual(Math.min(10, statementMs / 40));
  });

  it('keeps a transaction to itself while other queries wait for it', async () => {
    await sql.exec('CREATE TABLE counter (n int)');
    const inside = sql.transaction(async (tx) => {
      await tx.query('INSERT INTO counter VALUES (1)');
      await new Promise((resolve) => setTimeout(resolve, 50));
      await tx.query('INSERT INTO counter VALUES (2)');
      return (await tx.query<{ n: string }>('SELECT count(*) AS n FROM counter')).rows[0]?.n;
    });
    // Issued while the transaction is open: PGlite has one session, so it runs after.
    const outside = sql.query<{ n: string }>('SELECT count(*) AS n FROM counter');
    expect(await inside).toBe('2');
    expect((await outside).rows[0]?.n).toBe('2');
  });

  it('rolls back a transaction whose statement fails, with the database error, and keeps serving', async () => {
    await expect(
      sql.transaction(async (tx) => {
        await tx.query('SELECT * FROM no_such_table');
      }),
    ).rejects.toMatchObject({ code: '42P01', message: expect.stringContaining('no_such_table') });
    // The worker is still serving.
    expect((await sql.query<{ one: number }>('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
  });

  it('does not keep a process alive once its queries are answered', async () => {
    const dir = await backend.pgliteDir();
    const entry = fileURLToPath(new URL('../dist/index.js', import.meta.url));
    // Opens a handle, queries, and never closes it: the process must still exit by itself.
    const script = `
      const { openDatabase } = await import(${JSON.stringify(entry)});
      const sql = await openDatabase({ dataDir: ${JSON.stringify(dir)}, schema: 'exits' });
      const { rows } = await sql.query('SELECT 41 + 1 AS answer');
      // A string, written raw: console.log colours numbers when the environment forces colour.
      process.stdout.write(String(rows[0].answer));
    `;
    const file = join(dir, 'exits.mjs');
    await writeFile(file, script);
    const child = spawn(process.execPath, [file], { stdio: 'pipe' });
    let out = '';
    child.stdout.on('data', (chunk) => {
      out += chunk;
    });
    child.stderr.on('data', (chunk) => {
      out += chunk;
    });
    const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    clearTimeout(killer);
    expect({ code, out: out.trim() }).toEqual({ code: 0, out: '42' });
  }, 70_000);
});
