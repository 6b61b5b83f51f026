import type {
  CreateDatasetRequest,
  DatasetSchema,
  PutSchemaRequest,
} from '@ballast/contracts/ballast/ingest/v1/ingest_pb.js';
import { failedPrecondition, invalidArgument, notFound } from '@ballast/grpc-kit';
import type { MessageInitShape } from '@bufbuild/protobuf';
import type { VersionStats } from './quality.js';
import {
  canonical,
  checkDatasetName,
  compareSchemas,
  definitionOf,
  parseSchema,
  type StoredSchema,
  schemaToProto,
} from './schema.js';
import type { DatasetRow, IngestStore } from './store.js';
import { type CompiledSchema, compileSchema } from './validation.js';

/** A dataset as batches need it: its row, current schema compiled, and known categorical values. */
export interface DatasetEntry {
  row: DatasetRow;
  schema: StoredSchema;
  compiled: CompiledSchema;
  /** Per categorical field: vocabulary plus the values of the latest version (new-value detection). */
  known: Map<string, Set<string>>;
}

/**
 * Datasets and their schemas. Compiled schemas are cached per dataset for `ttlMs` (so a
 * schema put through another replica takes effect within it) and dropped at once when put
 * or committed through this one.
 */
export class Datasets {
  private readonly cache = new Map<string, { entry: Promise<DatasetEntry>; expires: number }>();

  constructor(
    private readonly store: IngestStore,
    private readonly ttlMs = 1_000,
  ) {}

  invalidate(name: string): void {
    this.cache.delete(name);
  }

  /** The dataset named `name`; NOT_FOUND if there is none. `field` names the request field in errors. */
  resolve(name: string, field: string): Promise<DatasetEntry> {
    if (name === '') return Promise.reject(invalidArgument(field, 'is required'));
    const now = Date.now();
    const cached = this.cache.get(name);
    if (cached && cached.expires > now) return cached.entry;
    const entry = this.load(name, field);
    this.cache.set(name, { entry, expires: now + this.ttlMs });
    entry.catch(() => this.cache.delete(name));
    return entry;
  }

  private async load(name: string, field: string): Promise<DatasetEntry> {
    const row = await this.store.dataset(name);
    if (!row) throw notFound(`${field}: dataset ${JSON.stringify(name)} not found`);
    const schema = await this.store.currentSchema(row.id);
    const latest = await this.store.latestVersion(row.id);
    const seen = (latest?.stats as VersionStats | undefined)?.values ?? {};
    const known = new Map<string, Set<string>>();
    for (const f of schema.fields) {
      if (f.type !== 'categorical') continue;
      const values = [...f.vocabulary, ...(seen[f.name] ?? [])];
      if (latest || values.length > 0) known.set(f.name, new Set(values));
    }
    return { row, schema, compiled: compileSchema(schema), known };
  }

  async create(request: CreateDatasetRequest): Promise<MessageInitShape<typeof DatasetSchema>> {
    checkDatasetName(request.name);
    const schema = parseSchema(request.schema);
    const row = await this.store.createDataset(request.name, request.description, schema);
    this.invalidate(request.name);
    return this.describe(row, { ...schema, major: 1, minor: 0, createdAt: row.createdAt });
  }

  async get(name: string): Promise<MessageInitShape<typeof DatasetSchema>> {
    const { row, schema } = await this.resolve(name, 'name');
    return this.describe(row, schema);
  }

  async list(): Promise<MessageInitShape<typeof DatasetSchema>[]> {
    const rows = await this.store.datasets();
    return Promise.all(rows.map(async (row) => this.describe(row, await this.store.currentSchema(row.id))));
  }

  private async describe(
    row: DatasetRow,
    schema: StoredSchema,
  ): Promise<MessageInitShape<typeof DatasetSchema>> {
    const counts = await this.store.counts(row.id);
    const latest = await this.store.latestVersion(row.id);
    return {
      name: row.name,
      description: row.description,
      schema: schemaToProto(schema),
      createTime: { seconds: BigInt(Math.floor(row.createdAt.getTime() / 1000)), nanos: 0 },
      recordCount: BigInt(counts.records),
      quarantinedCount: BigInt(counts.quarantined),
      latestVersion: latest?.id ?? '',
    };
  }

  async putSchema(request: PutSchemaRequest) {
    const { row } = await this.resolve(request.dataset, 'dataset');
    const next = parseSchema(request.schema);
    let changes: string[] = [];
    const result = await this.store.putSchema(
      row.id,
      (current) => {
        const diff = compareSchemas(current, next);
        changes = diff.changes;
        const same = canonical(definitionOf(current)) === canonical(definitionOf(next));
        if (same && !request.newMajorVersion) return undefined;
        if (diff.breaking.length > 0 && !request.newMajorVersion) {
          throw failedPrecondition(
            `schema change breaks consumers: ${diff.breaking.join('; ')}. Declare it as a new major version ` +
              `(new_major_version) to put it anyway; the current schema is ${current.major}.${current.minor}`,
          );
        }
        return request.newMajorVersion
          ? { major: current.major + 1, minor: 0 }
          : { major: current.major, minor: current.minor + 1 };
      },
      next,
    );
    this.invalidate(request.dataset);
    return {
      schema: schemaToProto(result.schema),
      created: result.created,
      changes: result.created ? changes : [],
    };
  }
}
