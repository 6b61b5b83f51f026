import { AsyncLocalStorage } from 'node:async_hooks';
import type { QueryResult, Sql, SqlKind } from './sql-types.js';

/** What a backend runs on the one connection a transaction holds. */
export interface Runner {
  query<R>(text: string, params?: readonly unknown[]): Promise<QueryResult<R>>;
  exec(text: string): Promise<void>;
}

interface OpenTransaction {
  /** The pool or PGlite instance the transaction runs on. */
  resource: object;
  open: boolean;
}

const current = new AsyncLocalStorage<OpenTransaction>();

/**
 * Called by the root handles. PGlite has one connection, so a query on the root handle
 * inside a transaction on it waits for that transaction forever; on Postgres it silently
 * runs outside the transaction. Both are bugs, and failing the same way on both backends
 * keeps code tested on one honest on the other.
 */
export function assertOutsideTransaction(resource: object): void {
  const tx = current.getStore();
  if (tx?.open && tx.resource === resource) {
    throw new Error(
      'database handle used inside its own transaction: use the `tx` handle passed to the transaction callback',
    );
  }
}

/** Runs `fn` with a transaction handle over `runner`; the caller owns BEGIN/COMMIT/ROLLBACK. */
export async function runTransactionBody<T>(
  kind: SqlKind,
  schema: string,
  resource: object,
  runner: Runner,
  fn: (tx: Sql) => Promise<T>,
): Promise<T> {
  const state: OpenTransaction = { resource, open: true };
  try {
    return await current.run(state, () => fn(transactionHandle(kind, schema, runner, () => state.open, 0)));
  } finally {
    // A handle kept past its transaction would run on a connection already back in the
    // pool, i.e. inside somebody else's work.
    state.open = false;
  }
}

function transactionHandle(
  kind: SqlKind,
  schema: string,
  runner: Runner,
  isOpen: () => boolean,
  depth: number,
): Sql {
  const check = (): void => {
    if (!isOpen()) throw new Error('transaction handle used after its transaction (or savepoint) ended');
  };
  return {
    kind,
    schema,
    async query<R = Record<string, unknown>>(text: string, params?: readonly unknown[]) {
      check();
      return runner.query<R>(text, params);
    },
    async exec(text: string) {
      check();
      await runner.exec(text);
    },
    async transaction<T>(fn: (tx: Sql) => Promise<T>): Promise<T> {
      check();
      const savepoint = `ballast_sp_${depth + 1}`;
      await runner.exec(`SAVEPOINT ${savepoint}`);
      let open = true;
      try {
        const result = await fn(transactionHandle(kind, schema, runner, () => open && isOpen(), depth + 1));
        await runner.exec(`RELEASE SAVEPOINT ${savepoint}`);
        return result;
      } catch (err) {
        // If even this fails the outer transaction is broken and will roll back as a whole;
        // the caller needs the original error, not this one.
        await runner.exec(`ROLLBACK TO SAVEPOINT ${savepoint}`).catch(() => undefined);
        throw err;
      } finally {
        open = false;
      }
    },
    async close() {
      throw new Error('a transaction handle cannot be closed; it ends when its callback settles');
    },
  };
}
