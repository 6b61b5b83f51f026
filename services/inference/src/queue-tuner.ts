/**
 * Tunes a batcher's queue delay and the batch size it waits for from a p99 latency objective
 * (`inference.latency_objective_ms`), the observed arrival rate and the observed execution
 * times, instead of fixed `max_queue_delay_microseconds` / `preferred_batch_size` knobs.
 *
 * The model: one execution of b rows takes fixed + perRow × b (fitted from the batches run).
 * A request may wait the queue delay, then for the batch ahead of it, then for its own batch,
 * so a setting (delay D, batch B) is admissible when D + 2 × exec(B) fits the budget (the
 * objective with headroom for the tail). Among admissible settings:
 * - light load (fewer than one arrival expected while a batch of one runs): D = 0, every
 *   request goes at once, because nothing would join it;
 * - otherwise the largest B whose fill time (B − 1 arrivals) and executions fit the budget,
 *   waiting at most that fill time: fewer, fuller executions, which is what raises capacity.
 * The budget itself follows the latency actually observed: a p99 over the objective shrinks
 * it (multiplicatively), a p99 well under it lets it grow back. Whatever the budget, the batch
 * waited for is never smaller than the one that keeps up with arrivals (overload).
 *
 * Pure and clock-free: callers pass the time, so tests replay arrivals deterministically.
 */
export interface Tuning {
  /** How long the oldest request may wait for a fuller batch, in microseconds. */
  delayUs: number;
  /** A batch of this many rows goes at once, without waiting out the delay. */
  batchSize: number;
}

/** Share of the objective planned for: the rest is headroom for the p99's tail. */
const HEADROOM = 0.7;
/** Latencies remembered for the observed p99. */
const WINDOW = 512;
/** Retune at most this often (ms of the caller's clock). */
const RETUNE_MS = 20;

export class QueueDelayTuner {
  /** Moving average of the gap between arrivals, ms (Infinity until two have arrived). */
  #gapMs = Number.POSITIVE_INFINITY;
  #lastArrival: number | undefined;
  /** Running sums for the least-squares fit exec(b) = fixed + perRow × b (exponentially decayed). */
  #n = 0;
  #sx = 0;
  #sy = 0;
  #sxx = 0;
  #sxy = 0;
  readonly #latencies = new Float64Array(WINDOW);
  #latencyCount = 0;
  /** Feedback on the budget: 1 plans with the whole headroomed objective. */
  #scale = 1;
  #retunedAt = Number.NEGATIVE_INFINITY;
  #tuning: Tuning = { delayUs: 0, batchSize: 1 };

  constructor(
    readonly objectiveMs: number,
    readonly maxBatchSize: number,
  ) {}

  get tuning(): Tuning {
    return this.#tuning;
  }

  /** Mean time between arrivals, ms. */
  get gapMs(): number {
    return this.#gapMs;
  }

  /** A request of `rows` rows arrived at `now` (ms). */
  arrival(now: number, rows: number): void {
    if (this.#lastArrival !== undefined) {
      // Per row: a request of 8 rows brings a batch as close to full as 8 requests of one.
      const gap = Math.max(0, now - this.#lastArrival) / Math.max(1, rows);
      this.#gapMs = Number.isFinite(this.#gapMs) ? this.#gapMs * 0.95 + gap * 0.05 : gap;
    }
    this.#lastArrival = now;
  }

  /** A batch of `rows` rows took `execMs` (assembly, the worker's run and the hop back). */
  executed(rows: number, execMs: number): void {
    const decay = 0.98;
    this.#n = this.#n * decay + 1;
    this.#sx = this.#sx * decay + rows;
    this.#sy = this.#sy * decay + execMs;
    this.#sxx = this.#sxx * decay + rows * rows;
    this.#sxy = this.#sxy * decay + rows * execMs;
  }

  /** A request was answered `latencyMs` after it arrived (queue + execution). */
  answered(latencyMs: number): void {
    this.#latencies[this.#latencyCount % WINDOW] = latencyMs;
    this.#latencyCount++;
  }

  /** Execution time of a batch of `rows`, from the fit (0 before any batch ran). */
  execMs(rows: number): number {
    if (this.#n === 0) return 0;
    const meanX = this.#sx / this.#n;
    const meanY = this.#sy / this.#n;
    const varX = this.#sxx / this.#n - meanX * meanX;
    // One batch size seen so far: no slope to fit, cost proportional to rows from the origin.
    if (varX < 1e-9) return meanX > 0 ? (meanY / meanX) * rows : meanY;
    const perRow = Math.max(0, (this.#sxy / this.#n - meanX * meanY) / varX);
    const fixed = Math.max(0, meanY - perRow * meanX);
    return fixed + perRow * rows;
  }

  /** The observed p99 over the last WINDOW answers (0 before any). */
  observedP99Ms(): number {
    const count = Math.min(this.#latencyCount, WINDOW);
    if (count === 0) return 0;
    const sorted = Array.from(this.#latencies.subarray(0, count)).sort((a, b) => a - b);
    return sorted[Math.min(count - 1, Math.floor(count * 0.99))] as number;
  }

  /** Recomputes the tuning (at most every RETUNE_MS); returns it. */
  retune(now: number): Tuning {
    if (now - this.#retunedAt < RETUNE_MS) return this.#tuning;
    this.#retunedAt = now;
    if (this.#latencyCount >= 64) {
      const p99 = this.observedP99Ms();
      if (p99 > this.objectiveMs) this.#scale = Math.max(0.05, this.#scale * 0.7);
      else if (p99 < this.objectiveMs * 0.6) this.#scale = Math.min(1, this.#scale * 1.1);
    }
    this.#tuning = this.plan();
    return this.#tuning;
  }

  /** The smallest batch size (a power of two, or the maximum) whose execution takes less than its arrivals. */
  #keepingUp(gap: number): number {
    let size = 1;
    while (size < this.maxBatchSize && this.execMs(size) >= size * gap)
      size = Math.min(size * 2, this.maxBatchSize);
    return size;
  }

  /** The setting for the current estimates (see the class comment). */
  plan(): Tuning {
    const budgetMs = this.objectiveMs * HEADROOM * this.#scale;
    const gap = this.#gapMs;
    // Light load, or nothing known yet: nothing would join a request, so it goes at once.
    if (!Number.isFinite(gap) || gap >= this.execMs(1)) return { delayUs: 0, batchSize: 1 };
    let best: Tuning = { delayUs: 0, batchSize: 1 };
    for (let size = 2; ; size = Math.min(size * 2, this.maxBatchSize)) {
      const execMs = this.execMs(size);
      const fillMs = (size - 1) * gap;
      if (fillMs + 2 * execMs > budgetMs) break;
      best = { delayUs: Math.round(fillMs * 1000), batchSize: size };
      if (size === this.maxBatchSize) break;
    }
    // Never below the batch that keeps up with arrivals: under overload the objective cannot
    // be met whatever the setting, and smaller batches would only lower capacity (the queue,
    // and every request's wait, would grow without bound).
    const needed = this.#keepingUp(gap);
    if (best.batchSize < needed) best = { delayUs: Math.round((needed - 1) * gap * 1000), batchSize: needed };
    return best;
  }
}
