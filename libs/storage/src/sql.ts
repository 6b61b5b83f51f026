import { InvalidArgumentError } from './errors.js';

import type { Sql } from './sql-types.js';

export type { QueryResult, Sql, SqlKind } from './sql-types.js';

export interface OpenDatabaseOptions {
  /** A postgres:// URL (BALLAST_DATABASE_URL). Unset or empty: embedded PGlite. */
  url?: string | undefined;
  /** Where PGlite keeps its data, as `<dataDir>/pglite/<schema>`. Default `.ballast`. */
  dataDir?: string | undefined;
  /** The schema the calling service owns; created when missing. */
  schema: string;
  /** Postgres pool size (pg's default is 10). */
  maxConnections?: number | undefined;
  /** Errors of idle pooled connections (e.g. the server restarted); the pool replaces them. */
  onError?: ((err: Error) => void) | undefined;
}

export const DEFAULT_DATA_DIR = '.ballast';

// Lowercase only: Postgres folds unquoted identifiers to lowercase and PGlite uses the name
// as a directory, so anything else would name different schemas in SQL and on disk.
const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

export function assertSchemaName(schema: string): void {
  const rule = 'must be 1-63 of [a-z0-9_], starting with a letter or _, not starting with pg_';
  if (!SCHEMA_NAME.test(schema) || schema.startsWith('pg_')) {
    throw new InvalidArgumentError(`schema: ${rule}, got ${JSON.stringify(schema)}`, 'schema', rule);
  }
}

export async function openDatabase(options: OpenDatabaseOptions): Promise<Sql> {
  assertSchemaName(options.schema);
  // Imported on demand so a Postgres deployment never loads PGlite's WebAssembly, and an
  // embedded one never loads pg.
  if (options.url) {
    const { openPostgres } = await import('./postgres.js');
    return openPostgres({ ...options, url: options.url });
  }
  const { openPglite } = await import('./pglite.js');
  return openPglite({ dataDir: options.dataDir ?? DEFAULT_DATA_DIR, schema: options.schema });
}
