import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { envPrefix, isGrpcService, type ServiceName } from '@ballast/config';
import { FeatureService } from '@ballast/contracts/ballast/feature/v1/feature_pb.js';
import { InferenceService } from '@ballast/contracts/ballast/inference/v1/inference_pb.js';
import { IngestService } from '@ballast/contracts/ballast/ingest/v1/ingest_pb.js';
import { MonitorService } from '@ballast/contracts/ballast/monitor/v1/monitor_pb.js';
import { RegistryService } from '@ballast/contracts/ballast/registry/v1/registry_pb.js';
import {
  type Readiness,
  type ServiceProcess,
  type ServiceProcessOptions,
  startServiceProcess,
} from '@ballast/grpc-kit/testing';
import { SUITE } from './support.js';

// The whole suite as `replicas` processes of every service, as the pods of six Deployments:
// they share one Postgres database, one Redis (or cluster) and, for the registry, the Postgres
// blob store; each replica has a data directory (artifact cache, PGlite nothing) of its own.
// Callers and services reach a service's replicas round robin through BALLAST_<S>_ADDR.

/** What tells that a replica is ready: its service's health entry, or the trainer's /readyz. */
const READY: Record<ServiceName, Readiness> = {
  ingest: IngestService.typeName,
  feature: FeatureService.typeName,
  registry: RegistryService.typeName,
  inference: InferenceService.typeName,
  monitor: MonitorService.typeName,
  trainer: { http: '/readyz' },
};

export interface ReplicatedSuite {
  readonly replicas: Record<ServiceName, ServiceProcess[]>;
  /**
   * The environment a client (the CLI) is given: every ADDR as the comma-separated list the
   * SDK balances over, and the first replica's ports, where `ballast` looks for a running suite.
   */
  readonly clientEnv: Record<string, string>;
  /** Every replica's captured output, headed by its name and address (for a failure's message). */
  output(tailChars?: number): string;
  stop(): Promise<void>;
}

export interface ReplicatedSuiteOptions {
  replicas: number;
  redisUrl: string;
  databaseUrl: string;
  /** Over the common environment, for every replica of `service`. */
  env?: Partial<Record<ServiceName, Record<string, string>>>;
}

/**
 * Starts every service in the order they need each other (SUITE), each service's replicas
 * side by side (their migrations take an advisory lock), and resolves once all are ready.
 */
export async function startReplicatedSuite(options: ReplicatedSuiteOptions): Promise<ReplicatedSuite> {
  const replicas = Object.fromEntries(SUITE.map((s) => [s, [] as ServiceProcess[]])) as Record<
    ServiceName,
    ServiceProcess[]
  >;
  const dirs: string[] = [];
  // A service's own config validates ADDR as one grpc-js target: `ipv4:a,b` names several
  // (the kit balances round robin over them); the SDK takes the plain comma-separated list.
  const serviceAddrs: Record<string, string> = {};
  const clientEnv: Record<string, string> = { BALLAST_REDIS_URL: options.redisUrl };
  const all = () => Object.values(replicas).flat();
  const stop = async () => {
    await Promise.all(all().map((r) => r.stop().catch(() => null)));
    await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
  };
  const output = (tailChars = 6_000) =>
    all()
      .map((r) => `--- ${r.name} ${r.address} (alive: ${r.alive()}) ---\n${r.output().slice(-tailChars)}`)
      .join('\n');
  try {
    for (const service of SUITE) {
      const started = await Promise.all(
        Array.from({ length: options.replicas }, async () => {
          const dataDir = await mkdtemp(join(tmpdir(), `ballast-${service}-replica-`));
          dirs.push(dataDir);
          return startRetrying({
            package: `@ballast/${service}`,
            ready: READY[service],
            env: {
              BALLAST_DATA_DIR: dataDir,
              BALLAST_DATABASE_URL: options.databaseUrl,
              BALLAST_REDIS_URL: options.redisUrl,
              BALLAST_REGISTRY_BLOB_STORE: 'postgres',
              BALLAST_TF_BACKEND: 'wasm',
              ...serviceAddrs,
              ...options.env?.[service],
            },
          });
        }),
      );
      replicas[service].push(...started);
      const prefix = envPrefix(service);
      const [first] = started;
      if (!first) throw new Error('a suite needs at least one replica of each service');
      clientEnv[`${prefix}_HTTP_PORT`] = String(first.httpPort);
      if (isGrpcService(service)) {
        const addresses = started.map((r) => r.address);
        serviceAddrs[`${prefix}_ADDR`] =
          addresses.length > 1 ? `ipv4:${addresses.join(',')}` : (addresses[0] as string);
        clientEnv[`${prefix}_ADDR`] = addresses.join(',');
        clientEnv[`${prefix}_GRPC_PORT`] = String(first.grpcPort);
      }
    }
  } catch (err) {
    const seen = output();
    await stop();
    throw new Error(`${(err as Error).message}\n${seen}`);
  }
  return { replicas, clientEnv, output, stop };
}

// On this shared machine other work rebuilds the libs while tests run (nx restores a lib's
// dist from its cache by removing and rewriting it), and a process started in that moment
// dies at once with ERR_MODULE_NOT_FOUND. Only that is tried again, a few times, 2 s apart:
// any other failure to start is the test's failure.
const TRIES = 5;
const missingModule = (text: string) => text.includes('ERR_MODULE_NOT_FOUND');

async function startRetrying(options: ServiceProcessOptions): Promise<ServiceProcess> {
  for (let tries = 1; ; tries++) {
    try {
      return await startServiceProcess(options);
    } catch (err) {
      if (tries >= TRIES || !missingModule(String(err))) throw err;
      await sleep(2_000);
    }
  }
}

/** Restarts a killed replica on its ports and environment (see startRetrying); the starts it took. */
export async function restartReplica(replica: ServiceProcess): Promise<number> {
  for (let tries = 1; ; tries++) {
    const before = replica.output().length;
    try {
      await replica.restart();
      return tries;
    } catch (err) {
      if (tries >= TRIES || !missingModule(replica.output().slice(before))) throw err;
      await sleep(2_000);
    }
  }
}
