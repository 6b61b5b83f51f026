import { BallastError } from '@ballast/grpc-kit';
import { type Link, type SpanContext, SpanStatusCode, trace } from '@opentelemetry/api';
import type { NumericArray, OutputData, RunResult, TensorData } from './executor.js';
import { QueueDelayTuner, type Tuning } from './queue-tuner.js';
import { ServiceTime } from './service-time.js';
import { InferenceStatistics } from './statistics.js';

/**
 * The dynamic batcher, with Triton's knobs and names: requests that wait together run as one
 * tensor op and are split back. One batch runs at a time per model version; whatever arrives
 * meanwhile forms the next batch (with max_queue_delay_microseconds = 0, Triton's default,
 * the batcher never waits on purpose: it batches what is already waiting).
 */
export interface BatcherOptions {
  max_batch_size: number;
  /** How long the oldest request may wait for a fuller batch; 0: never wait. */
  max_queue_delay_microseconds: number;
  /** With a queue delay: a batch of one of these sizes goes at once, without waiting out the delay. */
  preferred_batch_size: number[];
  /** Rows that may wait; beyond it requests are shed at once. */
  max_queue_size: number;
  /** Longest expected wait a request may be accepted with (0: only its deadline bounds it). */
  default_timeout_microseconds: number;
  /**
   * A p99 latency objective (ms) for queue + execution: when set (> 0), the queue delay and
   * the batch size waited for are tuned from it (queue-tuner.ts), and the two knobs above are
   * not used.
   */
  latency_objective_ms?: number | undefined;
  /**
   * The batch runs on this thread (a dense chain, dense-chain.ts), not on the model worker: a
   * lone request then gains nothing from going at once, and always gathers what else arrives
   * in the same turn of the event loop.
   */
  inline?: boolean | undefined;
}

/** Per input: its dtype and the shape of one row (the dimensions after the batch one). */
export interface InputLayout {
  name: string;
  dtype: 'float32' | 'int32';
  rowShape: number[];
  rowSize: number;
}

/** All the batcher asks of a request's cancellation: whether it happened, when a batch forms. */
export interface Cancellation {
  readonly aborted: boolean;
}

export interface BatchRequest {
  rows: number;
  /** One per model input, in signature order: `rows × rowSize` values each. */
  inputs: NumericArray[];
  /** performance.now() milliseconds by which the answer must be sent; Infinity for none. */
  deadline: number;
  /** Whether the caller has gone (an AbortSignal, or a call's HandlerContext: it is read, never listened to). */
  signal?: Cancellation | undefined;
  /** The request's span: the batch span links to it. */
  spanContext?: SpanContext | undefined;
}

export interface BatchAnswer {
  /** This request's rows of every output ([rows, ...]). */
  outputs: OutputData[];
  queueUs: number;
  computeUs: number;
  batchSize: number;
  /** The batch execution span this request joined. */
  batchSpan: SpanContext | undefined;
}

export interface BatcherHooks {
  onBatch?(rows: number, execUs: number): void;
  onQueueWait?(waitUs: number): void;
  /** A request refused at admission (queue_full, expected_wait) or dropped before running (deadline, cancelled). */
  onShed?(reason: 'queue_full' | 'expected_wait' | 'deadline' | 'cancelled'): void;
}

export type BatchRun = (inputs: TensorData[], rows: number) => Promise<RunResult>;

interface Waiting extends BatchRequest {
  enqueuedAt: number;
  resolve(answer: BatchAnswer): void;
  reject(error: Error): void;
  /** For a piece of a split request: set once the request has failed (its other pieces are dropped). */
  split?: { failed: boolean };
}

/** A split request keeps at most this many of its batch-sized pieces in the queue at once. */
const SPLIT_WINDOW = 2;

const tracer = trace.getTracer('@ballast/inference');

export class DynamicBatcher {
  readonly #queue: Waiting[] = [];
  #queuedRows = 0;
  #running = false;
  /** When the running batch started (clock ms). */
  #runningSince = 0;
  #timer: NodeJS.Timeout | undefined;
  #scheduled = false;
  /** How long a batch keeps the model busy (the worker's execution and the hop; seeded by the warm-up). */
  readonly #service: ServiceTime;
  /** Arrival and execution estimates; its tuning replaces the fixed knobs under a latency objective. */
  readonly #tuner: QueueDelayTuner;
  readonly #tuned: boolean;
  readonly #fixed: Tuning;

  /** Cumulative counts and durations (Triton's ModelStatistics). */
  readonly stats = new InferenceStatistics();

  constructor(
    private readonly layout: InputLayout[],
    readonly options: BatcherOptions,
    private readonly runBatch: BatchRun,
    private readonly hooks: BatcherHooks = {},
    initialExecMs = 0,
    /** Milliseconds, performance.now() by default; tests pass their own. */
    private readonly clock: () => number = () => performance.now(),
  ) {
    this.#service = new ServiceTime(initialExecMs);
    const objective = options.latency_objective_ms ?? 0;
    this.#tuned = objective > 0;
    this.#tuner = new QueueDelayTuner(objective, options.max_batch_size);
    const preferred = options.preferred_batch_size;
    this.#fixed = {
      delayUs: options.max_queue_delay_microseconds,
      batchSize: preferred.length > 0 ? Math.max(...preferred) : options.max_batch_size,
    };
  }

  /** The queue delay and batch size in force: the fixed knobs, or the tuner's current choice. */
  get tuning(): Tuning {
    return this.#tuned ? this.#tuner.tuning : this.#fixed;
  }

  get queuedRows(): number {
    return this.#queuedRows;
  }

  /** Whether a batch is on the model worker now. */
  get running(): boolean {
    return this.#running;
  }

  /** One batch from its start to its answer, in ms: the worker's execution plus the hop (service-time.ts). */
  get estimatedBatchMs(): number {
    return this.#service.batchMs;
  }

  /**
   * How long a request arriving at `now` would wait before its batch starts, in ms: what is
   * left of the batch running (its estimate less the time it has run), plus a batch per batch
   * queued ahead of it. An idle batcher admits anything, so the estimate always has fresh
   * executions to learn from.
   */
  expectedWaitMs(rows: number, now = this.clock()): number {
    const batchMs = this.#service.batchMs;
    const batchesAhead = Math.ceil((this.#queuedRows + rows) / this.options.max_batch_size) - 1;
    const left = this.#running ? Math.max(0, batchMs - (now - this.#runningSince)) : 0;
    return left + Math.max(0, batchesAhead) * batchMs;
  }

  /**
   * Queues a request. One of more than max_batch_size rows is split into batch-sized pieces that
   * run in order (at most SPLIT_WINDOW of them queued at a time, so other requests interleave)
   * and answered as one; admission, deadline and cancellation apply to the whole request.
   */
  submit(request: BatchRequest): Promise<BatchAnswer> {
    if (request.rows < 1)
      return Promise.reject(new BallastError('invalid_argument', 'a request needs at least one row'));
    const now = this.clock();
    const refused = this.#admit(request.rows, request.deadline, now);
    if (refused) return Promise.reject(refused);
    this.#tuner.arrival(now, request.rows);
    if (request.rows > this.options.max_batch_size) return this.#submitSplit(request);
    return new Promise<BatchAnswer>((resolve, reject) => {
      // Field by field, not a spread of the request: one object shape for every entry (a spread
      // of requests of varying shapes took a slow path, the batcher's hottest line in a profile).
      this.#queue.push({
        rows: request.rows,
        inputs: request.inputs,
        deadline: request.deadline,
        signal: request.signal,
        spanContext: request.spanContext,
        enqueuedAt: now,
        resolve,
        reject,
      });
      this.#queuedRows += request.rows;
      this.#schedule();
    });
  }

  /** Why a request of `rows` rows is shed at admission, or undefined when it is admitted. */
  #admit(rows: number, deadline: number, now: number): BallastError | undefined {
    const { max_batch_size, max_queue_size, default_timeout_microseconds } = this.options;
    const pieces = Math.ceil(rows / max_batch_size);
    // Rows it holds in the queue at once: all of them, or a split request's window of pieces.
    const holds = pieces === 1 ? rows : Math.min(rows, this.#splitWindow() * max_batch_size);
    if (this.#queuedRows + holds > max_queue_size) {
      this.hooks.onShed?.('queue_full');
      return new BallastError(
        'resource_exhausted',
        `overloaded: the queue holds ${this.#queuedRows} rows (max_queue_size ${max_queue_size}); retry with backoff`,
      );
    }
    // Queue time (its first batch's) is bounded by default_timeout; the wait for its last
    // batch plus that batch's execution by the deadline.
    const waitMs = this.expectedWaitMs(pieces === 1 ? rows : max_batch_size, now);
    const lastMs = pieces === 1 ? waitMs : this.expectedWaitMs(rows, now);
    const runMs = this.#service.batchMs;
    const timeoutMs =
      default_timeout_microseconds > 0 ? default_timeout_microseconds / 1000 : Number.POSITIVE_INFINITY;
    const leftMs = deadline - now;
    if (waitMs <= timeoutMs && lastMs + runMs <= leftMs) return undefined;
    this.hooks.onShed?.('expected_wait');
    const limit =
      waitMs > timeoutMs
        ? `default_timeout ${timeoutMs.toFixed(1)} ms`
        : `deadline in ${leftMs.toFixed(1)} ms`;
    const run = pieces === 1 ? '' : ` for the last of its ${pieces} batches`;
    return new BallastError(
      'resource_exhausted',
      `overloaded: expected wait ${lastMs.toFixed(1)} ms${run} (+ ${runMs.toFixed(1)} ms to run) does not fit the ${limit}; retry with backoff`,
    );
  }

  #splitWindow(): number {
    return this.options.max_queue_size >= SPLIT_WINDOW * this.options.max_batch_size ? SPLIT_WINDOW : 1;
  }

  /**
   * Runs an admitted request of more than max_batch_size rows as pieces of max_batch_size rows
   * (views of its inputs, no copy), queued a window at a time; their answers are joined in row
   * order. The first piece that fails (shed, deadline, cancelled, execution) fails the request
   * with its error, and the pieces not yet run are dropped.
   */
  #submitSplit(request: BatchRequest): Promise<BatchAnswer> {
    const max = this.options.max_batch_size;
    const pieces = Math.ceil(request.rows / max);
    const window = this.#splitWindow();
    return new Promise<BatchAnswer>((resolve, reject) => {
      const answers: BatchAnswer[] = new Array(pieces);
      const split = { failed: false };
      let next = 0;
      let answered = 0;
      const fail = (error: Error) => {
        if (split.failed) return;
        split.failed = true;
        reject(error);
      };
      const enqueue = () => {
        const index = next++;
        const start = index * max;
        const rows = Math.min(max, request.rows - start);
        if (this.#queuedRows + rows > this.options.max_queue_size) {
          this.hooks.onShed?.('queue_full');
          fail(
            new BallastError(
              'resource_exhausted',
              `overloaded: the queue holds ${this.#queuedRows} rows (max_queue_size ${this.options.max_queue_size}) with ${pieces - index} of this request's ${pieces} batches still to queue; retry with backoff`,
            ),
          );
          return;
        }
        this.#queue.push({
          rows,
          inputs: this.layout.map((input, i) =>
            (request.inputs[i] as NumericArray).subarray(
              start * input.rowSize,
              (start + rows) * input.rowSize,
            ),
          ),
          deadline: request.deadline,
          signal: request.signal,
          spanContext: request.spanContext,
          enqueuedAt: this.clock(),
          split,
          resolve: (answer) => {
            if (split.failed) return;
            answers[index] = answer;
            answered++;
            if (answered === pieces) resolve(joinAnswers(answers, request.rows));
            else if (next < pieces) enqueue();
          },
          reject: fail,
        });
        this.#queuedRows += rows;
        this.#schedule();
      };
      for (let i = 0; i < window && next < pieces && !split.failed; i++) enqueue();
    });
  }

  /**
   * Dispatches the queue when its batch is due. `now`: synchronously (right after a batch
   * returns, so the worker is not left idle). A lone request at an idle model also goes
   * synchronously when arrivals are further apart than an execution (nothing is likely to join
   * it: batching then costs nothing), unless the model runs inline (the hand-off gains nothing
   * there, and one batch per request would pay the per-batch work per request); otherwise
   * setImmediate lets what arrives in the same turn of the event loop join it.
   */
  #schedule(now = false): void {
    if (this.#running || this.#queue.length === 0) return;
    const clock = this.clock();
    if (this.#tuned) this.#tuner.retune(clock);
    const { delayUs, batchSize } = this.tuning;
    const full = this.#queuedRows >= Math.min(this.options.max_batch_size, batchSize);
    const oldest = this.#queue[0] as Waiting;
    const waitedUs = (clock - oldest.enqueuedAt) * 1000;
    if (full || waitedUs >= delayUs) {
      if (this.#timer) {
        clearTimeout(this.#timer);
        this.#timer = undefined;
      }
      if (
        now ||
        (!this.options.inline &&
          this.#queue.length === 1 &&
          !this.#scheduled &&
          this.#tuner.gapMs > this.#service.batchMs)
      ) {
        void this.#runNext();
        return;
      }
      // setImmediate: requests that arrived in the same turn of the event loop join this batch.
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => {
          this.#scheduled = false;
          void this.#runNext();
        });
      }
      return;
    }
    this.#timer ??= setTimeout(
      () => {
        this.#timer = undefined;
        this.#schedule();
      },
      Math.max(0, (delayUs - waitedUs) / 1000),
    );
  }

  /** Takes the next batch off the queue, dropping requests whose caller gave up or whose deadline passed. */
  #take(): Waiting[] {
    const batch: Waiting[] = [];
    let rows = 0;
    const now = this.clock();
    while (this.#queue.length > 0) {
      const next = this.#queue[0] as Waiting;
      if (next.split?.failed) {
        // A piece of a request that has already failed (and been answered): dropped unrun.
        this.#queue.shift();
        this.#queuedRows -= next.rows;
        continue;
      }
      if (next.signal?.aborted || next.deadline <= now) {
        this.#queue.shift();
        this.#queuedRows -= next.rows;
        const cancelled = next.signal?.aborted && next.deadline > now;
        this.hooks.onShed?.(cancelled ? 'cancelled' : 'deadline');
        next.reject(
          cancelled
            ? new BallastError('cancelled', 'cancelled by the client before it ran')
            : new BallastError(
                'deadline_exceeded',
                'the deadline passed while the request waited; it was not run',
              ),
        );
        continue;
      }
      if (rows + next.rows > this.options.max_batch_size) break;
      this.#queue.shift();
      this.#queuedRows -= next.rows;
      rows += next.rows;
      batch.push(next);
    }
    return batch;
  }

  async #runNext(): Promise<void> {
    if (this.#running) return;
    const batch = this.#take();
    if (batch.length === 0) return;
    this.#running = true;
    // Once per batch: by the time `finally` runs, the next batch may already be running.
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      this.#running = false;
      this.#schedule(true);
    };
    const rows = batch.reduce((sum, r) => sum + r.rows, 0);
    const started = this.clock();
    this.#runningSince = started;
    const links: Link[] = batch.flatMap((r) => (r.spanContext ? [{ context: r.spanContext }] : []));
    const span = tracer.startSpan('inference.batch', { links, attributes: { 'inference.batch_size': rows } });
    try {
      const inputs = this.layout.map((input, index) => {
        const data =
          input.dtype === 'int32'
            ? new Int32Array(rows * input.rowSize)
            : new Float32Array(rows * input.rowSize);
        let offset = 0;
        for (const request of batch) {
          data.set(request.inputs[index] as NumericArray, offset);
          offset += request.rows * input.rowSize;
        }
        return { shape: [rows, ...input.rowShape], data };
      });
      let queueMs = 0;
      for (const request of batch) {
        queueMs += started - request.enqueuedAt;
        this.hooks.onQueueWait?.((started - request.enqueuedAt) * 1000);
      }
      const assembled = this.clock();
      const result = await this.runBatch(inputs, rows);
      const ran = this.clock();
      const elapsedMs = ran - started;
      this.#service.record(elapsedMs, result.execUs / 1000);
      // The tuner fits the same service time: a stall of the event loop is not execution.
      this.#tuner.executed(rows, Math.min(elapsedMs, result.execUs / 1000 + this.#service.hopMs));
      if (this.#tuned) for (const request of batch) this.#tuner.answered(ran - request.enqueuedAt);
      this.hooks.onBatch?.(rows, result.execUs);
      // What queued while this batch ran goes to the worker before this batch's answers are
      // sent, so the model runs while the event loop writes the responses.
      release();
      // Each request's rows are views of the batch's output buffers (transferred back from the
      // worker, owned here): no copy per request.
      let offset = 0;
      for (const request of batch) {
        const outputs = result.outputs.map((output) => {
          const rowSize = output.shape.slice(1).reduce((a, b) => a * b, 1);
          return {
            name: output.name,
            dtype: output.dtype,
            shape: [request.rows, ...output.shape.slice(1)],
            data: output.data.subarray(offset * rowSize, (offset + request.rows) * rowSize),
          };
        });
        offset += request.rows;
        request.resolve({
          outputs,
          queueUs: Math.round((started - request.enqueuedAt) * 1000),
          computeUs: Math.round(elapsedMs * 1000),
          batchSize: rows,
          batchSpan: span.spanContext(),
        });
      }
      this.stats.recordBatch(
        batch.length,
        rows,
        queueMs,
        assembled - started,
        ran - assembled,
        this.clock() - ran,
      );
    } catch (error) {
      span.setStatus({ code: SpanStatusCode.ERROR, message: (error as Error).message });
      const failure = new Error(`model execution failed: ${(error as Error).message}`);
      // Rejected before the next batch is taken: a split request's queued pieces are dropped, not run.
      for (const request of batch) request.reject(error instanceof BallastError ? error : failure);
      release();
    } finally {
      span.end();
      release();
    }
  }
}

/** The answers of a split request's pieces, in row order, as one answer. */
function joinAnswers(answers: BatchAnswer[], rows: number): BatchAnswer {
  const first = answers[0] as BatchAnswer;
  const outputs = first.outputs.map((output, o) => {
    const rowSize = output.data.length / (output.shape[0] ?? 1);
    const data =
      output.data instanceof Int32Array ? new Int32Array(rows * rowSize) : new Float32Array(rows * rowSize);
    let offset = 0;
    for (const answer of answers) {
      const piece = (answer.outputs[o] as OutputData).data;
      data.set(piece, offset);
      offset += piece.length;
    }
    return { name: output.name, dtype: output.dtype, shape: [rows, ...output.shape.slice(1)], data };
  });
  let queueUs = 0;
  let computeUs = 0;
  let batchSize = 0;
  for (const answer of answers) {
    queueUs += answer.queueUs;
    computeUs += answer.computeUs;
    batchSize = Math.max(batchSize, answer.batchSize);
  }
  return { outputs, queueUs, computeUs, batchSize, batchSpan: (answers.at(-1) as BatchAnswer).batchSpan };
}
