import {
  infoFields,
  killRedisServer,
  makeDir,
  type RedisProcess,
  redisCli,
  removeDir,
  startRedisServer,
  startRedisServerOnFreePort,
  waitFor,
} from './redis-servers.js';

export interface LocalRedisCluster {
  /** BALLAST_REDIS_URL for it: `redis+cluster://` and every node. */
  readonly url: string;
  readonly ports: readonly number[];
  /** The port of the master that serves `slot` now. */
  masterOf(slot: number): Promise<number>;
  /** SIGKILLs the node on `port`, as a crash would. */
  kill(port: number): Promise<void>;
  /** Starts a killed node again from its nodes.conf: it rejoins, as a replica if it was replaced. */
  restart(port: number): Promise<void>;
  /**
   * Resolves once every live node sees the cluster whole again (`cluster_state:ok`) with no
   * slot served by a node that is gone: after a kill, once a replica has taken over.
   */
  settled(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export interface RedisClusterOptions {
  masters?: number;
  replicasPerMaster?: number;
  /** cluster-node-timeout: how long a silent node has before it is failed over. */
  nodeTimeoutMs?: number;
}

/**
 * A real Redis Cluster on loopback for tests: `masters` x (1 + `replicasPerMaster`)
 * redis-server processes (default 3 + 3) with `--cluster-enabled yes`, joined by
 * `redis-cli --cluster create`, in a temporary directory, nothing kept on disk. Resolves once
 * every node reports `cluster_state:ok` and every replica is in sync with its master.
 */
export async function startRedisCluster(options: RedisClusterOptions = {}): Promise<LocalRedisCluster> {
  const { masters = 3, replicasPerMaster = 1, nodeTimeoutMs = 1_000 } = options;
  const dir = await makeDir('redis-cluster');
  const servers = new Map<number, RedisProcess>();
  const stop = async () => {
    await Promise.all([...servers.values()].map(killRedisServer));
    await removeDir(dir);
  };
  const nodeArgs = (port: number) => [
    '--cluster-enabled',
    'yes',
    '--cluster-config-file',
    `nodes-${port}.conf`,
    '--cluster-node-timeout',
    String(nodeTimeoutMs),
    // A replica takes over however long it was cut off: tests kill masters on purpose.
    '--cluster-replica-validity-factor',
    '0',
  ];
  let ports: number[] = [];
  try {
    // Each started on its own so that one which finds its port taken draws another. All are
    // waited for before a failure is thrown, so that stop() finds every one that did start.
    const starts = await Promise.allSettled(
      Array.from({ length: masters * (1 + replicasPerMaster) }, async () => {
        const server = await startRedisServerOnFreePort(dir, nodeArgs);
        servers.set(server.port, server);
      }),
    );
    for (const start of starts) if (start.status === 'rejected') throw start.reason;
    ports = [...servers.keys()];
    await redisCli(
      ports[0] as number,
      '--cluster',
      'create',
      ...ports.map((p) => `127.0.0.1:${p}`),
      '--cluster-replicas',
      String(replicasPerMaster),
      '--cluster-yes',
    );
  } catch (err) {
    await stop();
    throw err;
  }
  const live = () => [...servers.keys()];
  // Settled means every live node tells the same story: cluster_state ok, the same masters
  // serving the same slots, every one of them live and not failing, every replica's link up.
  // Checking each node's own view is what catches the moments after a kill (the dead master
  // still owns its slots until a replica takes over) and after a restart (the node comes back
  // believing it still owns them, until the others tell it otherwise).
  const settled = async (timeoutMs = 60_000) => {
    await waitFor(
      'the cluster to settle',
      async () => {
        const maps = new Set<string>();
        for (const port of live()) {
          if (infoFields(await redisCli(port, 'cluster', 'info')).get('cluster_state') !== 'ok') return false;
          const owners = clusterNodes(await redisCli(port, 'cluster', 'nodes')).filter(
            (n) => n.ranges.length > 0,
          );
          if (owners.length !== masters) return false;
          for (const owner of owners) {
            if (!servers.has(owner.port) || !owner.flags.includes('master')) return false;
            if (owner.flags.some((f) => f.startsWith('fail'))) return false;
          }
          maps.add(
            owners
              .map((o) => `${o.port}:${o.ranges.map(([from, to]) => `${from}-${to}`).join(',')}`)
              .sort()
              .join(' '),
          );
          const info = infoFields(await redisCli(port, 'info', 'replication'));
          if (info.get('role') === 'slave' && info.get('master_link_status') !== 'up') return false;
        }
        return maps.size === 1;
      },
      timeoutMs,
    );
  };
  try {
    await settled();
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    url: `redis+cluster://${ports.map((p) => `127.0.0.1:${p}`).join(',')}`,
    ports,
    async masterOf(slot) {
      const nodes = clusterNodes(await redisCli(live()[0] as number, 'cluster', 'nodes'));
      const owner = nodes.find(
        (n) => n.flags.includes('master') && n.ranges.some(([from, to]) => slot >= from && slot <= to),
      );
      if (!owner) throw new Error(`no master serves slot ${slot}`);
      return owner.port;
    },
    async kill(port) {
      const server = servers.get(port);
      if (!server) throw new Error(`no cluster node on port ${port}`);
      servers.delete(port);
      await killRedisServer(server);
    },
    async restart(port) {
      if (servers.has(port) || !ports.includes(port)) throw new Error(`node ${port} is running or unknown`);
      servers.set(port, await startRedisServer(port, dir, nodeArgs(port)));
    },
    settled,
    stop,
  };
}

interface ClusterNode {
  port: number;
  flags: string[];
  ranges: [number, number][];
}

/** CLUSTER NODES lines: `<id> <ip:port@bus> <flags> <master> <ping> <pong> <epoch> <link> <slot ranges...>`. */
function clusterNodes(text: string): ClusterNode[] {
  return text
    .split('\n')
    .filter((line) => line.trim().length > 0)
    .map((line) => {
      const [, address = '', flags = '', , , , , , ...slots] = line.trim().split(' ');
      const ranges = slots
        .filter((s) => /^\d+(-\d+)?$/.test(s))
        .map((s): [number, number] => {
          const [from, to = from] = s.split('-').map(Number) as [number, number?];
          return [from, to];
        });
      return { port: Number(address.split('@')[0]?.split(':').at(-1)), flags: flags.split(','), ranges };
    });
}
