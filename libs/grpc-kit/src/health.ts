import { EventEmitter, on } from 'node:events';
import {
  type Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from '@ballast/contracts/grpc/health/v1/health_pb.js';
import { BallastError } from './errors.js';
import type { ServiceImpl } from './types.js';

export { ServingStatus };

/**
 * The state behind grpc.health.v1. The empty name is liveness (the process answers);
 * each service's full name turns SERVING only once that service is ready.
 */
export class HealthState {
  readonly #statuses = new Map<string, ServingStatus>();
  readonly #changes = new EventEmitter();
  #closed = false;

  constructor() {
    this.#changes.setMaxListeners(0);
  }

  set(service: string, status: ServingStatus): void {
    if (this.#statuses.get(service) === status) return;
    this.#statuses.set(service, status);
    this.#changes.emit('change', service, status);
  }

  get(service: string): ServingStatus | undefined {
    return this.#statuses.get(service);
  }

  /** Marks every registered name, liveness included, e.g. NOT_SERVING while draining. */
  setAll(status: ServingStatus): void {
    for (const service of this.#statuses.keys()) this.set(service, status);
  }

  snapshot(): Record<string, ServingStatus> {
    return Object.fromEntries(this.#statuses);
  }

  /** Ends every open Watch stream, so a draining server is not held open by its probes. */
  close(): void {
    this.#closed = true;
    this.#changes.emit('close');
  }

  async *watch(service: string, signal: AbortSignal): AsyncGenerator<ServingStatus> {
    // One controller that the call's signal and close() both abort, with both listeners
    // removed at the end: AbortSignal.any kept every watch's signals alive after it ended.
    const stop = new AbortController();
    const onStop = () => stop.abort();
    if (this.#closed || signal.aborted) stop.abort();
    this.#changes.once('close', onStop);
    signal.addEventListener('abort', onStop, { once: true });
    // Subscribe before sending the current status, so no change in between is lost.
    const events = on(this.#changes, 'change', { signal: stop.signal });
    let last = this.#statuses.get(service) ?? ServingStatus.SERVICE_UNKNOWN;
    try {
      yield last;
      for await (const [name, status] of events as AsyncIterable<[string, ServingStatus]>) {
        if (name !== service || status === last) continue;
        last = status;
        yield status;
      }
    } catch (err) {
      if ((err as Error).name !== 'AbortError') throw err;
    } finally {
      this.#changes.off('close', onStop);
      signal.removeEventListener('abort', onStop);
      stop.abort();
    }
  }
}

export function healthService(state: HealthState): ServiceImpl<typeof Health> {
  return {
    check(request) {
      const status = state.get(request.service);
      if (status === undefined) throw new BallastError('not_found', `unknown service "${request.service}"`);
      return { status };
    },
    list() {
      const statuses = Object.fromEntries(
        Object.entries(state.snapshot()).map(([name, status]) => [name, { status }]),
      );
      return { statuses };
    },
    async *watch(request, ctx) {
      for await (const status of state.watch(request.service, ctx.signal)) yield { status };
    },
  };
}
