import type { Redis } from 'ioredis';

/**
 * Process-local copies of online vectors, kept right by Redis's server-assisted client-side
 * caching: a dedicated connection turns on CLIENT TRACKING in broadcast mode for the online
 * store's prefix, redirected to itself, and subscribes to `__redis__:invalidate`. Redis then
 * pushes the name of every key written, deleted or expired under the prefix (by any client,
 * in any process), and the copy is dropped.
 *
 * Why this is safe:
 *  - A read that was in flight when an invalidation arrived may carry the old value, so every
 *    fill names the epoch it read in, and the epoch moves on with each invalidation: fills from
 *    an older epoch are not kept.
 *  - While the tracking connection is down, invalidations are lost: the cache empties and takes
 *    no fills until tracking is on again (reads go straight to Redis meanwhile). A connection
 *    that died without a word (no FIN) is not noticed at once, so a copy is also read again
 *    from Redis after `maxAgeMs` (10 s by default): the bound on staleness when all else fails.
 *  - Writers in this process drop their keys themselves (`forget`) before they return, so a
 *    read that follows a write here never waits on the push. Another process's write is seen
 *    as soon as its invalidation arrives (one loopback or LAN hop).
 * Bounded: past `maxEntries` the oldest copy goes first.
 */
export class NearCache {
  // By view version, then entity key: lookups use the entity key as the request gave it, with
  // no Redis key string built (and hashed) per entity.
  readonly #views = new Map<string, Map<string, { value: Buffer; until: number }>>();
  readonly #conn: Redis;
  #epoch = 0;
  #tracking = false;
  #closed = false;
  #setup: Promise<void> | undefined;

  private constructor(
    redis: Redis,
    readonly prefix: string,
    readonly maxEntries: number,
    readonly maxAgeMs: number,
  ) {
    // Not the shared connection: a subscribed connection takes no other commands, and its
    // tracking must be set up again by hand after every reconnect (before it subscribes).
    this.#conn = redis.duplicate({
      autoResubscribe: false,
      lazyConnect: true,
      // Named so an operator (or a test) can find it in CLIENT LIST.
      connectionName: `ballast-near-cache:${prefix}`,
    });
    this.#conn.on('ready', () => void this.#track());
    this.#conn.on('close', () => this.#untrack());
    this.#conn.on('error', () => {}); // reconnects on its own; the shared connection reports outages
    this.#conn.on('messageBuffer', (_channel: Buffer, keys: unknown) => this.#invalidated(keys));
  }

  /**
   * A cache that starts empty and inactive, and turns on when its connection is up and
   * tracking (without holding up the caller: reads go to Redis until then). `prefix` is the
   * key prefix to track, colon included.
   */
  static open(redis: Redis, prefix: string, maxEntries: number, maxAgeMs = 10_000): NearCache {
    const cache = new NearCache(redis, prefix, maxEntries, maxAgeMs);
    cache.#conn.connect().catch(() => {}); // retried by ioredis; 'ready' starts tracking
    return cache;
  }

  /** Resolves once tracking is on (tests and benchmarks wait for it; the service does not). */
  async tracking(timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.#tracking) {
      if (Date.now() > deadline) throw new Error(`client tracking not on after ${timeoutMs} ms`);
      await (this.#setup ?? new Promise((resolve) => setTimeout(resolve, 20)));
    }
  }

  /** Whether copies are served and kept: tracking is on and the cache is not closed. */
  get active(): boolean {
    return this.#tracking;
  }

  get size(): number {
    let size = 0;
    for (const entries of this.#views.values()) size += entries.size;
    return size;
  }

  /** The epoch to pass to `fill` for a read that starts now. */
  get epoch(): number {
    return this.#epoch;
  }

  /** The copy of an entity's vector, unless there is none or it is older than maxAgeMs at `now`. */
  get(viewVersion: string, entityKey: string, now: number): Buffer | undefined {
    const entries = this.#views.get(viewVersion);
    const entry = entries?.get(entityKey);
    if (entry === undefined) return undefined;
    if (entry.until > now) return entry.value;
    (entries as Map<string, unknown>).delete(entityKey);
    return undefined;
  }

  /** Keeps what a read found, unless anything was invalidated since it started. */
  fill(
    epoch: number,
    viewVersion: string,
    entityKeys: readonly string[],
    values: readonly (Buffer | null)[],
    now: number,
  ): void {
    if (epoch !== this.#epoch || !this.#tracking) return;
    const until = now + this.maxAgeMs;
    let entries = this.#views.get(viewVersion);
    if (!entries) {
      entries = new Map();
      this.#views.set(viewVersion, entries);
    }
    let size = this.size;
    for (let i = 0; i < entityKeys.length; i++) {
      const value = values[i];
      if (!value) continue;
      const key = entityKeys[i] as string;
      if (!entries.has(key)) {
        if (size >= this.maxEntries) this.#evictOldest();
        else size++;
      }
      // A copy: the reply's buffer is a view of the socket's read chunk, which it would pin.
      entries.set(key, { value: Buffer.from(value), until });
    }
  }

  /** Drops these entities now (a write in this process), and refuses fills already in flight. */
  forget(viewVersion: string, entityKeys: Iterable<string>): void {
    this.#epoch++;
    const entries = this.#views.get(viewVersion);
    if (!entries) return;
    for (const key of entityKeys) entries.delete(key);
  }

  #evictOldest(): void {
    // Maps iterate in insertion order: the first entry of the fullest view is among the oldest.
    let fullest: Map<string, unknown> | undefined;
    for (const entries of this.#views.values())
      if (!fullest || entries.size > fullest.size) fullest = entries;
    const oldest = fullest?.keys().next();
    if (fullest && oldest && !oldest.done) fullest.delete(oldest.value);
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#untrack();
    this.#conn.disconnect();
  }

  #track(): Promise<void> {
    this.#setup ??= this.#turnOnTracking().finally(() => {
      this.#setup = undefined;
    });
    return this.#setup;
  }

  async #turnOnTracking(): Promise<void> {
    if (this.#tracking || this.#closed) return;
    try {
      const id = await this.#conn.client('ID');
      await this.#conn.call(
        'CLIENT',
        'TRACKING',
        'ON',
        'REDIRECT',
        String(id),
        'BCAST',
        'PREFIX',
        this.prefix,
      );
      await this.#conn.subscribe('__redis__:invalidate');
    } catch {
      return; // the next 'ready' tries again; until then every read goes to Redis
    }
    if (this.#closed) return;
    this.#epoch++;
    this.#tracking = true;
  }

  #untrack(): void {
    this.#tracking = false;
    this.#epoch++;
    this.#views.clear();
  }

  #invalidated(keys: unknown): void {
    this.#epoch++;
    // A null payload means everything (FLUSHDB, FLUSHALL).
    if (!Array.isArray(keys)) {
      this.#views.clear();
      return;
    }
    // Online keys are <prefix><view version>:<entity key>; view versions hold no colon.
    for (const raw of keys) {
      const key = raw.toString();
      const colon = key.indexOf(':', this.prefix.length);
      if (!key.startsWith(this.prefix) || colon < 0) continue;
      const entries = this.#views.get(key.slice(this.prefix.length, colon));
      entries?.delete(key.slice(colon + 1));
    }
  }
}
