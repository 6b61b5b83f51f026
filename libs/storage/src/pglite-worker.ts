import { parentPort, workerData } from 'node:worker_threads';
import { PGlite, type Results, type Transaction, types } from '@electric-sql/pglite';
import {
  type PgliteWorkerData,
  READY_ID,
  type WorkerError,
  type WorkerReply,
  type WorkerRequest,
} from './pglite-protocol.js';
import { seedFromTemplate } from './pglite-template.js';

// The thread PGlite runs on. PGlite is Postgres compiled to WebAssembly, and every statement
// runs synchronously on the thread that calls it: on the service's own thread a page of a
// big read or a 1,000-row insert held the event loop for 50-190 ms, so health checks and
// every other RPC waited. Here they wait for nothing but the reply's copy.

const port = parentPort;
if (!port) throw new Error('pglite-worker.js runs as a worker thread');
const { dir, schema } = workerData as PgliteWorkerData;

// Match pg's defaults so code behaves the same on both backends.
const parsers = {
  [types.INT8]: (value: string) => value,
  [types.BYTEA]: (value: string) => Buffer.from(value.slice(2), 'hex'),
};

/** Rejects a transaction's callback so PGlite rolls it back; not an error to report. */
const ROLLBACK = Symbol('rollback');

interface OpenTransaction {
  tx: Transaction;
  finish: (commit: boolean) => void;
  settled: Promise<void>;
}

const transactions = new Map<number, OpenTransaction>();

function send(reply: WorkerReply): void {
  port?.postMessage(reply);
}

function toError(err: unknown): WorkerError {
  if (!(err instanceof Error)) return { name: 'Error', message: String(err), fields: {} };
  const fields: Record<string, string | number> = {};
  for (const [key, value] of Object.entries(err)) {
    if (typeof value === 'string' || typeof value === 'number') fields[key] = value;
  }
  return { name: err.name, message: err.message, fields };
}

function result(id: number, res: Results): WorkerReply {
  const bytea = res.fields.filter((f) => f.dataTypeID === types.BYTEA).map((f) => f.name);
  return {
    id,
    ok: true,
    rows: res.rows,
    rowCount: res.rowCount ?? res.affectedRows ?? 0,
    ...(bytea.length > 0 ? { bytea } : {}),
  };
}

async function open(): Promise<PGlite> {
  await seedFromTemplate(dir);
  const db = await PGlite.create({ dataDir: dir, parsers });
  try {
    // Session-level, and PGlite has exactly one session, so it holds for every query.
    await db.exec(`CREATE SCHEMA IF NOT EXISTS "${schema}"; SET search_path TO "${schema}";`);
  } catch (err) {
    await db.close().catch(() => undefined);
    throw err;
  }
  return db;
}

function runner(db: PGlite, tx: number | undefined): PGlite | Transaction {
  if (tx === undefined) return db;
  const open = transactions.get(tx);
  if (!open) throw new Error(`transaction ${tx} is not open`);
  return open.tx;
}

/** Opens a transaction that stays open until its `end` request; replies once it has begun. */
function begin(db: PGlite, id: number): void {
  let begun = false;
  const settled = db.transaction(
    (tx) =>
      new Promise<void>((resolve, reject) => {
        const finish = (commit: boolean) => (commit ? resolve() : reject(ROLLBACK));
        transactions.set(id, { tx, finish, settled });
        begun = true;
        send({ id, ok: true });
      }),
  );
  settled.catch((err: unknown) => {
    // A transaction that failed to begin never replied; one that did reports at `end`.
    if (!begun) send({ id, ok: false, error: toError(err) });
  });
}

async function end(id: number, tx: number, commit: boolean): Promise<WorkerReply> {
  const open = transactions.get(tx);
  if (!open) throw new Error(`transaction ${tx} is not open`);
  transactions.delete(tx);
  open.finish(commit);
  try {
    await open.settled;
  } catch (err) {
    if (err !== ROLLBACK) throw err;
  }
  return { id, ok: true };
}

async function handle(db: PGlite, request: WorkerRequest): Promise<WorkerReply | undefined> {
  switch (request.op) {
    case 'query':
      return result(
        request.id,
        await runner(db, request.tx).query(request.text, request.params as unknown[] | undefined),
      );
    case 'exec':
      await runner(db, request.tx).exec(request.text);
      return { id: request.id, ok: true };
    case 'begin':
      begin(db, request.id);
      return undefined;
    case 'end':
      return end(request.id, request.tx, request.commit);
    case 'close':
      await db.close();
      return { id: request.id, ok: true };
  }
}

try {
  const db = await open();
  port.on('message', (request: WorkerRequest) => {
    handle(db, request).then(
      (reply) => {
        if (reply) send(reply);
      },
      (err: unknown) => send({ id: request.id, ok: false, error: toError(err) }),
    );
  });
  send({ id: READY_ID, ok: true });
} catch (err) {
  send({ id: READY_ID, ok: false, error: toError(err) });
}
