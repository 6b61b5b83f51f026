import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openDatabase } from './sql.js';

// initdb is seconds of CPU on an idle machine and much longer on a busy one.
const INITDB_TIMEOUT_MS = 120_000;

describe('PGlite directories seeded from a template', () => {
  let dataDir: string | undefined;
  afterEach(async () => {
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it(
    'builds one template for concurrent openers and gives each its own cluster',
    async () => {
      dataDir = await mkdtemp(join(tmpdir(), 'ballast-template-'));
      const root = dataDir;
      const [a, b, c] = await Promise.all(
        ['alpha', 'beta', 'gamma'].map((schema) => openDatabase({ dataDir: root, schema })),
      );
      if (!a || !b || !c) throw new Error('expected three handles');
      try {
        await a.exec('CREATE TABLE t (v int); INSERT INTO t VALUES (1)');
        // A copy, not a shared directory: b's cluster has no alpha schema.
        const seen = await b.query<{ n: string }>(
          "SELECT count(*)::text AS n FROM information_schema.schemata WHERE schema_name = 'alpha'",
        );
        expect(seen.rows[0]?.n).toBe('0');
        expect((await a.query<{ v: number }>('SELECT v FROM t')).rows).toEqual([{ v: 1 }]);
      } finally {
        await Promise.all([a.close(), b.close(), c.close()]);
      }
      // One template, no lock or staging directories left behind.
      expect((await readdir(join(root, 'pglite'))).sort()).toEqual(['.template', 'alpha', 'beta', 'gamma']);
    },
    INITDB_TIMEOUT_MS,
  );

  it(
    'replaces a directory left without a cluster and keeps an existing one',
    async () => {
      dataDir = await mkdtemp(join(tmpdir(), 'ballast-template-'));
      const leftover = join(dataDir, 'pglite', 'registry');
      await mkdir(leftover, { recursive: true });
      await writeFile(join(leftover, 'half-written'), 'x');

      const first = await openDatabase({ dataDir, schema: 'registry' });
      await first.exec('CREATE TABLE kept (v int)');
      await first.close();
      expect(await readdir(leftover)).not.toContain('half-written');

      const again = await openDatabase({ dataDir, schema: 'registry' });
      try {
        const tables = await again.query("SELECT 1 FROM pg_tables WHERE tablename = 'kept'");
        expect(tables.rowCount).toBe(1);
      } finally {
        await again.close();
      }
    },
    INITDB_TIMEOUT_MS,
  );
});
