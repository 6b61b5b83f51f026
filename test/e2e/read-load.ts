import { setTimeout as sleep } from 'node:timers/promises';

export interface ReadLoadReport {
  /** Rounds that ended well, in all and after the killed replica had exited. */
  ok: number;
  okAfterKill: number;
  /** Rounds in flight when the kill was sent. */
  inFlightAtKill: number;
  failures: string[];
}

/**
 * Read traffic on a service while one of its replicas is killed: `lanes` loops each run one
 * round of reads (unary calls and whole stream reads, as an outside caller would) back to
 * back through round-robin clients until stopped. A round fails if any of its calls fails;
 * what counts is that none did while rounds were in flight at the kill and after it.
 */
export class ReadLoad {
  readonly #report: ReadLoadReport = { ok: 0, okAfterKill: 0, inFlightAtKill: 0, failures: [] };
  #inFlight = 0;
  #killedAt = Number.POSITIVE_INFINITY;
  #running = true;
  readonly #lanes: Promise<void>[];

  constructor(round: () => Promise<unknown>, lanes = 2) {
    this.#lanes = Array.from({ length: lanes }, async () => {
      while (this.#running) {
        this.#inFlight++;
        try {
          await round();
          this.#report.ok++;
          if (performance.now() > this.#killedAt) this.#report.okAfterKill++;
        } catch (err) {
          this.#report.failures.push(err instanceof Error ? err.message : String(err));
        } finally {
          this.#inFlight--;
        }
      }
    });
  }

  /** Runs `kill` once a few rounds have gone well, so the kill lands among rounds in flight. */
  async during(kill: () => Promise<unknown>): Promise<void> {
    while (this.#report.ok < 2 && this.#report.failures.length === 0) await sleep(20);
    this.#report.inFlightAtKill = this.#inFlight;
    await kill();
    this.#killedAt = performance.now();
  }

  async stop(): Promise<ReadLoadReport> {
    this.#running = false;
    await Promise.all(this.#lanes);
    return this.#report;
  }
}
