import {
  type DatasetVersion,
  DatasetVersionSchema,
  type ReadVersionResponseSchema,
  RecordBatchSchema,
} from '@ballast/contracts/ballast/ingest/v1/ingest_pb.js';
import { failedPrecondition, invalidArgument, notFound } from '@ballast/grpc-kit';
import { create, fromJson, type JsonValue, type MessageInitShape, toJson } from '@bufbuild/protobuf';
import { ContentHash } from './content-hash.js';
import type { DatasetEntry, Datasets } from './datasets.js';
import { HashOrderSort, type HashOrderSortOptions } from './hash-order-sort.js';
import { VersionAccumulator, type VersionStats } from './quality.js';
import { fieldTypeOf, type StoredSchema } from './schema.js';
import type { IngestStore, VersionRow } from './store.js';
import { parseTimestamp } from './validation.js';

/**
 * Records per page of a commit's scan. PGlite runs each query on this process's thread, so
 * its pages stay small enough that one query (and the work on its rows) leaves the event
 * loop free within tens of milliseconds; Postgres pages only cost round trips.
 */
const PAGE = { pglite: 1_000, postgres: 5_000 } as const;

export interface MaterializeJob {
  datasetName: string;
  datasetVersion: string;
}

/** Where a commit announces a new version (the features.materialize queue in the service). */
export type Enqueue = (job: MaterializeJob) => Promise<unknown>;

/** What a running commit reports as it goes. */
export interface CommitProgress {
  /** The record watermark it seals and how many records that is (again if it retries). */
  sealing(watermark: string, total: number): void;
  /** Records read so far. */
  read(records: number): void;
}

export interface CommitResult {
  version: DatasetVersion;
  created: boolean;
}

export const timestamp = (d: Date) => ({
  seconds: BigInt(Math.floor(d.getTime() / 1000)),
  nanos: (d.getTime() % 1000) * 1e6,
});

/** Lets timers, I/O and other calls run between pages (PGlite's promises alone never do). */
const yieldToLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Dataset versions: a commit seals every record acknowledged before it (see store.ts for
 * why "seq <= watermark" is exactly that set) into an immutable version named by its
 * content hash, with per-field summaries and a quality report against the previous version.
 * Commits run as operations (commit-operations.ts), which decide when one runs.
 */
export class Versions {
  constructor(
    private readonly store: IngestStore,
    private readonly datasets: Datasets,
    private readonly enqueue: Enqueue,
    /** How a commit puts records in version order (bucket size and count, where bucket files go). */
    private readonly sortOptions: HashOrderSortOptions = {},
  ) {}

  /** The record watermark a commit started now would seal. */
  async watermark(name: string): Promise<string> {
    const entry = await this.datasets.resolve(name, 'dataset');
    return (await this.store.watermarks(entry.row.id)).records;
  }

  /**
   * One commit, in two passes over the records sealed by the watermark, both in bounded
   * pages: the first reads them in storage (arrival) order and deals them into buckets of
   * the version's order (hash-order-sort.ts), the second sorts each bucket and takes the
   * records in that order into the content hash and the summaries. Time grows linearly with
   * the records, memory is bounded (a bucket, and the accumulator's per-field counters with
   * at most MAX_DISTINCT values per field), and
   * the event loop runs between pages. Progress counts each pass as half of the records.
   */
  async commitNow(name: string, traceparent: string, progress: CommitProgress): Promise<CommitResult> {
    this.datasets.invalidate(name);
    const entry = await this.datasets.resolve(name, 'dataset');
    const page = PAGE[this.store.kind];
    for (let attempt = 0; attempt < 5; attempt++) {
      const previous = await this.store.latestVersion(entry.row.id);
      const marks = await this.store.watermarks(entry.row.id);
      progress.sealing(marks.records, marks.recordCount);
      const previousStats = previous?.stats as VersionStats | undefined;
      const accumulator = new VersionAccumulator(entry.schema, previousStats);
      const hash = new ContentHash();
      const previousMark = BigInt(previous?.recordWatermark ?? '0');
      const sort = new HashOrderSort(marks.recordCount, this.sortOptions);
      try {
        let read = 0;
        let after = '0';
        for (;;) {
          await yieldToLoop();
          const rows = await this.store.arrivalPage(entry.row.id, marks.records, after, page);
          await sort.add(rows);
          read += rows.length;
          progress.read(Math.floor(read / 2));
          if (rows.length < page) break;
          after = (rows.at(-1) as { seq: string }).seq;
        }
        for await (const items of sort.sorted()) {
          await yieldToLoop();
          for (const { key, record: row } of items) {
            hash.add(key, row.data);
            const data = JSON.parse(row.data) as Record<string, unknown>;
            accumulator.add(row.source, data, BigInt(row.seq) > previousMark);
          }
          progress.read(Math.floor((read + hash.count) / 2));
        }
      } finally {
        await sort.dispose();
      }
      if (hash.count === 0) {
        throw failedPrecondition(`dataset ${name} has no accepted records to commit`);
      }
      const id = hash.digest();
      if (previous?.id === id) {
        await this.enqueue({ datasetName: name, datasetVersion: id });
        return { version: this.fromRow(previous), created: false };
      }
      const violations = await this.store.quarantinedBetween(
        entry.row.id,
        previous?.quarantineWatermark ?? '0',
        marks.quarantine,
      );
      const result = accumulator.finish(violations);
      // The event time field is a timestamp field (schema.ts), so its summary has the range.
      const times = result.fields.find((f) => f.field === entry.schema.eventTimeField);
      const inserted = await this.store.insertVersion(
        entry.row.id,
        previous?.number ?? 0,
        {
          id,
          recordWatermark: marks.records,
          quarantineWatermark: marks.quarantine,
          recordCount: hash.count,
          commitTraceparent: traceparent,
        },
        (number, createdAt) =>
          toJson(
            DatasetVersionSchema,
            create(DatasetVersionSchema, {
              dataset: name,
              id,
              number: BigInt(number),
              recordCount: BigInt(hash.count),
              addedCount: BigInt(result.added),
              ...(times?.minTime ? { minEventTime: times.minTime } : {}),
              ...(times?.maxTime ? { maxEventTime: times.maxTime } : {}),
              schemaMajor: entry.schema.major,
              schemaMinor: entry.schema.minor,
              createTime: timestamp(createdAt),
              fields: result.fields.map((f) => ({
                ...f,
                type: fieldTypeOf(entry.schema.fields.find((d) => d.name === f.field)?.type ?? 'string'),
              })),
              quality: result.quality,
              previousId: previous?.id ?? '',
            }),
          ),
        result.stats,
      );
      if (!inserted) continue; // another replica committed meanwhile: compare against its version
      this.datasets.invalidate(name);
      // The outbox row written with the version stays until the job is queued: a crash or
      // a Redis error here leaves it for announcePending (at the next start).
      await this.enqueue({ datasetName: name, datasetVersion: id });
      await this.store.announced(entry.row.id, id);
      return { version: this.fromRow(inserted), created: true };
    }
    throw new Error(`commit of ${name} kept racing other commits`);
  }

  /**
   * Enqueues the announcements a commit wrote but did not see queued (the process died, or
   * Redis failed, between the commit and the enqueue), oldest first; returns how many. The
   * job id is deterministic, so one that did reach the queue is not queued twice.
   */
  async announcePending(): Promise<number> {
    let done = 0;
    for (;;) {
      const pending = await this.store.pendingAnnouncements(100);
      for (const p of pending) {
        await this.enqueue({ datasetName: p.dataset, datasetVersion: p.version });
        await this.store.announced(p.datasetId, p.version);
        done++;
      }
      if (pending.length < 100) return done;
    }
  }

  private fromRow(row: VersionRow): DatasetVersion {
    const version = fromJson(DatasetVersionSchema, row.summary as JsonValue);
    version.commitTraceparent = row.commitTraceparent;
    return version;
  }

  private async find(name: string, id: string): Promise<{ entry: DatasetEntry; row: VersionRow }> {
    const entry = await this.datasets.resolve(name, 'dataset');
    if (id !== '' && !/^[0-9a-f]{64}$/.test(id))
      throw invalidArgument('id', 'must be a version id (64 hex digits)');
    const row =
      id === '' ? await this.store.latestVersion(entry.row.id) : await this.store.version(entry.row.id, id);
    if (!row)
      throw notFound(
        id === '' ? `dataset ${name} has no committed version` : `version ${id} of ${name} not found`,
      );
    return { entry, row };
  }

  async get(name: string, id: string): Promise<DatasetVersion> {
    return this.fromRow((await this.find(name, id)).row);
  }

  /** A version's records in event-id order, as columnar batches of the version's schema. */
  async *read(
    name: string,
    id: string,
    chunkSize: number,
  ): AsyncIterable<MessageInitShape<typeof ReadVersionResponseSchema>> {
    if (chunkSize > 10_000) throw invalidArgument('chunk_size', 'must be at most 10000');
    const { entry, row } = await this.find(name, id);
    const version = this.fromRow(row);
    const schema = await this.store.schemaVersion(entry.row.id, version.schemaMajor, version.schemaMinor);
    let after: string | undefined;
    for (;;) {
      const page = await this.store.recordPage(entry.row.id, row.recordWatermark, after, chunkSize || 1_000);
      if (page.length === 0) break;
      yield {
        batch: toColumns(
          name,
          schema,
          page.map((r) => JSON.parse(r.data) as Record<string, unknown>),
        ),
      };
      if (page.length < (chunkSize || 1_000)) break;
      after = (page.at(-1) as { eventId: string }).eventId;
    }
  }
}

/** Records (canonical JSON, parsed) back into a columnar batch; values that no longer fit their field's type read as null. */
export function toColumns(dataset: string, schema: StoredSchema, records: Record<string, unknown>[]) {
  const rowCount = records.length;
  const columns = schema.fields.map((field) => {
    const nullRows: number[] = [];
    const pick = <T>(ok: (v: unknown) => boolean, convert: (v: unknown) => T, placeholder: T): T[] =>
      records.map((record, r) => {
        const v = record[field.name];
        if (v === null || v === undefined || !ok(v)) {
          nullRows.push(r);
          return placeholder;
        }
        return convert(v);
      });
    const isNumber = (v: unknown) => typeof v === 'number';
    const isString = (v: unknown) => typeof v === 'string';
    switch (field.type) {
      case 'float':
        return {
          name: field.name,
          values: { case: 'doubles' as const, value: { values: pick(isNumber, Number, 0) } },
          nullRows,
        };
      case 'int':
        return {
          name: field.name,
          values: {
            case: 'ints' as const,
            value: { values: pick(isNumber, (v) => BigInt(Math.trunc(v as number)), 0n) },
          },
          nullRows,
        };
      case 'string':
      case 'categorical':
        return {
          name: field.name,
          values: { case: 'strings' as const, value: { values: pick(isString, String, '') } },
          nullRows,
        };
      case 'bool':
        return {
          name: field.name,
          values: {
            case: 'bools' as const,
            value: { values: pick((v) => typeof v === 'boolean', Boolean, false) },
          },
          nullRows,
        };
      case 'timestamp': {
        const parsed = pick(isString, (v) => parseTimestamp(v as string), { seconds: 0n, nanos: 0 });
        return {
          name: field.name,
          values: {
            case: 'timestamps' as const,
            value: { seconds: parsed.map((p) => p.seconds), nanos: parsed.map((p) => p.nanos) },
          },
          nullRows,
        };
      }
      default:
        throw new Error(`unknown field type ${String(field.type)}`);
    }
  });
  return create(RecordBatchSchema, { dataset, rowCount, columns });
}
