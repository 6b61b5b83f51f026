import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { IngestService } from '@ballast/contracts/ballast/ingest/v1/ingest_pb.js';
import { Health, HealthCheckResponse_ServingStatus } from '@ballast/contracts/grpc/health/v1/health_pb.js';
import { createClient, type ServiceClient } from '@ballast/grpc-kit';
import { freePort } from '@ballast/grpc-kit/testing';
import { openDatabase } from '@ballast/storage';
import { TEST_DATABASE_URL, TEST_REDIS_URL } from './test-feature.js';

/**
 * The real ingest service as its own process (its built dist/main.js, as `ballast up` starts
 * it), on free ports, a Postgres schema of its own (dropped on stop) and the test Redis.
 */
const require = createRequire(import.meta.url);
const INGEST_MAIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'ingest', 'dist', 'main.js');

export interface IngestProcess {
  address: string;
  client: ServiceClient<typeof IngestService>;
  stop(): Promise<void>;
}

export async function startIngest(): Promise<IngestProcess> {
  if (!existsSync(INGEST_MAIN)) throw new Error(`${INGEST_MAIN} is missing: run npm run build first`);
  const grpcPort = await freePort();
  const schema = `t_ingest_${randomBytes(4).toString('hex')}`;
  const child: ChildProcess = spawn(
    process.execPath,
    ['--import', require.resolve('@ballast/telemetry/register'), INGEST_MAIN],
    {
      env: {
        ...process.env,
        BALLAST_REDIS_URL: TEST_REDIS_URL,
        BALLAST_DATABASE_URL: TEST_DATABASE_URL,
        BALLAST_INGEST_DB_SCHEMA: schema,
        BALLAST_GRPC_HOST: '127.0.0.1',
        BALLAST_INGEST_GRPC_PORT: String(grpcPort),
        BALLAST_INGEST_HTTP_PORT: String(await freePort()),
        BALLAST_LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let output = '';
  child.stderr?.on('data', (b: Buffer) => {
    output += b.toString();
  });
  const address = `127.0.0.1:${grpcPort}`;
  const health = createClient(Health, { address, deadlineMs: 1_000 });
  const stop = async () => {
    health.close();
    if (child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await exited;
    }
    const admin = await openDatabase({ url: TEST_DATABASE_URL, schema: 'public' });
    await admin.exec(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).finally(() => admin.close());
  };
  for (let i = 0; ; i++) {
    const answer = await health.check({ service: 'ballast.ingest.v1.IngestService' }).catch(() => undefined);
    if (answer?.status === HealthCheckResponse_ServingStatus.SERVING) break;
    if (i >= 300 || child.exitCode !== null) {
      await stop();
      throw new Error(`ingest did not turn SERVING:\n${output}`);
    }
    await sleep(100);
  }
  return { address, client: createClient(IngestService, { address, deadlineMs: 60_000 }), stop };
}
