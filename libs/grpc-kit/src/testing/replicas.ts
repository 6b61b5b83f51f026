import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ServiceProcess, type ServiceProcessOptions, startServiceProcess } from './process.js';

export interface Replicas {
  readonly replicas: ServiceProcess[];
  /** Stops every replica (SIGTERM) and removes their data directories. */
  stop(): Promise<void>;
}

/**
 * `count` processes of one built service, as the pods of one Deployment: they share what
 * `options.env` names (a database, a Redis) and nothing else, each with a BALLAST_DATA_DIR
 * of its own. Each is ready before the next one starts.
 */
export async function startReplicas(count: number, options: ServiceProcessOptions): Promise<Replicas> {
  const replicas: ServiceProcess[] = [];
  const dirs: string[] = [];
  const stop = async () => {
    for (const replica of replicas) await replica.stop().catch(() => undefined);
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < count; i++) {
      const dataDir = await mkdtemp(
        join(tmpdir(), `ballast-${options.package.replace(/^@[^/]+\//, '')}-replica-`),
      );
      dirs.push(dataDir);
      replicas.push(
        await startServiceProcess({ ...options, env: { ...options.env, BALLAST_DATA_DIR: dataDir } }),
      );
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { replicas, stop };
}
