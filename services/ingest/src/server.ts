import type { IngestService } from '@ballast/contracts/ballast/ingest/v1/ingest_pb.js';
import { invalidArgument, type ServiceImpl } from '@ballast/grpc-kit';
import type { Sql } from '@ballast/storage';
import { CommitOperations } from './commit-operations.js';
import { Datasets } from './datasets.js';
import type { HashOrderSortOptions } from './hash-order-sort.js';
import { Intake } from './intake.js';
import { IngestStore } from './store.js';
import type { Limits } from './validation.js';
import { type Enqueue, Versions } from './versions.js';

export const DEFAULT_LIMITS: Limits = { maxBatchRecords: 10_000 };

export interface IngestDeps {
  /** The service's database (a getter: the store opens it on first use). */
  db: () => Sql;
  /** Announces committed versions (features.materialize). */
  enqueue: Enqueue;
  limits?: Partial<Limits>;
  /** Where a commit that failed with no caller waiting logs an unexpected error. */
  log?: { error(obj: object, msg?: string): void };
  /** How commits put records in version order (defaults in hash-order-sort.ts; tests make buckets small). */
  commitSort?: HashOrderSortOptions;
}

/** WaitOperation's wait when the request sets none, and the most it may ask for. */
const WAIT_DEFAULT_MS = 10_000;
const WAIT_MAX_MS = 60_000;
/** Answer this long before the caller's deadline, so the answer arrives within it. */
const WAIT_DEADLINE_MARGIN_MS = 250;

/** The ingest service's RPC handlers, kept thin over the domain modules. */
export function ingestService(deps: IngestDeps): ServiceImpl<typeof IngestService> {
  const store = new IngestStore(deps.db);
  const datasets = new Datasets(store);
  const intake = new Intake(store, datasets, { ...DEFAULT_LIMITS, ...deps.limits });
  const versions = new Versions(store, datasets, deps.enqueue, deps.commitSort);
  const operations = new CommitOperations(versions, deps.log);
  return {
    createDataset: async (req) => ({ dataset: await datasets.create(req) }),
    getDataset: async (req) => ({ dataset: await datasets.get(req.name) }),
    listDatasets: async () => ({ datasets: await datasets.list() }),
    putSchema: (req) => datasets.putSchema(req),
    ingest: (requests) => intake.stream(requests),
    ingestBatch: async (req) => ({ result: await intake.ingest(req.batch, 0n) }),
    listQuarantine: (req) => intake.listQuarantine(req.dataset, req.pageSize, req.pageToken),
    replayQuarantine: (req) => intake.replay(req),
    commitVersion: async (req) => {
      const op = await operations.start(req.dataset);
      const result = req.returnOperation ? undefined : await operations.result(op);
      return { ...result, operation: operations.describe(op) };
    },
    getOperation: async (req) => ({ operation: operations.describe(operations.get(req.id)) }),
    waitOperation: async (req, ctx) => {
      const asked = req.timeout
        ? Number(req.timeout.seconds) * 1000 + req.timeout.nanos / 1e6
        : WAIT_DEFAULT_MS;
      if (!(asked >= 0)) throw invalidArgument('timeout', 'must not be negative');
      const untilDeadline = ctx.deadline
        ? ctx.deadline.getTime() - Date.now() - WAIT_DEADLINE_MARGIN_MS
        : Number.POSITIVE_INFINITY;
      const ms = Math.max(0, Math.min(asked, WAIT_MAX_MS, untilDeadline));
      return { operation: operations.describe(await operations.wait(req.id, ms, ctx.signal)) };
    },
    getVersion: async (req) => ({ version: await versions.get(req.dataset, req.id) }),
    readVersion: (req) => versions.read(req.dataset, req.id, req.chunkSize),
  };
}
