import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  infoFields,
  killRedisServer,
  makeDir,
  type RedisProcess,
  redisCli,
  removeDir,
  startRedisServerOnFreePort,
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
 * binary (`redis-server <conf> --sentinel` is what redis-sentinel runs), each on a free port.
 * Resolves once the replica is in sync and the sentinel could promote it.
 */
export async function startRedisSentinel(masterName = 'ballast'): Promise<LocalRedisSentinel> {
  const dir = await makeDir('redis-sentinel');
  const servers = new Map<number, RedisProcess>();
  const stop = async () => {
    await Promise.all([...servers.values()].map(killRedisServer));
    await removeDir(dir);
  };
  const started = (server: RedisProcess) => {
    servers.set(server.port, server);
    return server.port;
  };
  let masterPort: number;
  let replicaPort: number;
  let sentinelPort: number;
  try {
    masterPort = started(await startRedisServerOnFreePort(dir, () => []));
    replicaPort = started(
      await startRedisServerOnFreePort(dir, () => ['--replicaof', '127.0.0.1', String(masterPort)]),
    );
    await waitFor('the replica to sync', async () => {
      const info = infoFields(await redisCli(replicaPort, 'info', 'replication'));
      return info.get('master_link_status') === 'up';
    });
    // A sentinel rewrites its configuration file as it learns, so it gets one of its own.
    const sentinelConf = async (port: number) => {
      const conf = join(dir, `sentinel-${port}.conf`);
      await writeFile(
        conf,
        [
          `sentinel monitor ${masterName} 127.0.0.1 ${masterPort} 1`,
          `sentinel down-after-milliseconds ${masterName} 1000`,
          `sentinel failover-timeout ${masterName} 5000`,
          // Told rather than left to find it in the master's INFO, every 10 s.
          `sentinel known-replica ${masterName} 127.0.0.1 ${replicaPort}`,
          '',
        ].join('\n'),
      );
      return [conf, '--sentinel'];
    };
    sentinelPort = started(await startRedisServerOnFreePort(dir, sentinelConf));
    // Ready means able to fail over: the sentinel only promotes a replica it is connected to
    // and has read INFO from, with its link to the master up. Listed is not enough: a
    // failover started before that is aborted (-failover-abort-no-good-slave) and retried
    // only after 2 x failover-timeout.
    await waitFor('the sentinel to be able to promote the replica', async () => {
      const [master] = sentinelEntries(await redisCli(sentinelPort, 'sentinel', 'master', masterName));
      if (master?.get('flags') !== 'master') return false;
      const replicas = sentinelEntries(await redisCli(sentinelPort, 'sentinel', 'replicas', masterName));
      return replicas.some(
        (r) =>
          r.get('port') === String(replicaPort) &&
          r.get('flags') === 'slave' &&
          r.get('role-reported') === 'slave' &&
          r.get('master-link-status') === 'ok',
      );
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

/**
 * SENTINEL MASTER / REPLICAS as redis-cli prints them, one line per field name and value,
 * entries one after another (each starting with `name`): a map per entry.
 */
function sentinelEntries(text: string): Map<string, string>[] {
  // An empty line is an empty value (a runid not known yet), not a separator.
  const lines = text.replace(/\r?\n$/, '').split(/\r?\n/);
  const entries: Map<string, string>[] = [];
  for (let i = 0; i + 1 < lines.length; i += 2) {
    const [field, value] = [lines[i] as string, lines[i + 1] as string];
    if (field === 'name' || entries.length === 0) entries.push(new Map());
    entries.at(-1)?.set(field, value);
  }
  return entries;
}
