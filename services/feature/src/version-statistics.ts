import {
  type GetFeatureStatisticsResponse,
  GetFeatureStatisticsResponseSchema,
} from '@ballast/contracts/ballast/feature/v1/feature_pb.js';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import type { CompiledView } from './definition.js';
import { StatisticsBuilder } from './statistics.js';
import type { FeatureStore, Materialization } from './store.js';

/** Rows read at a time: a batch is only summed, so a small one keeps memory down. */
const BATCH_ROWS = 10_000;

/**
 * The answers worked out as soon as a version is materialized: the API's default bin count
 * (10) and the one monitor's lineage baseline asks for (20, LINEAGE_BINS), over all rows.
 */
export const PRECOMPUTED_BINS: readonly number[] = [10, 20];

/** What a GetFeatureStatistics request asks of one materialized version. */
export interface StatisticsRequest {
  bins: number;
  /** Event-time range, ms: [start, end); infinite when the request gives none. */
  start: number;
  end: number;
}

/** The key an answer is kept under: the request's bins and range. */
function requestKey(request: StatisticsRequest): string {
  return `bins=${request.bins} start=${request.start} end=${request.end}`;
}

function runKey(
  view: CompiledView,
  datasetVersion: string,
  materialization: Materialization,
  request: StatisticsRequest,
): string {
  return `${view.version} ${datasetVersion} ${materialization.generation} ${requestKey(request)}`;
}

/**
 * GetFeatureStatistics over a materialized version. Each answer is kept in the offline store
 * (feature_statistics) until the version is materialized again: over 1M rows an answer takes
 * ~10 s of reading and summing, over 10M minutes, more than a unary call's deadline (monitor
 * fetches its baseline with one). The common answers are worked out right after each
 * materialization (`precompute`), so a caller meets the wait only for an unusual bin count or
 * time range, and then once: a request that arrives while its answer is being computed (by
 * another request or the precompute) waits for that computation instead of starting its own.
 */
export class VersionStatistics {
  /** Answers being computed, by version, materialization and request: a repeated request joins. */
  readonly #running = new Map<string, Promise<GetFeatureStatisticsResponse>>();

  constructor(private readonly store: FeatureStore) {}

  answer(
    view: CompiledView,
    datasetVersion: string,
    materialization: Materialization,
    request: StatisticsRequest,
  ): Promise<GetFeatureStatisticsResponse> {
    const key = runKey(view, datasetVersion, materialization, request);
    const running = this.#running.get(key);
    if (running) return running;
    const answering = this.store
      .keptStatistics(view.version, datasetVersion, requestKey(request))
      .then(async (kept) => {
        if (kept) return fromBinary(GetFeatureStatisticsResponseSchema, kept);
        const [computed] = await this.compute(view, datasetVersion, materialization, [request]);
        return computed as GetFeatureStatisticsResponse;
      });
    return this.#track(key, answering);
  }

  /**
   * Works out and keeps the PRECOMPUTED_BINS answers over all rows, in one read of them (a
   * request for one of them meanwhile joins it); `signal` stops it between batches.
   */
  async precompute(view: CompiledView, datasetVersion: string, signal?: AbortSignal): Promise<void> {
    const materialization = await this.store.materialization(view.version, datasetVersion);
    if (!materialization) return;
    const requests = PRECOMPUTED_BINS.map((bins) => ({
      bins,
      start: Number.NEGATIVE_INFINITY,
      end: Number.POSITIVE_INFINITY,
    }));
    await Promise.all(this.#start(view, datasetVersion, materialization, requests, signal));
  }

  /** Starts computing `requests` together, each answer findable in #running until it settles. */
  #start(
    view: CompiledView,
    datasetVersion: string,
    materialization: Materialization,
    requests: readonly StatisticsRequest[],
    signal?: AbortSignal,
  ): Promise<GetFeatureStatisticsResponse>[] {
    const all = this.compute(view, datasetVersion, materialization, requests, signal);
    return requests.map((request, i) =>
      this.#track(
        runKey(view, datasetVersion, materialization, request),
        all.then((answers) => answers[i] as GetFeatureStatisticsResponse),
      ),
    );
  }

  #track(key: string, answer: Promise<GetFeatureStatisticsResponse>): Promise<GetFeatureStatisticsResponse> {
    this.#running.set(key, answer);
    const settle = () => {
      if (this.#running.get(key) === answer) this.#running.delete(key);
    };
    answer.then(settle, settle);
    return answer;
  }

  /** Requests over the same time range, computed from the same reads of the rows, and kept. */
  private async compute(
    view: CompiledView,
    datasetVersion: string,
    materialization: Materialization,
    requests: readonly StatisticsRequest[],
    signal?: AbortSignal,
  ): Promise<GetFeatureStatisticsResponse[]> {
    const { start, end } = requests[0] as StatisticsRequest;
    const query = { viewVersion: view.version, datasetVersion, start, end, labelledOnly: false };
    const builders = requests.map(
      (r) => new StatisticsBuilder(view.featureNames, view.label.name, view.segmentFields, r.bins),
    );
    for await (const batch of this.store.readRows(query, BATCH_ROWS)) {
      signal?.throwIfAborted();
      for (const b of builders) b.add(batch);
    }
    if (builders.some((b) => b.twoPasses)) {
      for await (const batch of this.store.readRows(query, BATCH_ROWS)) {
        signal?.throwIfAborted();
        for (const b of builders) b.again(batch);
      }
    }
    const answers: GetFeatureStatisticsResponse[] = [];
    for (const [i, builder] of builders.entries()) {
      const { rowCount, sampledRows, statistics } = await builder.finish();
      const response = create(GetFeatureStatisticsResponseSchema, {
        viewVersion: view.version,
        datasetVersion,
        rowCount: BigInt(rowCount),
        statistics,
        quantileSampleRows: BigInt(sampledRows),
      });
      await this.store.keepStatistics(
        view.version,
        datasetVersion,
        materialization.generation,
        requestKey(requests[i] as StatisticsRequest),
        toBinary(GetFeatureStatisticsResponseSchema, response),
      );
      answers.push(response);
    }
    return answers;
  }
}
