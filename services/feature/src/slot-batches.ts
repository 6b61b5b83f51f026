import type { RedisConnection } from '@ballast/queue';
import calculateSlot from 'cluster-key-slot';
import type { ChainableCommander, Cluster } from 'ioredis';

// Redis Cluster runs a multi-key command only when every key is in one hash slot, and ioredis
// sends a pipeline to one node only. The online store's keys are spread over every slot, so a
// read of many entities is cut into one MGET per slot, and those MGETs into one pipeline per
// node (the slot map ioredis holds now). Replies go back to the positions the keys came from.

export interface SlotGroup {
  slot: number;
  /** Positions in the caller's key list. */
  at: number[];
  keys: string[];
}

/** The keys by hash slot, each key with its position. */
export function groupBySlot(keys: readonly string[]): SlotGroup[] {
  const bySlot = new Map<number, SlotGroup>();
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i] as string;
    const slot = calculateSlot(key);
    let group = bySlot.get(slot);
    if (!group) {
      group = { slot, at: [], keys: [] };
      bySlot.set(slot, group);
    }
    group.at.push(i);
    group.keys.push(key);
  }
  return [...bySlot.values()];
}

/**
 * Slot groups by the node that serves them in ioredis's slot map (the master and replicas
 * listed for the slot: what ioredis checks a pipeline against). Slots it does not know yet
 * go one to a batch, so ioredis routes (and, on a MOVED reply, redirects) each itself.
 */
function batchByNode(cluster: Cluster, groups: SlotGroup[]): SlotGroup[][] {
  const batches = new Map<string, SlotGroup[]>();
  const alone: SlotGroup[][] = [];
  for (const group of groups) {
    const nodes = cluster.slots[group.slot];
    if (!nodes || nodes.length === 0) {
      alone.push([group]);
      continue;
    }
    const owner = nodes.join(';');
    const batch = batches.get(owner);
    if (batch) batch.push(group);
    else batches.set(owner, [group]);
  }
  return [...batches.values(), ...alone];
}

/**
 * Runs `command` once per slot group, as one pipeline per node, and returns each group's
 * reply. A pipeline the cluster refuses as a whole (the slot map moved under it) and a
 * command that failed (MOVED, a node lost mid-reply) are sent again on their own, which
 * ioredis routes and redirects itself; the commands used here may safely run twice.
 */
async function perSlot<T>(
  cluster: Cluster,
  groups: SlotGroup[],
  command: (target: Cluster | ChainableCommander, group: SlotGroup) => Promise<unknown> | ChainableCommander,
): Promise<Map<SlotGroup, T>> {
  const replies = new Map<SlotGroup, T>();
  const alone = async (group: SlotGroup) => {
    replies.set(group, (await command(cluster, group)) as T);
  };
  await Promise.all(
    batchByNode(cluster, groups).map(async (batch) => {
      if (batch.length === 1) return alone(batch[0] as SlotGroup);
      const pipeline = cluster.pipeline();
      // Queued on the pipeline (what the command returns there is the pipeline itself).
      for (const group of batch) void command(pipeline, group);
      let results: [Error | null, unknown][] | null;
      try {
        results = await pipeline.exec();
      } catch {
        results = null;
      }
      await Promise.all(
        batch.map((group, i) => {
          const [err, reply] = results?.[i] ?? [new Error('no reply')];
          if (err) return alone(group);
          replies.set(group, reply as T);
          return undefined;
        }),
      );
    }),
  );
  return replies;
}

/** MGET of `keys` as buffers, in request order, on one server or across a cluster's slots. */
export async function mgetInOrder(
  redis: RedisConnection,
  keys: readonly string[],
): Promise<(Buffer | null)[]> {
  if (!redis.isCluster) return redis.mgetBuffer(keys as string[]);
  const groups = groupBySlot(keys);
  const replies = await perSlot<(Buffer | null)[]>(redis as Cluster, groups, (target, group) =>
    target.mgetBuffer(group.keys),
  );
  const out: (Buffer | null)[] = new Array(keys.length).fill(null);
  for (const group of groups) {
    const values = replies.get(group) ?? [];
    for (let j = 0; j < group.at.length; j++) out[group.at[j] as number] = values[j] ?? null;
  }
  return out;
}

/**
 * Runs `write(target, key, i)` for every key (one single-key command each), pipelined per
 * node on a cluster and as one pipeline on one server; returns the replies in key order.
 */
export async function writeEach(
  redis: RedisConnection,
  keys: readonly string[],
  write: (
    target: Cluster | ChainableCommander,
    key: string,
    i: number,
  ) => Promise<unknown> | ChainableCommander,
): Promise<unknown[]> {
  if (!redis.isCluster) {
    const pipeline = redis.pipeline();
    for (let i = 0; i < keys.length; i++) void write(pipeline, keys[i] as string, i);
    const results = (await pipeline.exec()) ?? [];
    return results.map(([err, reply]) => {
      if (err) throw err;
      return reply;
    });
  }
  // One group per key (a key is its own slot group), batched per node like the reads.
  const groups: SlotGroup[] = keys.map((key, i) => ({ slot: calculateSlot(key), at: [i], keys: [key] }));
  const replies = await perSlot<unknown>(redis as Cluster, groups, (target, group) =>
    write(target, group.keys[0] as string, group.at[0] as number),
  );
  return groups.map((group) => replies.get(group));
}
