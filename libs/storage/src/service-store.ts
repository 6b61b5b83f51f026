import { StorageUnavailableError } from './errors.js';
import { type Migration, migrate } from './migrations.js';
import { openDatabase, type Sql } from './sql.js';

export interface ServiceStoreOptions {
  /** Postgres URL; unset = embedded PGlite under dataDir. */
  url?: string | undefined;
  dataDir: string;
  /** The service's own schema. */
  schema: string;
  migrations: readonly Migration[];
}

/**
 * A service's database as its process sees it: opened on first use rather than at start,
 * so a database that is down when the service starts only delays readiness, and checked
 * by `ping()` for the health status.
 */
export interface ServiceStore {
  /** The open database; throws `unavailable` until the first successful ping or migrate. */
  readonly sql: Sql;
  ping(): Promise<void>;
  /** Applies pending migrations (under the schema's lock); returns the ids applied now. */
  migrate(): Promise<string[]>;
  close(): Promise<void>;
}

export function openServiceStore(options: ServiceStoreOptions): ServiceStore {
  let sql: Sql | undefined;
  let opening: Promise<Sql> | undefined;
  const open = () => {
    if (sql) return Promise.resolve(sql);
    opening ??= openDatabase({ url: options.url, dataDir: options.dataDir, schema: options.schema }).then(
      (opened) => {
        sql = opened;
        return opened;
      },
      (err: unknown) => {
        opening = undefined;
        throw err;
      },
    );
    return opening;
  };
  return {
    get sql() {
      if (!sql) throw new StorageUnavailableError(`the ${options.schema} database is not open yet`);
      return sql;
    },
    async ping() {
      await (await open()).query('select 1');
    },
    async migrate() {
      return migrate(await open(), options.migrations);
    },
    async close() {
      const pending = opening;
      opening = undefined;
      sql = undefined;
      if (pending) await (await pending.catch(() => undefined))?.close();
    },
  };
}
