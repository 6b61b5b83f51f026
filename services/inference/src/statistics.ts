/**
 * Cumulative inference statistics of one model version, as Triton's ModelStatistics reports
 * them. Counted on the request path with a few additions per batch and per request (no
 * allocation); durations are kept in nanoseconds as doubles (exact to 2^53 ns, ~104 days of
 * cumulative time per counter).
 */
export interface StatisticDuration {
  count: number;
  ns: number;
}

const MS_TO_NS = 1e6;

export class InferenceStatistics {
  /** Milliseconds since the epoch of the last execution; 0 before the first. */
  lastInference = 0;
  /** Rows inferred (a request of n rows counts n). */
  inferenceCount = 0;
  /** Model executions (batches). */
  executionCount = 0;
  /** Requests answered, and their time from arrival to answer. */
  readonly success: StatisticDuration = { count: 0, ns: 0 };
  /** Requests refused or failed once routed to this version, and their time until then. */
  readonly fail: StatisticDuration = { count: 0, ns: 0 };
  /** Per batch entry (a request, or a batch-sized piece of a split one): time in the queue. */
  readonly queue: StatisticDuration = { count: 0, ns: 0 };
  /** Per batch entry: its batch's input assembly (concatenation, hand-off to the worker). */
  readonly computeInput: StatisticDuration = { count: 0, ns: 0 };
  /** Per batch entry: its batch's execution on the model worker (round trip). */
  readonly computeInfer: StatisticDuration = { count: 0, ns: 0 };
  /** Per batch entry: splitting its batch's outputs back into answers. */
  readonly computeOutput: StatisticDuration = { count: 0, ns: 0 };

  /** One execution of `entries` queued requests (or pieces) totalling `rows` rows. */
  recordBatch(
    entries: number,
    rows: number,
    queueMs: number,
    inputMs: number,
    inferMs: number,
    outputMs: number,
  ) {
    this.lastInference = Date.now();
    this.executionCount++;
    this.inferenceCount += rows;
    this.queue.count += entries;
    this.queue.ns += queueMs * MS_TO_NS;
    this.computeInput.count += entries;
    this.computeInput.ns += inputMs * entries * MS_TO_NS;
    this.computeInfer.count += entries;
    this.computeInfer.ns += inferMs * entries * MS_TO_NS;
    this.computeOutput.count += entries;
    this.computeOutput.ns += outputMs * entries * MS_TO_NS;
  }

  recordRequest(ok: boolean, ms: number): void {
    const duration = ok ? this.success : this.fail;
    duration.count++;
    duration.ns += ms * MS_TO_NS;
  }
}
