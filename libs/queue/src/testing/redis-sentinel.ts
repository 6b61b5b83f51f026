import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  freePorts,
  infoFields,
  killRedisServer,
  makeDir,
  type RedisProcess,
  redisCli,
  removeDir,
  startRedisServer,
  waitFor,
} from './redis-servers.js';

export interface LocalRedisSentinel {
  /** BALLAST_REDIS_URL for it: `redis+sentinel://<sentinel>/<masterName>`. */
  readonly url: string;
  readonly masterName: string;
  readonly masterPort: number;
  readonly replicaPort: number;
  readonly sentinelPort: number;
  /** The port of the server the sentinel names as master now. */
  currentMaster(): Promise<number>;
  /** SIGKILLs the server on `port`, as a crash would. */
  kill(port: number): Promise<void>;
  stop(): Promise<void>;
}

/**
 * One master, one replica and one sentinel (quorum 1) on loopback, from the redis-server
 * binary (`redis-server <conf> --sentinel` is what redis-sentinel runs). Resolves once the
 * replica is in sync and the sentinel knows both servers.
 */
export async function startRedisSentinel(masterName = 'ballast'): Promise<LocalRedisSentinel> {
  const dir = await makeDir('redis-sentinel');
  const [masterPort, replicaPort, sentinelPort] = (await freePorts(3)) as [number, number, number];
  const servers = new Map<number, RedisProcess>();
  const stop = async () => {
    await Promise.all([...servers.values()].map(killRedisServer));
    await removeDir(dir);
  };
  try {
    servers.set(masterPort, await startRedisServer(masterPort, dir, []));
    servers.set(
      replicaPort,
      await startRedisServer(replicaPort, dir, ['--replicaof', '127.0.0.1', String(masterPort)]),
    );
    await waitFor('the replica to sync', async () => {
      const info = infoFields(await redisCli(replicaPort, 'info', 'replication'));
      return info.get('master_link_status') === 'up';
    });
    // A sentinel rewrites its configuration file as it learns, so it gets one of its own.
    const conf = join(dir, 'sentinel.conf');
    await writeFile(
      conf,
      [
        `sentinel monitor ${masterName} 127.0.0.1 ${masterPort} 1`,
        `sentinel down-after-milliseconds ${masterName} 1000`,
        `sentinel failover-timeout ${masterName} 5000`,
        '',
      ].join('\n'),
    );
    servers.set(sentinelPort, await startRedisServer(sentinelPort, dir, [conf, '--sentinel']));
    await waitFor('the sentinel to see the replica', async () => {
      const replicas = await redisCli(sentinelPort, 'sentinel', 'replicas', masterName);
      return replicas.includes(String(replicaPort));
    });
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    url: `redis+sentinel://127.0.0.1:${sentinelPort}/${masterName}`,
    masterName,
    masterPort,
    replicaPort,
    sentinelPort,
    async currentMaster() {
      const reply = await redisCli(sentinelPort, 'sentinel', 'get-master-addr-by-name', masterName);
      return Number(reply.trim().split('\n')[1]);
    },
    async kill(port) {
      const server = servers.get(port);
      if (!server) throw new Error(`no server on port ${port}`);
      servers.delete(port);
      await killRedisServer(server);
    },
    stop,
  };
}
