import { EventEmitter, on } from 'node:events';
import type { SignatureSchema } from '@ballast/contracts/ballast/registry/v1/registry_pb.js';
import {
  type Deployment,
  DeploymentAction,
  RegistryService,
  type Signature,
} from '@ballast/contracts/ballast/registry/v1/registry_pb.js';
import { BallastError, type GrpcServer, type ServiceImpl, serve, startGrpcServer } from '@ballast/grpc-kit';
import { type ArtifactFile, artifactManifest } from '@ballast/ml/artifact';
import type { MessageInitShape } from '@bufbuild/protobuf';

/**
 * A tiny registry for inference's tests, over the registry's real proto and a real grpc-js
 * server: in-memory models, versions, artifacts and aliases, and a WatchDeployments stream
 * with the registry's semantics (snapshot first, then changes; resume after a sequence).
 * Unlike the real registry it stores any bytes, so tests can deploy corrupt artifacts.
 */
export class TestRegistry {
  readonly artifacts = new Map<string, ArtifactFile[]>();
  readonly versions = new Map<
    string,
    { digest: string; signature?: MessageInitShape<typeof SignatureSchema> }
  >();
  readonly tags = new Map<string, Record<string, string>>();
  readonly aliases = new Map<string, number>();
  readonly history: Deployment[] = [];
  readonly #changes = new EventEmitter();
  #sequence = 0n;
  server: GrpcServer | undefined;

  get address(): string {
    return `127.0.0.1:${this.server?.port}`;
  }

  addVersion(
    model: string,
    version: number,
    files: ArtifactFile[],
    signature?: MessageInitShape<typeof SignatureSchema>,
  ): string {
    const { digest } = artifactManifest(files);
    this.artifacts.set(digest, files);
    this.versions.set(`${model}/${version}`, { digest, ...(signature ? { signature } : {}) });
    return digest;
  }

  setAlias(model: string, alias: string, version: number): void {
    const from = this.aliases.get(`${model}/${alias}`) ?? 0;
    if (version === 0) this.aliases.delete(`${model}/${alias}`);
    else this.aliases.set(`${model}/${alias}`, version);
    this.#sequence++;
    const deployment = {
      sequence: this.#sequence,
      model,
      alias,
      fromVersion: from,
      toVersion: version,
      action: version === 0 ? DeploymentAction.DELETE_ALIAS : DeploymentAction.SET_ALIAS,
    } as Deployment;
    this.history.push(deployment);
    this.#changes.emit('change', deployment);
  }

  async start(): Promise<this> {
    const unimplemented = () => {
      throw new BallastError('unimplemented', 'not in the test registry');
    };
    const impl = {
      createModel: unimplemented,
      listModels: unimplemented,
      updatePromotionPolicy: unimplemented,
      uploadArtifact: unimplemented,
      createModelVersion: unimplemented,
      listModelVersions: unimplemented,
      compareVersions: unimplemented,
      setAlias: unimplemented,
      deleteAlias: unimplemented,
      getVersionByAlias: unimplemented,
      promote: unimplemented,
      rollback: unimplemented,
      listDeployments: unimplemented,
      getModel: ({ name }: { name: string }) => ({ model: { name, tags: this.tags.get(name) ?? {} } }),
      getModelVersion: ({ model, version }: { model: string; version: number }) => {
        const found = this.versions.get(`${model}/${version}`);
        if (!found) throw new BallastError('not_found', `${model} v${version}`);
        return {
          version: { model, version, artifactDigest: found.digest, signature: found.signature as Signature },
        };
      },
      downloadArtifact: async function* (this: TestRegistry, { digest }: { digest: string }) {
        const files = this.artifacts.get(digest);
        if (!files) throw new BallastError('not_found', digest);
        const manifest = artifactManifest(files);
        const order = manifest.files.map((f) => f.path);
        yield {
          part: {
            case: 'manifest' as const,
            value: { digest, files: manifest.files.map((f) => ({ ...f, size: BigInt(f.size) })) },
          },
        };
        for (const path of order) {
          const data = files.find((f) => f.path === path)?.data ?? new Uint8Array();
          for (let offset = 0; offset < data.byteLength || offset === 0; offset += 65_536) {
            yield {
              part: { case: 'chunk' as const, value: { path, data: data.subarray(offset, offset + 65_536) } },
            };
            if (data.byteLength === 0) break;
          }
        }
      }.bind(this),
      watchDeployments: async function* (
        this: TestRegistry,
        { model, afterSequence }: { model: string; afterSequence: bigint },
        ctx: { signal: AbortSignal },
      ) {
        const events = on(this.#changes, 'change', { signal: ctx.signal });
        if (afterSequence === 0n) {
          const aliases = [...this.aliases]
            .map(([key, version]) => {
              const [m = '', alias = ''] = key.split('/');
              return { model: m, alias, version };
            })
            .filter((a) => !model || a.model === model);
          yield { event: { case: 'snapshot' as const, value: { aliases, sequence: this.#sequence } } };
        } else {
          for (const d of this.history) {
            if (d.sequence > afterSequence && (!model || d.model === model)) {
              yield { event: { case: 'deployment' as const, value: d } };
            }
          }
        }
        try {
          for await (const [d] of events as AsyncIterable<[Deployment]>) {
            if (!model || d.model === model) yield { event: { case: 'deployment' as const, value: d } };
          }
        } catch (error) {
          if ((error as Error).name !== 'AbortError') throw error;
        }
      }.bind(this),
    } as unknown as ServiceImpl<typeof RegistryService>;
    this.server = await startGrpcServer({
      services: [serve(RegistryService, impl)],
      host: '127.0.0.1',
      port: 0,
      log: { info() {}, warn() {}, error() {} },
      shutdownGraceMs: 200,
    });
    this.server.setReady(true);
    return this;
  }

  async close(): Promise<void> {
    this.#changes.setMaxListeners(0);
    await this.server?.shutdown();
  }
}
