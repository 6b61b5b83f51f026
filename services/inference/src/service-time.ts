/**
 * How long one batch keeps a model busy, as the load shedder and the scheduler need it: the
 * model worker's own execution time (a moving average) plus the hop to the worker and back
 * (the median of recent hops).
 *
 * Why not the wall time the event loop sees between posting a batch and reading its answer:
 * that wall time also holds every stall of the event loop while the worker's answer waits in
 * its queue (a GC pause, a burst of requests being decoded, a descheduled process on a loaded
 * machine). An average of it let one 100 ms stall set the estimate to 20+ ms for dozens of
 * batches, and the shedder refused most requests at a rate the model served in about a
 * millisecond each. A stall is not queueing in the batcher: once it is over, the next batch
 * runs as fast as ever. The median ignores rare stalls and still follows an event loop that is
 * behind on most batches (which is real queueing, and is counted).
 */

/** Hops remembered for the median. */
const HOPS = 15;
/** Weight of the newest execution in the moving average. */
const ALPHA = 0.2;

export class ServiceTime {
  /** The worker's execution of one batch, ms (moving average; the seed until the first batch). */
  #execMs: number;
  #measured = false;
  // One hop of 0 to start with (an idle event loop's hop is negligible): the lower median then
  // never rests on one sample, such as a first batch that waited out the first connection.
  readonly #hops = new Float64Array(HOPS);
  #hopCount = 1;
  #hopMs = 0;

  /** `seedMs`: a first guess (the warm-up's), replaced by the first batch measured. */
  constructor(seedMs = 0) {
    this.#execMs = seedMs;
  }

  /** The worker's execution of one batch, ms. */
  get execMs(): number {
    return this.#execMs;
  }

  /** Posting a batch to the worker and reading its answer, beyond the execution, ms (lower median). */
  get hopMs(): number {
    return this.#hopMs;
  }

  /** One batch from its start to its answer being read, ms: what a request queued behind it waits. */
  get batchMs(): number {
    return this.#execMs + this.#hopMs;
  }

  /**
   * A batch took `wallMs` on the event loop's clock (assembly, hand-off, execution, the answer
   * read back), of which the worker measured `workerMs` of execution.
   */
  record(wallMs: number, workerMs: number): void {
    const exec = Math.max(0, Math.min(workerMs, wallMs));
    this.#execMs = this.#measured ? this.#execMs * (1 - ALPHA) + exec * ALPHA : exec;
    this.#measured = true;
    this.#hops[this.#hopCount % HOPS] = Math.max(0, wallMs - exec);
    this.#hopCount++;
    this.#hopMs = median(this.#hops, Math.min(this.#hopCount, HOPS));
  }
}

/** The lower median of the first `count` values (an insertion sort of at most HOPS numbers, no allocation). */
const scratch = new Float64Array(HOPS);
function median(values: Float64Array, count: number): number {
  for (let i = 0; i < count; i++) {
    const v = values[i] as number;
    let j = i - 1;
    while (j >= 0 && (scratch[j] as number) > v) {
      scratch[j + 1] = scratch[j] as number;
      j--;
    }
    scratch[j + 1] = v;
  }
  return count === 0 ? 0 : (scratch[(count - 1) >> 1] as number);
}
