import type { RedisConnection } from '@ballast/queue';
import { type Cluster, Redis } from 'ioredis';
import { InvalidationTracker } from './invalidation-tracker.js';

/**
 * Process-local copies of online vectors, kept right by Redis's server-assisted client-side
 * caching: CLIENT TRACKING in broadcast mode for the online store's prefix on a connection of
 * its own (invalidation-tracker.ts), which Redis tells the name of every key written, deleted
 * or expired under the prefix (by any client, in any process), and the copy is dropped. On
 * Redis Cluster every master is tracked, each on its own connection: a key's invalidation
 * comes from the master that holds its slot.
 *
 * Why this is safe:
 *  - A read that was in flight when an invalidation arrived may carry the old value, so every
 *    fill names the epoch it read in, and the epoch moves on with each invalidation: fills from
 *    an older epoch are not kept.
 *  - While a tracking connection is down, invalidations are lost: the cache empties and takes
 *    no fills until every tracked server is tracking again (reads go to Redis meanwhile). A
 *    connection that died without a word (no FIN) is not noticed at once, so a copy is also
 *    read again from Redis after `maxAgeMs` (10 s by default): the bound on staleness when
 *    all else fails.
 *  - On a cluster, whenever the masters or the slot map change (a failover, a slot moved, a
 *    node added or gone; ioredis refreshes its map on MOVED replies, lost nodes and every few
 *    seconds), the cache empties and tracking follows the new masters before it serves again.
 *  - Writers in this process drop their keys themselves (`forget`) before they return, so a
 *    read that follows a write here never waits on the push. Another process's write is seen
 *    as soon as its invalidation arrives (one loopback or LAN hop).
 * Bounded: past `maxEntries` the oldest copy goes first.
 */
export class NearCache {
  // By view version, then entity key: lookups use the entity key as the request gave it, with
  // no Redis key string built (and hashed) per entity.
  readonly #views = new Map<string, Map<string, { value: Buffer; until: number }>>();
  // By server, `host:port`: one for a single server (or Sentinel's master), one per master of a cluster.
  readonly #trackers = new Map<string, InvalidationTracker>();
  #epoch = 0;
  #closed = false;
  #slotLayout = '';
  #forgetCluster: (() => void) | undefined;

  private constructor(
    readonly prefix: string,
    readonly maxEntries: number,
    readonly maxAgeMs: number,
  ) {}

  /**
   * A cache that starts empty and inactive, and turns on when its connections are up and
   * tracking (without holding up the caller: reads go to Redis until then). `prefix` is the
   * key prefix to track, colon included.
   */
  static open(redis: RedisConnection, prefix: string, maxEntries: number, maxAgeMs = 10_000): NearCache {
    const cache = new NearCache(prefix, maxEntries, maxAgeMs);
    if (redis.isCluster) cache.#followCluster(redis as Cluster);
    else {
      const conn = (redis as Redis).duplicate({
        autoResubscribe: false,
        lazyConnect: true,
        connectionName: cache.#connectionName,
      });
      cache.#trackers.set('server', cache.#tracker(conn));
    }
    return cache;
  }

  // Named so an operator (or a test) can find it in CLIENT LIST.
  get #connectionName(): string {
    return `ballast-near-cache:${this.prefix}`;
  }

  #tracker(conn: Redis): InvalidationTracker {
    return new InvalidationTracker(conn, this.prefix, {
      invalidated: (keys) => this.#invalidated(keys),
      on: () => {
        this.#epoch++;
      },
      off: () => this.#reset(),
    });
  }

  #followCluster(cluster: Cluster): void {
    const sync = () => this.#syncMasters(cluster);
    for (const event of ['ready', 'refresh', '+node', '-node']) cluster.on(event, sync);
    this.#forgetCluster = () => {
      for (const event of ['ready', 'refresh', '+node', '-node']) cluster.off(event, sync);
    };
    if (cluster.status === 'ready') sync();
  }

  /** Tracks exactly the cluster's masters now; empties the cache if they or the slot map changed. */
  #syncMasters(cluster: Cluster): void {
    if (this.#closed) return;
    const masters = new Map(
      cluster.nodes('master').map((node) => [`${node.options.host}:${node.options.port}`, node]),
    );
    let changed = false;
    for (const [key, tracker] of this.#trackers) {
      if (masters.has(key)) continue;
      this.#trackers.delete(key);
      tracker.close();
      changed = true;
    }
    for (const [key, node] of masters) {
      if (this.#trackers.has(key)) continue;
      const conn = new Redis({
        ...node.options,
        autoResubscribe: false,
        lazyConnect: true,
        readOnly: false,
        // The cluster's own node connections do not reconnect (ioredis drops them and asks
        // for the slot map again); a tracker does, or one dropped connection to a live
        // master would keep the cache off until the next topology change.
        retryStrategy: (times: number) => Math.min(100 * times, 2_000),
        connectionName: this.#connectionName,
      });
      this.#trackers.set(key, this.#tracker(conn));
      changed = true;
    }
    // Which master serves each slot, as ranges: a moved slot changes it.
    const layout = slotLayout(cluster);
    if (layout !== this.#slotLayout) {
      this.#slotLayout = layout;
      changed = true;
    }
    if (changed) this.#reset();
  }

  /** Resolves once tracking is on (tests and benchmarks wait for it; the service does not). */
  async tracking(timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.active) {
      if (Date.now() > deadline) throw new Error(`client tracking not on after ${timeoutMs} ms`);
      const setup = [...this.#trackers.values()].find((t) => t.settingUp)?.settingUp;
      await (setup ?? new Promise((resolve) => setTimeout(resolve, 20)));
    }
  }

  /** Whether copies are served and kept: every tracked server is tracking and the cache is open. */
  get active(): boolean {
    if (this.#closed || this.#trackers.size === 0) return false;
    for (const tracker of this.#trackers.values()) if (!tracker.tracking) return false;
    return true;
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
    if (epoch !== this.#epoch || !this.active) return;
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
    this.#forgetCluster?.();
    for (const tracker of this.#trackers.values()) tracker.close();
    this.#trackers.clear();
    this.#reset();
  }

  /** Empties the cache and refuses fills already in flight. */
  #reset(): void {
    this.#epoch++;
    this.#views.clear();
  }

  #invalidated(keys: Buffer[] | null): void {
    this.#epoch++;
    // A null payload means everything (FLUSHDB, FLUSHALL).
    if (keys === null) {
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

/** The slot map as `from-to=node` ranges of each slot's first (master) node. */
function slotLayout(cluster: Cluster): string {
  const ranges: string[] = [];
  let start = 0;
  for (let slot = 1; slot <= cluster.slots.length; slot++) {
    const owner = cluster.slots[start]?.[0];
    if (slot < cluster.slots.length && cluster.slots[slot]?.[0] === owner) continue;
    ranges.push(`${start}-${slot - 1}=${owner}`);
    start = slot;
  }
  return ranges.join(',');
}
