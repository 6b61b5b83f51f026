import { type ChildProcess, spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { IngestService } from '@ballast/contracts/ballast/ingest/v1/ingest_pb.js';
import {
  Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from '@ballast/contracts/grpc/health/v1/health_pb.js';
import { createClient } from '@ballast/grpc-kit';
import { freePort } from '@ballast/grpc-kit/testing';

const require = createRequire(import.meta.url);
/** The built service (dist/main.js), wherever this module runs from (src for tests, dist for the bench). */
const MAIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'main.js');

/** The built ingest service as its own process, as `ballast up` starts it, once it is SERVING. */
export async function startIngestProcess(
  env: Record<string, string>,
): Promise<{ child: ChildProcess; address: string; stderr: () => string }> {
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', require.resolve('@ballast/telemetry/register'), MAIN], {
    env: {
      ...process.env,
      BALLAST_GRPC_HOST: '127.0.0.1',
      BALLAST_LOG_LEVEL: 'warn',
      BALLAST_INGEST_GRPC_PORT: String(port),
      BALLAST_INGEST_HTTP_PORT: String(await freePort()),
      ...env,
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (b: Buffer) => {
    stderr += b.toString();
  });
  const address = `127.0.0.1:${port}`;
  const health = createClient(Health, { address, deadlineMs: 1_000, retry: false });
  try {
    for (let i = 0; ; i++) {
      if (child.exitCode !== null) throw new Error(`ingest exited: ${stderr}`);
      const answer = await health.check({ service: IngestService.typeName }).catch(() => undefined);
      if (answer?.status === ServingStatus.SERVING) break;
      if (i > 900) throw new Error(`ingest never turned SERVING: ${stderr}`);
      await sleep(100);
    }
  } finally {
    health.close();
  }
  return { child, address, stderr: () => stderr };
}
