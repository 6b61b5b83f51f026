// The SQL surface every backend implements. Kept apart from openDatabase (sql.ts), which
// loads the backends, so that the backends can depend on these types without a circle.

export type SqlKind = 'postgres' | 'pglite';

export interface QueryResult<R> {
  rows: R[];
  /** Rows returned (SELECT) or changed (INSERT/UPDATE/DELETE); 0 for other statements. */
  rowCount: number;
}

/**
 * One SQL surface over Postgres and PGlite, so a service's store is written and tested once.
 *
 * Both backends return the same JS types: `int8`/`numeric` as strings (no silent precision
 * loss), `bytea` as Buffer, timestamps as Date, json/jsonb parsed. Pass json arrays as
 * `JSON.stringify(value)`: pg would otherwise send a JS array as a Postgres array literal.
 */
export interface Sql {
  readonly kind: SqlKind;
  /** The schema this handle owns; it is the search_path, so unqualified names land in it. */
  readonly schema: string;
  /** One statement, parameters as $1..$n. */
  query<R = Record<string, unknown>>(text: string, params?: readonly unknown[]): Promise<QueryResult<R>>;
  /** A script of several statements without parameters (DDL, migrations). */
  exec(text: string): Promise<void>;
  /**
   * Runs `fn` in a transaction: committed when it resolves, rolled back when it throws.
   * Inside `fn` use `tx` only: the outer handle throws there, because on PGlite it would
   * wait for this very transaction forever. `tx.transaction` nests as a savepoint.
   */
  transaction<T>(fn: (tx: Sql) => Promise<T>): Promise<T>;
  /** Idempotent. On a transaction handle it throws: the transaction ends with its callback. */
  close(): Promise<void>;
}
