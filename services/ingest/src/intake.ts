import { createHash } from 'node:crypto';
import {
  type BatchResultSchema,
  type ColumnSchema,
  type IngestRequest,
  type IngestResponseSchema,
  type QuarantinedRecordSchema,
  type RecordBatch,
  RecordBatchSchema,
  RecordSchema,
  type ReplayQuarantineRequest,
  type Value,
  type ViolationSchema,
} from '@ballast/contracts/ballast/ingest/v1/ingest_pb.js';
import { BallastError, invalidArgument } from '@ballast/grpc-kit';
import { create, fromBinary, type MessageInitShape, toBinary } from '@bufbuild/protobuf';
import type { Datasets } from './datasets.js';
import { batchQuality } from './quality.js';
import type { IngestStore, QuarantineInsert } from './store.js';
import { checkBatchLimits, type Limits, type RowViolation } from './validation.js';

/** Violations returned with a batch's result (all of them are stored with the quarantined records). */
export const MAX_REASONS = 20;
/** Batches of one stream validated and written concurrently; acknowledgements stay in order. */
export const MAX_IN_FLIGHT = 4;

type ViolationInit = MessageInitShape<typeof ViolationSchema>;

function toViolation(v: RowViolation, eventId: string): ViolationInit {
  return { recordIndex: v.row, eventId, field: v.field, rule: v.rule, message: v.message };
}

/** A quarantined record's values as one column each, so that it re-validates like a 1-row batch. */
function rowBatch(
  dataset: string,
  fields: string[],
  values: Value[],
  known: ReadonlySet<string>,
): RecordBatch {
  const columns: MessageInitShape<typeof ColumnSchema>[] = [];
  fields.forEach((name, i) => {
    const kind = values[i]?.kind;
    if (!kind || kind.case === undefined || !known.has(name)) return;
    const column = ((): MessageInitShape<typeof ColumnSchema> => {
      switch (kind.case) {
        case 'nullValue':
          return { name, nullRows: [0] };
        case 'doubleValue':
          return { name, values: { case: 'doubles', value: { values: [kind.value] } } };
        case 'intValue':
          return { name, values: { case: 'ints', value: { values: [kind.value] } } };
        case 'stringValue':
          return { name, values: { case: 'strings', value: { values: [kind.value] } } };
        case 'boolValue':
          return { name, values: { case: 'bools', value: { values: [kind.value] } } };
        case 'timestampValue':
          return {
            name,
            values: {
              case: 'timestamps',
              value: { seconds: [kind.value.seconds], nanos: [kind.value.nanos] },
            },
          };
      }
    })();
    columns.push(column);
  });
  return create(RecordBatchSchema, { dataset, rowCount: 1, columns });
}

/**
 * Batches in: validation (compiled per schema), then one transaction per batch that appends
 * the valid records, skips duplicates by event id and quarantines the rest with their
 * reasons. A result is returned only once its transaction has committed.
 */
export class Intake {
  constructor(
    private readonly store: IngestStore,
    private readonly datasets: Datasets,
    private readonly limits: Limits,
  ) {}

  async ingest(
    input: RecordBatch | undefined,
    batchIndex: bigint,
  ): Promise<MessageInitShape<typeof BatchResultSchema>> {
    const batch = checkBatchLimits(input, this.limits);
    const entry = await this.datasets.resolve(batch.dataset, 'batch.dataset');
    const { schema } = entry;
    const validated = entry.compiled.validate(batch, entry.known);
    const quarantine: QuarantineInsert[] = validated.quarantined.map((q) => {
      const record = Buffer.from(toBinary(RecordSchema, create(RecordSchema, { values: q.values }))).toString(
        'base64',
      );
      const digest = createHash('sha256')
        .update(q.fields.join(','))
        .update('\n')
        .update(record)
        .digest('hex');
      return {
        digest,
        eventId: q.eventId,
        fields: q.fields,
        record,
        violations: q.violations.map(({ row: _row, ...v }) => ({ row: 0, ...v })),
      };
    });
    const accepted = await this.store.appendBatch(
      entry.row.id,
      schema,
      batch.source,
      validated.rowsJson,
      validated.validCount,
      quarantine,
    );
    const violations: ViolationInit[] = [];
    for (const q of validated.quarantined) {
      for (const v of q.violations) {
        if (violations.length >= MAX_REASONS) break;
        violations.push(toViolation(v, q.eventId));
      }
    }
    return {
      batchIndex,
      accepted,
      duplicates: validated.validCount - accepted,
      quarantined: validated.quarantined.length,
      violations,
      quality: batchQuality(validated.rowCount, validated.quality),
      schemaMajor: schema.major,
      schemaMinor: schema.minor,
    };
  }

  /**
   * The bulk path: up to MAX_IN_FLIGHT batches of a stream are validated and written at once
   * (validation of one overlaps the database work of the others), and acknowledged in order,
   * each as soon as it and every batch before it are durable. The first failure ends the
   * stream with its status; batches acknowledged before it stay.
   */
  async *stream(
    requests: AsyncIterable<IngestRequest>,
  ): AsyncIterable<MessageInitShape<typeof IngestResponseSchema>> {
    const iterator = requests[Symbol.asyncIterator]();
    const pending: Promise<MessageInitShape<typeof BatchResultSchema>>[] = [];
    let next: Promise<IteratorResult<IngestRequest>> | undefined;
    let index = 0n;
    let done = false;
    const never = new Promise<never>(() => {});
    try {
      while (!done || pending.length > 0) {
        const canRead = !done && pending.length < MAX_IN_FLIGHT;
        if (canRead) next ??= iterator.next();
        const head = pending[0];
        const event = await Promise.race([
          canRead && next ? next.then((r) => ({ read: r })) : never,
          head
            ? head.then(
                () => ({ read: undefined }),
                () => ({ read: undefined }),
              )
            : never,
        ]);
        if (event.read) {
          next = undefined;
          if (event.read.done) {
            done = true;
          } else {
            const work = this.ingest(event.read.value.batch, index++);
            work.catch(() => {});
            pending.push(work);
          }
        } else {
          yield { result: await (pending.shift() as Promise<MessageInitShape<typeof BatchResultSchema>>) };
        }
      }
    } finally {
      await iterator.return?.();
    }
  }

  async listQuarantine(dataset: string, pageSize: number, pageToken: string) {
    const { row } = await this.datasets.resolve(dataset, 'dataset');
    if (pageSize > 1000) throw invalidArgument('page_size', 'must be at most 1000');
    if (pageToken !== '' && !/^\d{1,19}$/.test(pageToken))
      throw invalidArgument('page_token', 'is not a token from this list');
    const limit = pageSize === 0 ? 100 : pageSize;
    const rows = await this.store.quarantinePage(row.id, pageToken || '0', limit);
    const records: MessageInitShape<typeof QuarantinedRecordSchema>[] = rows.map((r) => ({
      id: BigInt(r.id),
      eventId: r.eventId,
      source: r.source,
      fields: r.fields,
      record: fromBinary(RecordSchema, r.record),
      violations: r.violations.map((v) => toViolation(v, r.eventId)),
      receiveTime: { seconds: BigInt(Math.floor(r.receivedAt.getTime() / 1000)), nanos: 0 },
      schemaMajor: r.schemaMajor,
      schemaMinor: r.schemaMinor,
    }));
    const last = rows.at(-1);
    return { records, nextPageToken: rows.length === limit && last ? last.id : '' };
  }

  /**
   * Re-validates quarantined records against the current schema: those that pass are
   * appended (or counted as duplicates) and marked resolved, the rest stay with new reasons.
   */
  async replay(request: ReplayQuarantineRequest) {
    this.datasets.invalidate(request.dataset);
    const entry = await this.datasets.resolve(request.dataset, 'dataset');
    const ids = request.ids.length > 0 ? request.ids.map(String) : undefined;
    const fieldNames = new Set(entry.compiled.fieldsByName.keys());
    let accepted = 0;
    let duplicates = 0;
    let still = 0;
    const violations: ViolationInit[] = [];
    let after = '0';
    let position = 0;
    for (;;) {
      const rows = await this.store.quarantinePage(entry.row.id, after, 500, ids);
      if (rows.length === 0) break;
      after = (rows.at(-1) as { id: string }).id;
      const passed: { id: string; source: string; rowsJson: string }[] = [];
      for (const row of rows) {
        const record = fromBinary(RecordSchema, row.record);
        const batch = rowBatch(request.dataset, row.fields, record.values, fieldNames);
        let problems: RowViolation[];
        try {
          const result = entry.compiled.validate(batch, entry.known);
          if (result.validCount === 1) {
            passed.push({ id: row.id, source: row.source, rowsJson: result.rowsJson });
            position++;
            continue;
          }
          problems = result.quarantined[0]?.violations ?? [];
        } catch (err) {
          if (!(err instanceof BallastError)) throw err;
          problems = [
            { row: 0, field: err.field ?? '', rule: err.rule ?? 'structure', message: err.message },
          ];
        }
        still++;
        for (const v of problems) {
          if (violations.length < MAX_REASONS)
            violations.push(toViolation({ ...v, row: position }, row.eventId));
        }
        position++;
      }
      const inserted = await this.store.resolveReplayed(entry.row.id, entry.schema, passed);
      accepted += inserted;
      duplicates += passed.length - inserted;
    }
    return { accepted, duplicates, stillQuarantined: still, violations };
  }
}
