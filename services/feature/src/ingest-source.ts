import {
  type Column,
  IngestService,
  type RecordBatch,
} from '@ballast/contracts/ballast/ingest/v1/ingest_pb.js';
import { createClient, type ServiceClient } from '@ballast/grpc-kit';
import type { RecordSource, SourceBatch, SourceValue } from './records.js';

/** A column of ingest's RecordBatch as plain values: timestamps as unix ms, nulls as null. */
export function columnValues(column: Column, rowCount: number): SourceValue[] {
  const v = column.values;
  let out: SourceValue[];
  switch (v.case) {
    case 'doubles':
      out = [...v.value.values];
      break;
    case 'ints':
      out = v.value.values.map(Number);
      break;
    case 'strings':
      out = [...v.value.values];
      break;
    case 'bools':
      out = [...v.value.values];
      break;
    case 'timestamps': {
      const { seconds, nanos } = v.value;
      out = seconds.map((s, i) => Number(s) * 1000 + Math.floor((nanos[i] ?? 0) / 1e6));
      break;
    }
    default:
      return new Array<SourceValue>(rowCount).fill(null);
  }
  for (const row of column.nullRows) out[row] = null;
  return out;
}

export function sourceBatch(batch: RecordBatch): SourceBatch {
  const columns: Record<string, SourceValue[]> = {};
  for (const column of batch.columns) columns[column.name] = columnValues(column, batch.rowCount);
  return { rowCount: batch.rowCount, columns };
}

/** Dataset versions read from ingest's ReadVersion stream (BALLAST_INGEST_ADDR). */
export class IngestSource implements RecordSource {
  private readonly client: ServiceClient<typeof IngestService>;

  private readonly chunkSize: number;

  constructor(address: string, options: { chunkSize?: number; authToken?: string | undefined } = {}) {
    this.client = createClient(IngestService, { address, authToken: options.authToken });
    this.chunkSize = options.chunkSize ?? 5_000;
  }

  async *read(dataset: string, version: string, signal?: AbortSignal): AsyncIterable<SourceBatch> {
    const stream = this.client.readVersion(
      { dataset, id: version, chunkSize: this.chunkSize },
      signal ? { signal } : undefined,
    );
    for await (const response of stream) {
      if (response.batch) yield sourceBatch(response.batch);
    }
  }

  close(): void {
    this.client.close();
  }
}
