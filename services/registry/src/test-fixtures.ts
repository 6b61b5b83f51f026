import { createHash } from 'node:crypto';
import {
  type CreateModelVersionRequest,
  CreateModelVersionRequestSchema,
  type RegistryService,
  Task,
  type UploadArtifactRequestSchema,
} from '@ballast/contracts/ballast/registry/v1/registry_pb.js';
import type { CallOptions, ServiceClient } from '@ballast/grpc-kit';
import { clone, create, type MessageInitShape } from '@bufbuild/protobuf';

/** Builders for registry requests in tests: valid by default, overridable per field. */

type Client = ServiceClient<typeof RegistryService>;
type UploadPart = MessageInitShape<typeof UploadArtifactRequestSchema>;

export interface File {
  path: string;
  data: Uint8Array;
}

export const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');

/** A minimal layers-format model.json naming its weight files, and those files. */
export function syntheticArtifact(seed = 'a', weightFiles = ['weights.bin']): File[] {
  const modelJson = {
    format: 'layers-model',
    generatedBy: 'ballast registry tests',
    modelTopology: { class_name: 'Sequential', config: { name: `m-${seed}`, layers: [] } },
    weightsManifest: [{ paths: weightFiles, weights: [] }],
  };
  return [
    { path: 'model.json', data: new TextEncoder().encode(JSON.stringify(modelJson)) },
    ...weightFiles.map((path, i) => ({ path, data: new Uint8Array(2048 + i).fill(seed.charCodeAt(0) + i) })),
  ];
}

export function manifestOf(files: File[]) {
  return {
    files: files.map((f) => ({ path: f.path, size: BigInt(f.data.byteLength), sha256: sha256(f.data) })),
  };
}

/** The upload stream: manifest, then each file's bytes in `chunkBytes` pieces. */
export async function* uploadParts(
  files: File[],
  options: { chunkBytes?: number; manifest?: UploadPart['part'] } = {},
): AsyncGenerator<UploadPart> {
  const chunkBytes = options.chunkBytes ?? 64 * 1024;
  yield { part: options.manifest ?? { case: 'manifest', value: manifestOf(files) } };
  for (const file of files) {
    for (let offset = 0; offset < file.data.byteLength; offset += chunkBytes) {
      yield {
        part: {
          case: 'chunk',
          value: { path: file.path, data: file.data.subarray(offset, offset + chunkBytes) },
        },
      };
    }
  }
}

export async function upload(client: Client, files: File[]): Promise<string> {
  const result = await client.uploadArtifact(uploadParts(files));
  return result.manifest?.digest ?? '';
}

/** Reassembles a DownloadArtifact stream into files, checking each against the manifest. */
export async function download(client: Client, digest: string, chunkBytes = 0): Promise<File[]> {
  const files = new Map<string, Buffer[]>();
  let manifest: { path: string; sha256: string }[] = [];
  for await (const message of client.downloadArtifact({ digest, chunkBytes })) {
    if (message.part.case === 'manifest') manifest = message.part.value.files;
    else if (message.part.case === 'chunk') {
      const { path, data } = message.part.value;
      files.set(path, [...(files.get(path) ?? []), Buffer.from(data)]);
    }
  }
  return manifest.map(({ path, sha256: expected }) => {
    const data = new Uint8Array(Buffer.concat(files.get(path) ?? []));
    if (sha256(data) !== expected) throw new Error(`downloaded ${path} does not match its manifest sha256`);
    return { path, data };
  });
}

export interface VersionFigures {
  mae?: number;
  p99Ms?: number;
  cost?: number;
  segments?: Record<string, number>;
  epochs?: string;
  dataset?: string;
}

export function versionRequest(
  model: string,
  artifactDigest: string,
  figures: VersionFigures = {},
): CreateModelVersionRequest {
  const { mae = 10, p99Ms = 5, cost = 2, segments = {}, epochs = '20', dataset = 'ds-v1' } = figures;
  return create(CreateModelVersionRequestSchema, {
    model,
    artifactDigest,
    lineage: {
      dataset: { name: 'sales', version: dataset },
      featureView: { name: 'demand', version: 'fv-v1' },
      config: { hyperparameters: { epochs, learning_rate: '0.01' }, seed: 42n },
      environment: {
        nodeVersion: process.version,
        tfjsVersion: '4.22.0',
        backend: 'wasm',
        platform: `${process.platform}-${process.arch}`,
        codeCommit: 'abc123',
        lockfileHash: 'lock1',
      },
      trainingJobId: 'job-1',
    },
    metrics: [
      { name: 'mae', evalSet: 'holdout', value: mae },
      ...Object.entries(segments).map(([segment, value]) => ({
        name: 'mae',
        evalSet: 'holdout',
        segment,
        value,
      })),
    ],
    servingProfile: {
      backend: 'wasm',
      latency: [
        { batchSize: 1, p50Ms: p99Ms / 2, p99Ms },
        { batchSize: 32, p50Ms: p99Ms, p99Ms: p99Ms * 2 },
      ],
      costPerMillion: cost,
      costCurrency: 'USD',
    },
    signature: {
      inputs: [{ name: 'features', dtype: 'float32', shape: [-1n, 4n] }],
      outputs: [{ name: 'units', dtype: 'float32', shape: [-1n, 1n] }],
    },
  });
}

/** A copy of the request with one thing changed, for bad-input tests. */
export function changed(
  request: CreateModelVersionRequest,
  change: (copy: CreateModelVersionRequest) => void,
): CreateModelVersionRequest {
  const copy = clone(CreateModelVersionRequestSchema, request);
  change(copy);
  return copy;
}

export async function createModel(client: Client, name: string, options?: CallOptions) {
  const { model } = await client.createModel(
    {
      name,
      task: Task.REGRESSION,
      ownerTeam: 'forecasting',
      description: 'units sold per warehouse and day',
    },
    options,
  );
  return model;
}

/** Registers a version with its own synthetic artifact; returns its number. */
export async function addVersion(client: Client, model: string, figures: VersionFigures = {}, seed = 'v') {
  const digest = await upload(client, syntheticArtifact(seed));
  const { version } = await client.createModelVersion(versionRequest(model, digest, figures));
  return version?.version ?? 0;
}

/** The rejection of a call, for asserting its status, field and rule. */
export async function rejection(
  call: Promise<unknown>,
): Promise<{ code: number; details: string; field?: string }> {
  try {
    await call;
  } catch (err) {
    return err as { code: number; details: string; field?: string };
  }
  throw new Error('expected the call to fail');
}
