import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pingRedis } from '@ballast/queue';

export const HOW_TO_GET_REDIS = `Ballast needs Redis (job queues, the online feature store) and found none.
  - point BALLAST_REDIS_URL at one, e.g. BALLAST_REDIS_URL=redis://127.0.0.1:6379
  - or install redis-server and run this again: Ballast starts it for you
      Debian/Ubuntu: sudo apt-get install redis-server
      macOS:         brew install redis
  - or run one in a container: docker run -d -p 6379:6379 redis:7`;

export interface RedisChoice {
  url: string;
  /** The redis-server this CLI started, when it had to; stop it last. */
  child?: ChildProcess;
}

function hasRedisServer(): boolean {
  return spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;
}

/**
 * Redis from BALLAST_REDIS_URL; else the default one if it answers; else a redis-server
 * started here, persistent under <dataDir>/redis. Throws with instructions when none can be had.
 */
export async function chooseRedis(options: {
  envUrl: string | undefined;
  dataDir: string;
  port?: number;
}): Promise<RedisChoice> {
  if (options.envUrl) {
    if (await pingRedis(options.envUrl, 2_000)) return { url: options.envUrl };
    throw new Error(`BALLAST_REDIS_URL=${options.envUrl} does not answer.\n${HOW_TO_GET_REDIS}`);
  }
  const port = options.port ?? 6379;
  const url = `redis://127.0.0.1:${port}`;
  if (await pingRedis(url, 1_000)) return { url };
  if (!hasRedisServer()) throw new Error(HOW_TO_GET_REDIS);

  const dir = resolve(options.dataDir, 'redis');
  mkdirSync(dir, { recursive: true });
  const child = spawn(
    'redis-server',
    ['--bind', '127.0.0.1', '--port', String(port), '--dir', dir, '--appendonly', 'yes', '--save', '60 1'],
    { stdio: 'ignore' },
  );
  for (let i = 0; i < 50; i++) {
    if (child.exitCode !== null) break;
    if (await pingRedis(url, 500)) return { url, child };
    await sleep(100);
  }
  child.kill('SIGKILL');
  throw new Error(`redis-server did not start on port ${port} (is the port taken?).\n${HOW_TO_GET_REDIS}`);
}
