import type { Redis } from 'ioredis';

export interface TrackerEvents {
  /** Keys Redis says changed; null for everything (FLUSHDB, FLUSHALL). */
  invalidated(keys: Buffer[] | null): void;
  /** Tracking came on: invalidations flow from now on. */
  on(): void;
  /** The connection dropped: invalidations sent meanwhile are lost. */
  off(): void;
}

/**
 * One dedicated connection to one Redis server with CLIENT TRACKING on in broadcast mode for a
 * key prefix, redirected to itself, subscribed to `__redis__:invalidate`: Redis then pushes
 * the name of every key under the prefix written, deleted or expired on that server, by any
 * client. Tracking is set up again by hand after every reconnect (before it subscribes), so
 * the connection is its own, never the shared one (a subscribed connection takes no other
 * commands). On a cluster there is one per master (near-cache.ts).
 */
export class InvalidationTracker {
  #tracking = false;
  #closed = false;
  #setup: Promise<void> | undefined;

  constructor(
    readonly conn: Redis,
    readonly prefix: string,
    readonly events: TrackerEvents,
  ) {
    conn.on('ready', () => void this.#track());
    conn.on('close', () => this.#untrack());
    conn.on('error', () => {}); // reconnects on its own; the shared connection reports outages
    conn.on('messageBuffer', (_channel: Buffer, keys: unknown) =>
      events.invalidated(Array.isArray(keys) ? (keys as Buffer[]) : null),
    );
    conn.connect().catch(() => {}); // retried by ioredis; 'ready' starts tracking
  }

  get tracking(): boolean {
    return this.#tracking;
  }

  /** A set-up in progress, to wait on; undefined when none is. */
  get settingUp(): Promise<void> | undefined {
    return this.#setup;
  }

  close(): void {
    this.#closed = true;
    this.#untrack();
    this.conn.disconnect();
  }

  #track(): Promise<void> {
    this.#setup ??= this.#turnOn().finally(() => {
      this.#setup = undefined;
    });
    return this.#setup;
  }

  async #turnOn(): Promise<void> {
    if (this.#tracking || this.#closed) return;
    try {
      const id = await this.conn.client('ID');
      await this.conn.call(
        'CLIENT',
        'TRACKING',
        'ON',
        'REDIRECT',
        String(id),
        'BCAST',
        'PREFIX',
        this.prefix,
      );
      await this.conn.subscribe('__redis__:invalidate');
    } catch {
      return; // the next 'ready' tries again; until then every read goes to Redis
    }
    if (this.#closed) return;
    this.#tracking = true;
    this.events.on();
  }

  #untrack(): void {
    this.#tracking = false;
    this.events.off();
  }
}
