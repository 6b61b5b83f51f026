import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool } from 'pg';
import { openDatabase, type Sql, type SqlKind } from './sql.js';

export const TEST_DATABASE_URL =
  process.env.BALLAST_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

export const BACKENDS: readonly SqlKind[] = ['postgres', 'pglite'];

export function uniqueSchema(label: string): string {
  return `t_storage_${label}_${randomBytes(4).toString('hex')}`;
}

/** Opens handles on one backend and removes every schema (or data dir) they touched. */
export class TestBackend {
  private readonly handles: Sql[] = [];
  private readonly schemas = new Set<string>();
  private dataDir: Promise<string> | undefined;

  constructor(readonly kind: SqlKind) {}

  /** Marks a schema created some other way for removal in cleanup(). */
  track(schema: string): void {
    this.schemas.add(schema);
  }

  async open(schema: string): Promise<Sql> {
    this.track(schema);
    const sql =
      this.kind === 'postgres'
        ? await openDatabase({ url: TEST_DATABASE_URL, schema })
        : await openDatabase({ dataDir: await this.pgliteDir(), schema });
    this.handles.push(sql);
    return sql;
  }

  async cleanup(): Promise<void> {
    await Promise.all(this.handles.map((sql) => sql.close()));
    if (this.kind === 'postgres') {
      const admin = new Pool({ connectionString: TEST_DATABASE_URL });
      try {
        for (const schema of this.schemas) await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      } finally {
        await admin.end();
      }
    }
    if (this.dataDir) await rm(await this.dataDir, { recursive: true, force: true });
  }

  pgliteDir(): Promise<string> {
    this.dataDir ??= mkdtemp(join(tmpdir(), 'ballast-storage-test-'));
    return this.dataDir;
  }
}
