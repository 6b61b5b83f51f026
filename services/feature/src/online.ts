import type { RedisConnection } from '@ballast/queue';
import type { NearCache } from './near-cache.js';
import { mgetInOrder, writeEach } from './slot-batches.js';
import type { FeatureRows } from './transforms.js';

/**
 * The online store: each entity's latest vector per view version, one Redis string per
 * entity (`<prefix>:<view version>:<entity key>`), packed as
 * [u8 format = 1][u8 n][n bytes dataset version][f64 event time][f64 x features], little-endian.
 * Reads are one MGET of every key asked for, less those a NearCache (near-cache.ts) holds;
 * on Redis Cluster, one MGET per hash slot, pipelined per node (slot-batches.ts).
 */
export interface OnlineVector {
  eventTime: number;
  datasetVersion: string;
  values: Float64Array;
}

export const DEFAULT_ONLINE_PREFIX = 'ballast:feature';

// Newer wins: a vector replaces the stored one only when its event time is not earlier, so
// a backfill of an old dataset version never turns the online store back in time.
const SET_IF_NOT_OLDER = `
local old = redis.call('GET', KEYS[1])
if old then
  local t = struct.unpack('<d', old, 3 + string.byte(old, 2))
  if struct.unpack('<d', ARGV[1], 3 + string.byte(ARGV[1], 2)) < t then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1])
return 1`;
/** The first byte of every stored vector: its layout, above. */
export const ONLINE_VECTOR_FORMAT = 1;
/** Entities per writePacked call. */
export const WRITE_CHUNK = 1_000;

export function packVector(datasetVersion: string, eventTime: number, values: Float64Array): Buffer {
  const version = Buffer.from(datasetVersion, 'utf8');
  if (version.length > 255) throw new Error('dataset version too long');
  const head = 2 + version.length;
  const out = Buffer.alloc(head + 8 * (values.length + 1));
  out[0] = ONLINE_VECTOR_FORMAT;
  out[1] = version.length;
  version.copy(out, 2);
  out.writeDoubleLE(eventTime, head);
  for (let j = 0; j < values.length; j++) out.writeDoubleLE(values[j] as number, head + 8 * (j + 1));
  return out;
}

/**
 * Decodes a packed vector's values straight into `out` at `offset` (at most `width` of them,
 * the rest left as they are) and returns its event time and dataset version.
 */
export function unpackInto(
  buf: Buffer,
  out: { [index: number]: number },
  offset: number,
  width: number,
): { eventTime: number; datasetVersion: string } {
  if (buf[0] !== ONLINE_VECTOR_FORMAT) throw new Error(`unknown online vector format ${buf[0]}`);
  const head = 2 + (buf[1] as number);
  const n = Math.min(width, (buf.length - head - 8) / 8);
  for (let j = 0; j < n; j++) out[offset + j] = buf.readDoubleLE(head + 8 * (j + 1));
  return { datasetVersion: buf.toString('utf8', 2, head), eventTime: buf.readDoubleLE(head) };
}

export function unpackVector(buf: Buffer): OnlineVector {
  const head = 2 + (buf[1] as number);
  const values = new Float64Array((buf.length - head - 8) / 8);
  return { ...unpackInto(buf, values, 0, values.length), values };
}

export interface OnlineReadStats {
  /** Vectors served from the near cache. */
  cached: number;
  /** Vectors asked of Redis (found or not). */
  fetched: number;
}

export interface OnlineStoreOptions {
  /** Serve repeated reads from process memory, invalidated by Redis (near-cache.ts). */
  cache?: NearCache | undefined;
  /** Called once per read: how many vectors came from the cache and how many from Redis. */
  onRead?: ((stats: OnlineReadStats) => void) | undefined;
}

export class OnlineStore {
  readonly cache: NearCache | undefined;
  readonly #onRead: ((stats: OnlineReadStats) => void) | undefined;

  constructor(
    readonly redis: RedisConnection,
    readonly prefix: string = DEFAULT_ONLINE_PREFIX,
    options: OnlineStoreOptions = {},
  ) {
    this.cache = options.cache;
    this.#onRead = options.onRead;
  }

  key(viewVersion: string, entityKey: string): string {
    return `${this.prefix}:${viewVersion}:${entityKey}`;
  }

  /**
   * Writes each entity's last row (latest event time; of several at that time, the record
   * ingested last), unless the store already holds a later one for that entity; returns
   * the entities written.
   */
  async write(viewVersion: string, datasetVersion: string, rows: FeatureRows): Promise<number> {
    const width = rows.featureNames.length;
    const groups = rows.groupStarts.length - 1;
    let written = 0;
    for (let at = 0; at < groups; at += WRITE_CHUNK) {
      const entities: string[] = [];
      const packed: Buffer[] = [];
      for (let g = at; g < Math.min(groups, at + WRITE_CHUNK); g++) {
        const last = (rows.groupStarts[g + 1] as number) - 1;
        const values = rows.values.subarray(last * width, (last + 1) * width);
        entities.push(rows.entityKeys[last] as string);
        packed.push(packVector(datasetVersion, rows.times[last] as number, values));
      }
      written += await this.writePacked(viewVersion, entities, packed);
    }
    return written;
  }

  /**
   * Writes packed vectors (packVector) of these entities, each unless the store already
   * holds a later one; returns the entities written. Callers pass at most a few thousand.
   */
  async writePacked(
    viewVersion: string,
    entities: readonly string[],
    packed: readonly Buffer[],
  ): Promise<number> {
    const keys = entities.map((entity) => this.key(viewVersion, entity));
    // SET_IF_NOT_OLDER is safe to run twice, which a cluster retry may do (slot-batches.ts).
    const results = await writeEach(this.redis, keys, (target, key, i) =>
      target.eval(SET_IF_NOT_OLDER, 1, key, packed[i] as Buffer),
    );
    // Here rather than on Redis's push, so a read that follows this write in this process
    // cannot see the old copy.
    this.cache?.forget(viewVersion, entities);
    let written = 0;
    for (const result of results) written += result as number;
    return written;
  }

  /** The packed vectors of these entities (see unpackInto), null where an entity has none. */
  async readPacked(viewVersion: string, entityKeys: readonly string[]): Promise<(Buffer | null)[]> {
    const n = entityKeys.length;
    if (n === 0) return [];
    const cache = this.cache;
    if (!cache?.active) {
      this.#onRead?.({ cached: 0, fetched: n });
      return mgetInOrder(
        this.redis,
        entityKeys.map((k) => this.key(viewVersion, k)),
      );
    }
    const epoch = cache.epoch;
    const now = Date.now();
    const found: (Buffer | null)[] = new Array(n);
    const missing: string[] = [];
    const missingAt: number[] = [];
    for (let i = 0; i < n; i++) {
      const copy = cache.get(viewVersion, entityKeys[i] as string, now);
      if (copy) found[i] = copy;
      else {
        missing.push(entityKeys[i] as string);
        missingAt.push(i);
      }
    }
    this.#onRead?.({ cached: n - missing.length, fetched: missing.length });
    if (missing.length === 0) return found;
    const fetched = await mgetInOrder(
      this.redis,
      missing.map((k) => this.key(viewVersion, k)),
    );
    for (let j = 0; j < missing.length; j++) found[missingAt[j] as number] = fetched[j] ?? null;
    cache.fill(epoch, viewVersion, missing, fetched, now);
    return found;
  }

  /** The vectors of these entities, null where an entity has none. */
  async read(viewVersion: string, entityKeys: readonly string[]): Promise<(OnlineVector | null)[]> {
    const found = await this.readPacked(viewVersion, entityKeys);
    return found.map((buf) => (buf ? unpackVector(buf) : null));
  }
}
