import type { Column, IngestService } from '@ballast/contracts/ballast/ingest/v1/ingest_pb.js';
import type { ServiceClient } from '@ballast/grpc-kit';
import type { Sql } from '@ballast/storage';
import { type ActualRow, actualsSourceVersion, setActualsSourceVersion } from './store/actuals.js';
import { latestBaselines } from './store/baselines.js';

/**
 * Actuals that arrive through ingest: for every model whose newest baseline names an
 * `ActualsSource`, each newly committed version of that dataset is read and its records
 * recorded as actuals (entity key and value from the named fields, time from the dataset's
 * event-time field). Versions are cumulative and an actual seen before is counted once, so
 * reading a whole version again is safe; the last version read is kept per model, so a
 * restart resumes where it was.
 */

const MAX_PER_CALL = 10_000;

export interface IngestActualsOptions {
  sql: () => Sql;
  ingest: ServiceClient<typeof IngestService>;
  record: (model: string, rows: readonly ActualRow[]) => Promise<{ matched: number; unmatched: number }>;
  intervalMs: number;
  onError?: (error: unknown) => void;
}

export interface SourceRead {
  model: string;
  dataset: string;
  version: string;
  records: number;
  /** Records without a key, value or time, left out. */
  skipped: number;
  matched: number;
  unmatched: number;
}

function numbers(column: Column | undefined): (number | undefined)[] {
  if (!column) return [];
  const nulls = new Set(column.nullRows);
  const v = column.values;
  const raw: number[] =
    v.case === 'doubles'
      ? v.value.values
      : v.case === 'ints'
        ? v.value.values.map(Number)
        : v.case === 'timestamps'
          ? v.value.seconds.map((s) => Number(s) * 1000)
          : [];
  return raw.map((x, i) => (nulls.has(i) || !Number.isFinite(x) ? undefined : x));
}

function strings(column: Column | undefined): (string | undefined)[] {
  if (!column) return [];
  const nulls = new Set(column.nullRows);
  const v = column.values;
  const raw: string[] =
    v.case === 'strings'
      ? v.value.values
      : v.case === 'ints'
        ? v.value.values.map(String)
        : v.case === 'doubles'
          ? v.value.values.map(String)
          : [];
  return raw.map((x, i) => (nulls.has(i) || x === '' ? undefined : x));
}

export class IngestActuals {
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<unknown> | undefined;

  constructor(private readonly options: IngestActualsOptions) {}

  start(): void {
    const tick = () => {
      this.#running = this.poll()
        .catch((err) => this.options.onError?.(err))
        .finally(() => {
          this.#timer = setTimeout(tick, this.options.intervalMs);
          this.#timer.unref();
        });
    };
    this.#timer = setTimeout(tick, this.options.intervalMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#running;
  }

  /** One pass over every model with an actuals source; what was read. */
  async poll(): Promise<SourceRead[]> {
    const reads: SourceRead[] = [];
    for (const baseline of await latestBaselines(this.options.sql())) {
      const source = baseline.config.actuals;
      if (!source?.dataset) continue;
      const read = await this.readSource(baseline.model, source);
      if (read) reads.push(read);
    }
    return reads;
  }

  private async readSource(
    model: string,
    source: { dataset: string; entityKeyField: string; valueField: string },
  ): Promise<SourceRead | undefined> {
    const { dataset } = await this.options.ingest.getDataset({ name: source.dataset });
    const version = dataset?.latestVersion ?? '';
    const timeField = dataset?.schema?.eventTimeField ?? '';
    if (!version) return undefined;
    if ((await actualsSourceVersion(this.options.sql(), model, source.dataset)) === version) return undefined;
    const read: SourceRead = {
      model,
      dataset: source.dataset,
      version,
      records: 0,
      skipped: 0,
      matched: 0,
      unmatched: 0,
    };
    let pending: ActualRow[] = [];
    const flush = async () => {
      if (pending.length === 0) return;
      const { matched, unmatched } = await this.options.record(model, pending);
      read.matched += matched;
      read.unmatched += unmatched;
      pending = [];
    };
    for await (const { batch } of this.options.ingest.readVersion({ dataset: source.dataset, id: version })) {
      if (!batch) continue;
      const column = (name: string) => batch.columns.find((c) => c.name === name);
      const keys = strings(column(source.entityKeyField));
      const values = numbers(column(source.valueField));
      const times = numbers(column(timeField));
      for (let i = 0; i < batch.rowCount; i++) {
        read.records++;
        const entityKey = keys[i];
        const value = values[i];
        const time = times[i];
        if (entityKey === undefined || value === undefined || time === undefined) {
          read.skipped++;
          continue;
        }
        pending.push({ entityKey, value, time });
        if (pending.length >= MAX_PER_CALL) await flush();
      }
    }
    await flush();
    await setActualsSourceVersion(this.options.sql(), {
      model,
      dataset: source.dataset,
      version,
      records: read.records,
    });
    return read;
  }
}
