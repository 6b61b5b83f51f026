import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { envPrefix, type ServiceName } from '@ballast/config';
import {
  Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from '@ballast/contracts/grpc/health/v1/health_pb.js';
import { createClient } from '@ballast/grpc-kit';
import { freePort } from '@ballast/grpc-kit/testing';

/** Built services started as their own processes, as `ballast up` starts them, on free ports. */

const require = createRequire(import.meta.url);

export interface ServiceProcess {
  service: ServiceName;
  child: ChildProcess;
  address: string;
  httpPort: number;
  /** The last few KB of its stdout and stderr, for an error message. */
  output: () => string;
  stop(): Promise<void>;
}

export async function startService(
  service: ServiceName,
  env: Record<string, string>,
): Promise<ServiceProcess> {
  const grpcPort = await freePort();
  const httpPort = await freePort();
  const prefix = envPrefix(service);
  // This package's own entry point sits one folder up from dist/bench.
  const main =
    service === 'trainer'
      ? fileURLToPath(new URL('../main.js', import.meta.url))
      : join(dirname(require.resolve(`@ballast/${service}/package.json`)), 'dist', 'main.js');
  const child = spawn(process.execPath, ['--import', require.resolve('@ballast/telemetry/register'), main], {
    env: {
      ...process.env,
      BALLAST_GRPC_HOST: '127.0.0.1',
      BALLAST_LOG_LEVEL: 'warn',
      OTEL_SERVICE_NAME: `ballast-${service}`,
      [`${prefix}_GRPC_PORT`]: String(grpcPort),
      [`${prefix}_HTTP_PORT`]: String(httpPort),
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const keep = (b: Buffer) => {
    output = (output + b.toString()).slice(-8_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return {
    service,
    child,
    address: `127.0.0.1:${grpcPort}`,
    httpPort,
    output: () => output,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await exited;
    },
  };
}

async function until(check: () => Promise<boolean>, what: string, proc: ServiceProcess, timeoutMs = 90_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.child.exitCode !== null)
      throw new Error(`${proc.service} exited (${proc.child.exitCode}) before ${what}:\n${proc.output()}`);
    if (await check().catch(() => false)) return;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}:\n${proc.output()}`);
}

/** Waits for grpc.health.v1 SERVING for `serviceName`. */
export async function waitServing(proc: ServiceProcess, serviceName: string): Promise<void> {
  const health = createClient(Health, { address: proc.address, deadlineMs: 1_000, retry: false });
  try {
    await until(
      async () => (await health.check({ service: serviceName })).status === ServingStatus.SERVING,
      `${serviceName} SERVING`,
      proc,
    );
  } finally {
    health.close();
  }
}

/** Waits for the HTTP readiness probe (the trainer serves no gRPC). */
export async function waitReady(proc: ServiceProcess): Promise<void> {
  await until(
    async () => (await fetch(`http://127.0.0.1:${proc.httpPort}/readyz`)).ok,
    `${proc.service} ready`,
    proc,
  );
}
