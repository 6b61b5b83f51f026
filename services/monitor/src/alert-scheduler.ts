import type { Alert, AlertState } from '@ballast/contracts/ballast/monitor/v1/monitor_pb.js';

/**
 * When alert work runs: rule evaluations per model, coalesced while data keeps arriving,
 * and the polling behind WatchAlerts. No rule logic and no SQL here: both come in as
 * functions.
 */

export class EvaluationScheduler {
  readonly #running = new Map<string, Promise<void>>();
  readonly #again = new Set<string>();

  constructor(
    private readonly evaluate: (model: string) => Promise<unknown>,
    /** Between two evaluations of one model while requests keep coming; 0: none. */
    private readonly minIntervalMs = 0,
    /**
     * Runs one evaluation of a model exclusively across replicas (store/evaluation-lock.ts);
     * default: as is, for one process alone.
     */
    private readonly exclusive: (model: string, run: () => Promise<unknown>) => Promise<unknown> = (_, run) =>
      run(),
  ) {}

  /**
   * Evaluates the model's rules; concurrent requests for one model coalesce (one runs, one
   * more follows it), so a burst of absorbed jobs costs at most two evaluations. Across
   * replicas, `exclusive` makes them take turns.
   */
  soon(model: string): Promise<void> {
    const running = this.#running.get(model);
    if (running) {
      this.#again.add(model);
      return running;
    }
    const run = (async () => {
      try {
        for (;;) {
          this.#again.delete(model);
          await this.exclusive(model, () => this.evaluate(model));
          if (!this.#again.has(model)) break;
          if (this.minIntervalMs > 0) await new Promise((r) => setTimeout(r, this.minIntervalMs));
        }
      } finally {
        this.#running.delete(model);
      }
    })();
    this.#running.set(model, run);
    return run;
  }

  /** Evaluations in flight (and those they coalesced) have finished. */
  async idle(): Promise<void> {
    while (this.#running.size > 0) await Promise.allSettled([...this.#running.values()]);
  }
}

/** Where watched alerts come from: the shared table, and this replica's own changes. */
export interface AlertFeed {
  /** The clock `changedSince` compares with (the database's, ms). */
  now(): Promise<number>;
  firing(model: string): Promise<Alert[]>;
  /** Alerts changed after `sinceMs`, oldest change first, each with when (ms). */
  changedSince(model: string, sinceMs: number): Promise<{ alert: Alert; at: number }[]>;
  /** Calls `listener` on each change made here; the returned function stops it. */
  subscribe(listener: () => void): () => void;
}

/**
 * Firing alerts now, then every change of state, until `signal` aborts. Changes made here
 * arrive at once; those of other replicas within `pollMs`.
 */
export async function* pollAlerts(
  feed: AlertFeed,
  model: string,
  signal: AbortSignal,
  pollMs: number,
): AsyncGenerator<Alert> {
  const seen = new Map<string, AlertState>();
  // Rows are read back a little before the last one seen: a transaction that began before
  // it may commit after it. `seen` keeps those from coming twice.
  const MARGIN_MS = 10_000;
  let since = await feed.now();
  const startedAt = since;
  let wake: (() => void) | undefined;
  let pending = false;
  const unsubscribe = feed.subscribe(() => {
    pending = true;
    wake?.();
  });
  try {
    for (const alert of await feed.firing(model)) {
      seen.set(alert.id, alert.state);
      yield alert;
    }
    while (!signal.aborted) {
      for (const { alert, at } of await feed.changedSince(model, Math.max(since - MARGIN_MS, startedAt))) {
        since = Math.max(since, at);
        if (seen.get(alert.id) === alert.state) continue;
        seen.set(alert.id, alert.state);
        yield alert;
      }
      if (pending) {
        pending = false;
        continue;
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, pollMs);
        function done() {
          pending = false;
          clearTimeout(timer);
          signal.removeEventListener('abort', done);
          resolve();
        }
        wake = done;
        signal.addEventListener('abort', done, { once: true });
      });
    }
  } finally {
    unsubscribe();
  }
}
