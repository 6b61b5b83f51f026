import type { IngestService } from '@ballast/contracts/ballast/ingest/v1/ingest_pb.js';
import type { ServiceImpl } from '@ballast/grpc-kit';
import type { Sql } from '@ballast/storage';
import { Datasets } from './datasets.js';
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
}

/** The ingest service's RPC handlers, kept thin over the domain modules. */
export function ingestService(deps: IngestDeps): ServiceImpl<typeof IngestService> {
  const store = new IngestStore(deps.db);
  const datasets = new Datasets(store);
  const intake = new Intake(store, datasets, { ...DEFAULT_LIMITS, ...deps.limits });
  const versions = new Versions(store, datasets, deps.enqueue);
  return {
    createDataset: async (req) => ({ dataset: await datasets.create(req) }),
    getDataset: async (req) => ({ dataset: await datasets.get(req.name) }),
    listDatasets: async () => ({ datasets: await datasets.list() }),
    putSchema: (req) => datasets.putSchema(req),
    ingest: (requests) => intake.stream(requests),
    ingestBatch: async (req) => ({ result: await intake.ingest(req.batch, 0n) }),
    listQuarantine: (req) => intake.listQuarantine(req.dataset, req.pageSize, req.pageToken),
    replayQuarantine: (req) => intake.replay(req),
    commitVersion: (req) => versions.commit(req.dataset),
    getVersion: async (req) => ({ version: await versions.get(req.dataset, req.id) }),
    readVersion: (req) => versions.read(req.dataset, req.id, req.chunkSize),
  };
}
