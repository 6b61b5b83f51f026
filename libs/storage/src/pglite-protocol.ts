// Messages between a service's thread and the worker thread that runs its PGlite (pglite.ts,
// pglite-worker.ts). Each request carries an id its reply repeats. A transaction is opened by
// `begin`, whose id then names the transaction in the requests it contains, and closed by
// `end`.

export interface PgliteWorkerData {
  dir: string;
  schema: string;
}

export type WorkerRequest =
  | {
      id: number;
      op: 'query';
      text: string;
      params?: readonly unknown[] | undefined;
      tx?: number | undefined;
    }
  | { id: number; op: 'exec'; text: string; tx?: number | undefined }
  | { id: number; op: 'begin' }
  | { id: number; op: 'end'; tx: number; commit: boolean }
  | { id: number; op: 'close' };

/** A database error's fields (SQLSTATE `code`, `detail`, `constraint`, ...), as plain data. */
export interface WorkerError {
  name: string;
  message: string;
  fields: Record<string, string | number>;
}

export type WorkerReply =
  | {
      id: number;
      ok: true;
      rows?: unknown[];
      rowCount?: number;
      /** Result columns of type bytea: their Uint8Arrays become Buffers again on arrival. */
      bytea?: string[];
    }
  | { id: number; ok: false; error: WorkerError };

/** The id of the reply the worker sends once its database is open (or failed to open). */
export const READY_ID = 0;
