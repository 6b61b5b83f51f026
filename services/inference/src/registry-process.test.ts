import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { RegistryService, Task } from '@ballast/contracts/ballast/registry/v1/registry_pb.js';
import {
  Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from '@ballast/contracts/grpc/health/v1/health_pb.js';
import { createClient, type ServiceClient } from '@ballast/grpc-kit';
import { freePort } from '@ballast/grpc-kit/testing';
import { modelSignature, type TfModel } from '@ballast/ml';
import { type ArtifactFile, artifactManifest } from '@ballast/ml/artifact';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  demandModelFiles,
  eventually,
  FEATURES,
  referenceModel,
  referencePredict,
  startTestInference,
  type TestInference,
} from './test-support.js';

// Inference against the real registry, started as its own process from its build (the way
// `ballast up` runs it), on a database of this file's own: only the proto is shared.
// A devDependency, so that nx builds the registry before these tests run.
const registryMain = join(
  dirname(createRequire(import.meta.url).resolve('@ballast/registry/package.json')),
  'dist',
  'main.js',
);
const database = `t_inference_${randomBytes(4).toString('hex')}`;
const psql = (sql: string) =>
  promisify(execFile)('psql', ['-h', '127.0.0.1', '-U', 'postgres', '-d', 'test', '-c', sql]);

let registryProcess: ChildProcess;
let registry: ServiceClient<typeof RegistryService>;
let dataDir: string;
let t: TestInference;
let output = '';

beforeAll(async () => {
  await psql(`CREATE DATABASE ${database}`);
  dataDir = await mkdtemp(join(tmpdir(), 'ballast-inference-registry-'));
  const port = await freePort();
  registryProcess = spawn(process.execPath, [registryMain], {
    env: {
      ...process.env,
      BALLAST_DATABASE_URL: `postgres://postgres@127.0.0.1:5432/${database}`,
      BALLAST_DATA_DIR: dataDir,
      BALLAST_GRPC_HOST: '127.0.0.1',
      BALLAST_REGISTRY_GRPC_PORT: String(port),
      BALLAST_REGISTRY_HTTP_PORT: String(await freePort()),
      BALLAST_REGISTRY_WATCH_POLL_MS: '200',
      BALLAST_LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  registryProcess.stdout?.on('data', (b: Buffer) => {
    output += b.toString();
  });
  registryProcess.stderr?.on('data', (b: Buffer) => {
    output += b.toString();
  });
  const address = `127.0.0.1:${port}`;
  const health = createClient(Health, { address, deadlineMs: 1_000, retry: false });
  await eventually(
    async () =>
      (await health.check({ service: RegistryService.typeName }).catch(() => undefined))?.status ===
      ServingStatus.SERVING,
    `registry SERVING (${output})`,
  );
  health.close();
  registry = createClient(RegistryService, { address, deadlineMs: 30_000 });
  t = await startTestInference({ registryAddress: address });
}, 120_000);

afterAll(async () => {
  await t?.close();
  registry?.close();
  if (registryProcess && registryProcess.exitCode === null) {
    const exited = once(registryProcess, 'exit');
    registryProcess.kill('SIGTERM');
    await exited;
  }
  await psql(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`).catch(() => {});
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

async function register(files: ArtifactFile[], model: TfModel): Promise<number> {
  const manifest = artifactManifest(files);
  async function* parts() {
    yield {
      part: {
        case: 'manifest' as const,
        value: {
          files: manifest.files.map((f) => ({ path: f.path, size: BigInt(f.size), sha256: f.sha256 })),
        },
      },
    };
    for (const file of files)
      yield { part: { case: 'chunk' as const, value: { path: file.path, data: file.data } } };
  }
  const uploaded = await registry.uploadArtifact(parts());
  const signature = modelSignature(model);
  const spec = (s: (typeof signature.inputs)[number]) => ({
    name: s.name,
    dtype: s.dtype ?? '',
    shape: (s.shape ?? []).map(BigInt),
  });
  const { version } = await registry.createModelVersion({
    model: 'demand',
    artifactDigest: uploaded.manifest?.digest ?? '',
    lineage: {
      dataset: { name: 'sales', version: 'sha256:aaaa' },
      featureView: { name: 'demand_features', version: 'sha256:bbbb' },
      config: { hyperparameters: { hidden: '8' }, seed: 1n },
      environment: { nodeVersion: process.version, tfjsVersion: '4.22.0', backend: 'wasm' },
    },
    metrics: [{ name: 'mae', evalSet: 'holdout', value: 1 }],
    servingProfile: {
      backend: 'wasm',
      latency: [{ batchSize: 1, p50Ms: 1, p99Ms: 2 }],
      costPerMillion: 1,
      costCurrency: 'USD',
    },
    signature: { inputs: signature.inputs.map(spec), outputs: signature.outputs.map(spec) },
  });
  return version?.version ?? 0;
}

describe('with the real registry process', () => {
  it('serves what is promoted, and hot-swaps on the next promotion', async () => {
    await registry.createModel({ name: 'demand', task: Task.REGRESSION, ownerTeam: 'forecasting' });
    const v1Files = await demandModelFiles(1);
    const v2Files = await demandModelFiles(2);
    const m1 = await referenceModel(v1Files);
    const m2 = await referenceModel(v2Files);
    expect(await register(v1Files, m1)).toBe(1);
    expect(await register(v2Files, m2)).toBe(2);
    const row = [11, 1, 20];
    const request = {
      model: 'demand',
      rows: [{ features: Object.fromEntries(FEATURES.map((f, i) => [f, row[i] ?? 0])) }],
    };

    await registry.promote({ model: 'demand', version: 1, reason: 'first' });
    await eventually(() => t.pool.find('demand')?.aliases.get('production')?.version === 1, 'v1 serving');
    const first = await t.client.predict(request);
    expect(first.version).toBe(1);
    expect(first.predictions[0]?.outputs.prediction?.values[0]).toBeCloseTo(
      referencePredict(m1, [row])[0] ?? 0,
      4,
    );

    await registry.promote({ model: 'demand', version: 2, reason: 'better', force: true });
    await eventually(() => t.pool.find('demand')?.aliases.get('production')?.version === 2, 'v2 serving');
    const second = await t.client.predict(request);
    expect(second.version).toBe(2);
    expect(second.predictions[0]?.outputs.prediction?.values[0]).toBeCloseTo(
      referencePredict(m2, [row])[0] ?? 0,
      4,
    );
  });
});
