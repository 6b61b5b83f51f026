import { resolve } from 'node:path';
import { Worker } from 'node:worker_threads';
import {
  type PgliteWorkerData,
  READY_ID,
  type WorkerError,
  type WorkerReply,
  type WorkerRequest,
} from './pglite-protocol.js';
import type { QueryResult, Sql } from './sql-types.js';
import { assertOutsideTransaction, type Runner, runTransactionBody } from './transaction.js';

export interface PgliteOptions {
  dataDir: string;
  schema: string;
}

interface Shared {
  db: Promise<PgliteThread>;
  handles: number;
}

// PGlite is one Postgres backend in this process; two instances on one directory would
// corrupt it, so every handle for a directory shares one instance until the last closes.
const open = new Map<string, Shared>();
const closing = new Map<string, Promise<void>>();

export async function openPglite({ dataDir, schema }: PgliteOptions): Promise<Sql> {
  const dir = resolve(dataDir, 'pglite', schema);
  let shared = open.get(dir);
  if (!shared) {
    const created: Shared = { db: start(dir, schema), handles: 0 };
    created.db.catch(() => {
      if (open.get(dir) === created) open.delete(dir);
    });
    open.set(dir, created);
    shared = created;
  }
  shared.handles++;
  let db: PgliteThread;
  try {
    db = await shared.db;
  } catch (err) {
    shared.handles--;
    throw err;
  }
  const owner = shared;
  return new PgliteSql(db, schema, () => release(dir, owner, db));
}

async function start(dir: string, schema: string): Promise<PgliteThread> {
  await closing.get(dir);
  return PgliteThread.start({ dir, schema });
}

async function release(dir: string, shared: Shared, db: PgliteThread): Promise<void> {
  shared.handles--;
  if (shared.handles > 0 || open.get(dir) !== shared) return;
  open.delete(dir);
  const done = db.close();
  closing.set(dir, done);
  try {
    await done;
  } finally {
    if (closing.get(dir) === done) closing.delete(dir);
  }
}

function workerUrl(): URL {
  // Tests run this file from source; the worker is always the built one.
  const here = import.meta.url;
  return here.endsWith('.ts')
    ? new URL('../dist/pglite-worker.js', here)
    : new URL('./pglite-worker.js', here);
}

type Request = WorkerRequest extends infer R ? (R extends { id: number } ? Omit<R, 'id'> : never) : never;

interface Pending {
  resolve: (reply: Extract<WorkerReply, { ok: true }>) => void;
  reject: (err: Error) => void;
}

/**
 * PGlite on a worker thread of its own (pglite-worker.ts), so that its statements, which run
 * synchronously in WebAssembly, never hold the service's event loop. Queries go as messages
 * and rows come back as structured clones. The worker keeps the process alive only while a
 * request is in flight, as a socket to Postgres would.
 */
class PgliteThread {
  readonly #worker: Worker;
  readonly #pending = new Map<number, Pending>();
  #next = READY_ID + 1;
  #dead: Error | undefined;
  #closed: Promise<void> | undefined;

  private constructor(data: PgliteWorkerData) {
    this.#worker = new Worker(workerUrl(), { workerData: data });
    this.#worker.on('message', (reply: WorkerReply) => {
      const pending = this.#pending.get(reply.id);
      if (!pending) return;
      this.#pending.delete(reply.id);
      if (this.#pending.size === 0) this.#worker.unref();
      if (reply.ok) pending.resolve(reply);
      else pending.reject(fromWorkerError(reply.error));
    });
    const fail = (err: Error) => {
      this.#dead ??= err;
      for (const pending of this.#pending.values()) pending.reject(err);
      this.#pending.clear();
    };
    this.#worker.on('error', fail);
    this.#worker.on('exit', (code) => fail(new Error(`PGlite worker for ${data.dir} exited (code ${code})`)));
  }

  static async start(data: PgliteWorkerData): Promise<PgliteThread> {
    const thread = new PgliteThread(data);
    try {
      await thread.#await(READY_ID);
    } catch (err) {
      await thread.#worker.terminate();
      throw err;
    }
    return thread;
  }

  async query<R>(text: string, params?: readonly unknown[], tx?: number): Promise<QueryResult<R>> {
    const reply = await this.#request({ op: 'query', text, params, tx });
    const rows = (reply.rows ?? []) as Record<string, unknown>[];
    // Structured cloning turns a Buffer into a plain Uint8Array; pg returns Buffers.
    for (const column of reply.bytea ?? []) {
      for (const row of rows) {
        const value = row[column];
        if (value instanceof Uint8Array)
          row[column] = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
      }
    }
    return { rows: rows as R[], rowCount: reply.rowCount ?? 0 };
  }

  async exec(text: string, tx?: number): Promise<void> {
    await this.#request({ op: 'exec', text, tx });
  }

  /**
   * Runs `body` with the id of a transaction open on the worker, then commits it (or rolls
   * it back when `body` throws). PGlite's own lock keeps other queries out meanwhile.
   */
  async transaction<T>(body: (tx: number) => Promise<T>): Promise<T> {
    const begun = this.#post({ op: 'begin' });
    await begun.reply;
    const tx = begun.id;
    let value: T;
    try {
      value = await body(tx);
    } catch (err) {
      await this.#request({ op: 'end', tx, commit: false }).catch(() => undefined);
      throw err;
    }
    await this.#request({ op: 'end', tx, commit: true });
    return value;
  }

  close(): Promise<void> {
    this.#closed ??= (async () => {
      if (!this.#dead) await this.#request({ op: 'close' });
      await this.#worker.terminate();
    })();
    return this.#closed;
  }

  #request(request: Request): Promise<Extract<WorkerReply, { ok: true }>> {
    return this.#post(request).reply;
  }

  #post(request: Request): { id: number; reply: Promise<Extract<WorkerReply, { ok: true }>> } {
    const id = this.#next++;
    if (this.#dead) return { id, reply: Promise.reject(this.#dead) };
    const reply = this.#await(id);
    this.#worker.postMessage({ ...request, id } as WorkerRequest);
    return { id, reply };
  }

  #await(id: number): Promise<Extract<WorkerReply, { ok: true }>> {
    if (this.#pending.size === 0) this.#worker.ref();
    return new Promise((resolve, reject) => this.#pending.set(id, { resolve, reject }));
  }
}

function fromWorkerError(error: WorkerError): Error {
  const err = new Error(error.message);
  err.name = error.name;
  return Object.assign(err, error.fields);
}

class PgliteSql implements Sql {
  readonly kind = 'pglite';
  private closed: Promise<void> | undefined;

  constructor(
    private readonly db: PgliteThread,
    readonly schema: string,
    private readonly onClose: () => Promise<void>,
  ) {}

  async query<R = Record<string, unknown>>(
    text: string,
    params?: readonly unknown[],
  ): Promise<QueryResult<R>> {
    assertOutsideTransaction(this.db);
    return this.db.query<R>(text, params);
  }

  async exec(text: string): Promise<void> {
    assertOutsideTransaction(this.db);
    await this.db.exec(text);
  }

  async transaction<T>(fn: (tx: Sql) => Promise<T>): Promise<T> {
    assertOutsideTransaction(this.db);
    return this.db.transaction((tx) => {
      const runner: Runner = {
        query: <R>(text: string, params?: readonly unknown[]) => this.db.query<R>(text, params, tx),
        exec: (text) => this.db.exec(text, tx),
      };
      return runTransactionBody(this.kind, this.schema, this.db, runner, fn);
    });
  }

  close(): Promise<void> {
    this.closed ??= this.onClose();
    return this.closed;
  }
}
