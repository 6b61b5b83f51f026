import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { envPrefix, isGrpcService, type ServiceName } from '@ballast/config';
import { HealthCheckResponse_ServingStatus as ServingStatus } from '@ballast/contracts/grpc/health/v1/health_pb.js';
import * as kit from '@ballast/grpc-kit/testing';

export const freePort = kit.freePort;
export const TEST_DATABASE_URL = kit.TEST_DATABASE_URL;
export const TEST_REDIS_URL = process.env.BALLAST_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

export type RunningProcess = kit.ServiceProcess;

/**
 * Starts a built service as its own process, as `ballast up` would, on free ports; returns
 * once it is spawned: wait for it with waitServing.
 */
export function startServiceProcess(
  service: ServiceName,
  env: Record<string, string>,
): Promise<RunningProcess> {
  return kit.startServiceProcess({
    package: `@ballast/${service}`,
    env: { BALLAST_REDIS_URL: TEST_REDIS_URL, BALLAST_LOG_LEVEL: 'info', ...env },
    ready: false,
  });
}

/** Polls until `check` holds; bounded in count, so a broken service fails the test rather than hanging it. */
export async function eventually<T>(
  check: () => Promise<T | undefined>,
  what: string,
  attempts = 150,
): Promise<T> {
  for (let i = 0; i < attempts; i++) {
    const value = await check().catch(() => undefined);
    if (value !== undefined) return value;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Polls grpc.health.v1 until `service` answers SERVING (the empty name is liveness), within `timeoutMs`. */
export async function waitServing(
  address: string,
  service: string,
  timeoutMs = kit.READY_TIMEOUT_MS,
): Promise<ServingStatus> {
  await kit.waitHealth({ address }, service, { timeoutMs });
  return ServingStatus.SERVING;
}

export function promtoolCheck(body: string): { status: number | null; output: string } {
  const result = spawnSync('promtool', ['check', 'metrics'], { input: body, encoding: 'utf8' });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

export function pythonHealthProbe(
  address: string,
  service: string,
): { status: number | null; output: string } {
  const script = join(dirname(new URL(import.meta.url).pathname), 'health_probe.py');
  const result = spawnSync('/usr/bin/python3', [script, address, service], {
    encoding: 'utf8',
    timeout: 30_000,
  });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

/** The six services as processes, in the order they need each other (the no-code quick start's suite). */
export const SUITE = ['ingest', 'registry', 'feature', 'monitor', 'inference', 'trainer'] as const;

/**
 * Starts the six services, each knowing where the earlier ones are; `env` gains every
 * service's ports and address, as the CLI (status) finds them.
 */
export async function startSuite(env: Record<string, string>): Promise<Record<string, RunningProcess>> {
  const running: Record<string, RunningProcess> = {};
  for (const service of SUITE) {
    const proc = await startServiceProcess(service, env);
    running[service] = proc;
    const prefix = envPrefix(service);
    env[`${prefix}_HTTP_PORT`] = String(proc.httpPort);
    if (isGrpcService(service)) {
      env[`${prefix}_GRPC_PORT`] = String(proc.grpcPort);
      env[`${prefix}_ADDR`] = proc.address;
    }
  }
  return running;
}

/** The built CLI as a child process in `cwd` with `env`: `cli` answers, `ok` must succeed (its stdout). */
export function cliRunner(cliPath: string, cwd: string, env: () => Record<string, string>) {
  const cli = (...args: string[]) => {
    const result = spawnSync(process.execPath, [cliPath, ...args], {
      encoding: 'utf8',
      timeout: 240_000,
      cwd,
      env: { ...process.env, ...env() },
    });
    return { code: result.status, out: result.stdout, err: result.stderr };
  };
  const ok = (...args: string[]) => {
    const r = cli(...args);
    if (r.code !== 0) throw new Error(`ballast ${args.join(' ')} exited ${r.code}:\n${r.out}\n${r.err}`);
    return r.out;
  };
  return { cli, ok };
}
