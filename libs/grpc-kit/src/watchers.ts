import type { DescMethod } from '@bufbuild/protobuf';
import { metrics } from '@opentelemetry/api';
import { BallastError } from './errors.js';

export const DEFAULT_MAX_WATCHERS = 1000;

/** Server streams that stay open for as long as the client likes: health Watch and the Watch* RPCs. */
export function isWatch(method: DescMethod): boolean {
  return method.methodKind === 'server_streaming' && method.name.startsWith('Watch');
}

/**
 * Counts open watch streams per service and refuses one past the cap. A watch costs memory
 * for its whole life (a health Watch needs no token), so without a cap any client could hold
 * the server's memory by opening them.
 */
export class WatcherCounts {
  readonly #open = new Map<string, number>();

  constructor(readonly cap: number) {
    metrics
      .getMeter('@ballast/grpc-kit')
      .createObservableGauge('grpc_server_open_watchers', {
        description: 'Open watch streams (health Watch and Watch* RPCs), by service.',
      })
      .addCallback((result) => {
        for (const [service, open] of this.#open) result.observe(open, { grpc_service: service });
      });
  }

  open(service: string): number {
    return this.#open.get(service) ?? 0;
  }

  /** Counts one more watcher of the method's service; the returned function ends it (once). */
  enter(method: DescMethod): () => void {
    const service = method.parent.typeName;
    const open = this.open(service);
    if (open >= this.cap) {
      throw new BallastError(
        'resource_exhausted',
        `${service} already has ${open} open watch streams, the cap (max_watchers = ${this.cap}, BALLAST_GRPC_MAX_WATCHERS); close one or retry later`,
      );
    }
    this.#open.set(service, open + 1);
    let left = false;
    return () => {
      if (left) return;
      left = true;
      this.#open.set(service, this.open(service) - 1);
    };
  }
}
