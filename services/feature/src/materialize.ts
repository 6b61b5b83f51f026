import { SpanStatusCode, trace } from '@opentelemetry/api';
import type { CompiledView } from './definition.js';
import type { OnlineStore } from './online.js';
import { type RecordSource, readTable } from './records.js';
import type { MaterializationRun, MaterializationRuns } from './runs.js';
import type { FeatureStore } from './store.js';
import { materializeStreaming } from './stream.js';
import { computeRowsSliced } from './transforms.js';
import type { VersionStatistics } from './version-statistics.js';

export interface MaterializeResult {
  records: number;
  rows: number;
  entities: number;
  /** Entities whose online vector this run replaced (not those already holding a later one). */
  onlineWritten: number;
  skipped: number;
}

export type MaterializeOutcome = 'succeeded' | 'failed';

export interface RunOptions {
  progress?: (fraction: number) => unknown;
  signal?: AbortSignal | undefined;
  /** What started it, as ListMaterializations shows: "rpc" or "job <id>". */
  trigger?: string;
}

export interface MaterializerDeps {
  store: FeatureStore;
  online: OnlineStore;
  source: RecordSource;
  runs: MaterializationRuns;
  /** Called once per run as it ends (the materializations metric). */
  onOutcome?: (outcome: MaterializeOutcome) => void;
  /**
   * 'stream' (the default): the version is staged in the offline store and computed a chunk
   * at a time, in memory that does not grow with it (stream.ts). 'memory': read whole, then
   * computed and written (the original path; it gives the same rows, vectors and counts).
   */
  mode?: 'stream' | 'memory';
  /** Staged records read back per page in 'stream' mode (entity groups are never split). */
  chunkRecords?: number | undefined;
  /**
   * When given, a run that succeeds goes on to work out the version's common statistics
   * (VersionStatistics.precompute) after it is recorded: the run's caller does not wait for
   * them; `settled` does, and `close` stops them.
   */
  statistics?: VersionStatistics;
  /** Told when that fails; GetFeatureStatistics then computes on the first request. */
  onStatisticsError?: (err: unknown, view: CompiledView, datasetVersion: string) => void;
}

/**
 * Staged records per page: a page's parse and decode run in one turn of the event loop, so
 * pages stay small on either backend (parse and decode of 5,000 took up to ~19 ms on a quiet machine).
 */
export const DEFAULT_CHUNK_RECORDS = { postgres: 2_000, pglite: 2_000 } as const;

/** What a failed run records: the error's own message ("UNAVAILABLE: Connection dropped"). */
export function failureReason(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Materialization: a dataset version's records -> the view's rows in the offline store
 * (replacing that version's rows) -> each entity's latest vector in the online store.
 * Every step is a function of the records and the definition, so re-running gives the
 * same rows and the same vectors, in either mode (MaterializerDeps.mode).
 */
const tracer = trace.getTracer('@ballast/feature');

export class Materializer {
  readonly #precomputing = new Set<Promise<void>>();
  readonly #closing = new AbortController();

  constructor(private readonly deps: MaterializerDeps) {}

  /** Resolves once the statistics being worked out after runs are done. */
  async settled(): Promise<void> {
    while (this.#precomputing.size > 0) await Promise.all(this.#precomputing);
  }

  /**
   * Stops the statistics still being worked out (over 10M rows they take minutes, longer than
   * a shutdown should) and waits for them to let go of the store. Call before closing it.
   */
  async close(): Promise<void> {
    this.#closing.abort();
    await this.settled();
  }

  /** Runs a materialization to its end, recording it (running, then succeeded or failed). */
  async run(
    view: CompiledView,
    datasetVersion: string,
    options: RunOptions = {},
  ): Promise<MaterializeResult & { run: MaterializationRun }> {
    await this.deps.runs.start(view, datasetVersion, options.trigger ?? 'rpc');
    return this.finish(view, datasetVersion, options);
  }

  /**
   * Starts a run and answers once it is recorded as running: it goes on without the caller
   * (no signal), and its end, failure included, is recorded for ListMaterializations.
   */
  async background(view: CompiledView, datasetVersion: string): Promise<MaterializationRun> {
    const started = await this.deps.runs.start(view, datasetVersion, 'rpc background');
    this.finish(view, datasetVersion, {}).catch(() => {
      // Recorded by finish; nobody is waiting for this promise.
    });
    return started;
  }

  private async finish(
    view: CompiledView,
    datasetVersion: string,
    options: RunOptions,
  ): Promise<MaterializeResult & { run: MaterializationRun }> {
    try {
      const result = await this.traced(view, datasetVersion, options.progress ?? (() => {}), options.signal);
      const run = await this.deps.runs.succeed(view.version, datasetVersion, result);
      this.deps.onOutcome?.('succeeded');
      this.#precompute(view, datasetVersion);
      return { ...result, run };
    } catch (err) {
      this.deps.onOutcome?.('failed');
      await this.deps.runs.fail(view.version, datasetVersion, failureReason(err)).catch(() => {
        // The database itself failing: the run stays "running"; the caller still gets err.
      });
      throw err;
    }
  }

  #precompute(view: CompiledView, datasetVersion: string): void {
    const { statistics, onStatisticsError } = this.deps;
    if (!statistics) return;
    const closing = this.#closing.signal;
    if (closing.aborted) return;
    const work = statistics
      .precompute(view, datasetVersion, closing)
      .catch((err: unknown) => {
        if (!closing.aborted) onStatisticsError?.(err, view, datasetVersion);
      })
      .finally(() => this.#precomputing.delete(work));
    this.#precomputing.add(work);
  }

  private traced(
    view: CompiledView,
    datasetVersion: string,
    progress: (fraction: number) => unknown,
    signal: AbortSignal | undefined,
  ): Promise<MaterializeResult> {
    // A span of its own, inside whatever is active: the Materialize call, or the job's
    // "process features.materialize" span, itself in the trace of the ingest commit.
    return tracer.startActiveSpan(
      'feature.materialize',
      {
        attributes: {
          'ballast.feature.view': view.name,
          'ballast.feature.view_version': view.version,
          'ballast.dataset.version': datasetVersion,
        },
      },
      async (span) => {
        try {
          const result = await this.materialize(view, datasetVersion, progress, signal);
          span.setAttributes({
            'ballast.feature.rows': result.rows,
            'ballast.feature.entities': result.entities,
          });
          return result;
        } catch (err) {
          span.recordException(err as Error);
          span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message });
          throw err;
        } finally {
          span.end();
        }
      },
    );
  }

  private async materialize(
    view: CompiledView,
    datasetVersion: string,
    progress: (fraction: number) => unknown,
    signal: AbortSignal | undefined,
  ): Promise<MaterializeResult> {
    if (this.deps.mode !== 'memory') {
      const { store } = this.deps;
      return materializeStreaming(this.deps, view, datasetVersion, {
        chunkRecords: this.deps.chunkRecords ?? DEFAULT_CHUNK_RECORDS[store.kind],
        progress,
        signal,
      });
    }
    const table = await readTable(this.deps.source, view.dataset, datasetVersion, view.fields, signal);
    await progress(0.4);
    const rows = await computeRowsSliced(view, table);
    await progress(0.6);
    const entities = rows.groupStarts.length - 1;
    await this.deps.store.writeRows(view, datasetVersion, rows, { records: table.length, entities });
    await progress(0.9);
    const onlineWritten = await this.deps.online.write(view.version, datasetVersion, rows);
    await progress(1);
    return { records: table.length, rows: rows.count, entities, onlineWritten, skipped: rows.skipped };
  }
}
