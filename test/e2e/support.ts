import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { envPrefix, type ServiceName } from '@ballast/config';
import {
  Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from '@ballast/contracts/grpc/health/v1/health_pb.js';
import { createClient } from '@ballast/grpc-kit';
import { freePort } from '@ballast/grpc-kit/testing';

export { freePort };

const require = createRequire(import.meta.url);

export const TEST_DATABASE_URL =
  process.env.BALLAST_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const TEST_REDIS_URL = process.env.BALLAST_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

export function serviceMain(service: ServiceName): string {
  return join(dirname(require.resolve(`@ballast/${service}/package.json`)), 'dist', 'main.js');
}

export const telemetryPreload = () => require.resolve('@ballast/telemetry/register');

export interface RunningProcess {
  child: ChildProcess;
  grpcPort: number;
  httpPort: number;
  output: () => string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Starts a built service as its own process, as `ballast up` would, on free ports. */
export async function startServiceProcess(
  service: ServiceName,
  env: Record<string, string>,
): Promise<RunningProcess> {
  const grpcPort = await freePort();
  const httpPort = await freePort();
  const prefix = envPrefix(service);
  const child = spawn(process.execPath, ['--import', telemetryPreload(), serviceMain(service)], {
    env: {
      ...process.env,
      BALLAST_REDIS_URL: TEST_REDIS_URL,
      BALLAST_GRPC_HOST: '127.0.0.1',
      BALLAST_LOG_LEVEL: 'info',
      OTEL_SERVICE_NAME: `ballast-${service}`,
      [`${prefix}_GRPC_PORT`]: String(grpcPort),
      [`${prefix}_HTTP_PORT`]: String(httpPort),
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (b: Buffer) => {
    output += b.toString();
  });
  child.stderr?.on('data', (b: Buffer) => {
    output += b.toString();
  });
  return {
    child,
    grpcPort,
    httpPort,
    output: () => output,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      const exited = once(child, 'exit');
      child.kill(signal);
      const [code] = (await exited) as [number | null];
      return code;
    },
  };
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

/** Polls grpc.health.v1 until `service` answers SERVING (the empty name is liveness). */
export async function waitServing(address: string, service: string, attempts = 150) {
  const health = createClient(Health, { address, deadlineMs: 1_000, retry: false });
  try {
    return await eventually(
      async () => {
        const { status } = await health.check({ service });
        return status === ServingStatus.SERVING ? status : undefined;
      },
      `${service} SERVING at ${address}`,
      attempts,
    );
  } finally {
    health.close();
  }
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
