import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import {
  Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from '@ballast/contracts/grpc/health/v1/health_pb.js';
import { status } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { createClient, type RpcError } from './client.js';
import { EchoService } from './testing/echo.js';

const echoMain = fileURLToPath(new URL('../dist/testing/echo-main.js', import.meta.url));

let child: ChildProcessWithoutNullStreams | undefined;

async function startEcho(
  env: Record<string, string> = {},
): Promise<{ address: string; stderr: () => string }> {
  child = spawn(process.execPath, [echoMain], { env: { ...process.env, ...env } });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const [line] = (await once(child.stdout, 'data')) as [Buffer];
  const { listening } = JSON.parse(line.toString()) as { listening: number };
  return { address: `127.0.0.1:${listening}`, stderr: () => stderr };
}

afterEach(() => {
  if (child && child.exitCode === null) child.kill('SIGKILL');
  child = undefined;
});

describe('graceful shutdown of a server process', () => {
  it('lets an in-flight call finish on SIGTERM, refuses new ones, then exits 0', async () => {
    const { address, stderr } = await startEcho();
    const echo = createClient(EchoService, { address, retry: false });
    const health = createClient(Health, { address });
    try {
      const watch = health.watch({ service: 'ballast.testing.v1.EchoService' })[Symbol.asyncIterator]();
      expect((await watch.next()).value?.status).toBe(ServingStatus.SERVING);

      const inFlight = echo.echo({ message: 'finish me', behaviour: { delayMs: 1_000 } });
      await new Promise((resolve) => setTimeout(resolve, 200));
      const exited = once(child!, 'exit');
      child!.kill('SIGTERM');

      // Watchers hear NOT_SERVING before the server goes away, then their stream ends.
      expect((await watch.next()).value?.status).toBe(ServingStatus.NOT_SERVING);
      expect((await watch.next()).done).toBe(true);

      expect((await inFlight).message).toBe('finish me');
      const [code] = (await exited) as [number];
      expect(code).toBe(0);
      expect(stderr()).toContain('shutdown hooks ran');

      const after = (await echo
        .echo({ message: 'too late' }, { timeoutMs: 2_000 })
        .catch((e: unknown) => e)) as RpcError;
      expect(after.code).toBe(status.UNAVAILABLE);
    } finally {
      echo.close();
      health.close();
    }
  });

  it('cancels calls still running when the grace period ends', async () => {
    const { address, stderr } = await startEcho({ ECHO_GRACE_MS: '300' });
    const echo = createClient(EchoService, { address, retry: false });
    try {
      const slow = echo.echo({ message: 'never', behaviour: { delayMs: 20_000 } }).catch((e: unknown) => e);
      await new Promise((resolve) => setTimeout(resolve, 200));
      const exited = once(child!, 'exit');
      child!.kill('SIGTERM');
      const err = (await slow) as RpcError;
      expect([status.CANCELLED, status.UNAVAILABLE]).toContain(err.code);
      const [code] = (await exited) as [number];
      expect(code).toBe(0);
      expect(stderr()).toContain('grace period over');
    } finally {
      echo.close();
    }
  });
});
