import { setTimeout as sleep } from 'node:timers/promises';
import type { RegistryService, Signature } from '@ballast/contracts/ballast/registry/v1/registry_pb.js';
import type { ServiceClient } from '@ballast/grpc-kit';
import type { ModelSignature } from '@ballast/ml';
import { spanContextOf } from '@ballast/telemetry';
import { status } from '@grpc/grpc-js';
import { type Link, type SpanContext, SpanStatusCode, trace } from '@opentelemetry/api';
import type { DataType } from '@tensorflow/tfjs';
import type { ArtifactCache } from './artifact-cache.js';
import type { ModelPool, PoolLogger } from './model-pool.js';
import { type ServingConfig, servingConfig } from './serving-config.js';

const tracer = trace.getTracer('@ballast/inference');

/** The aliases inference serves: `production` takes traffic, `candidate` gets canary or shadow traffic. */
export const SERVED_ALIASES = ['production', 'candidate'] as const;

export interface FollowerOptions {
  /** Only these models; empty: every model the registry has. */
  models: string[];
  defaults: ServingConfig;
  /** Back-off between reconnects (ms), doubling up to 10× this. */
  retryMs?: number;
}

function toSignature(signature: Signature | undefined): ModelSignature | undefined {
  if (!signature) return undefined;
  const spec = (t: Signature['inputs'][number]) => ({
    name: t.name,
    dtype: (t.dtype || null) as DataType | null,
    shape: t.shape.length > 0 ? t.shape.map(Number) : null,
  });
  return { inputs: signature.inputs.map(spec), outputs: signature.outputs.map(spec) };
}

/**
 * Follows the registry's WatchDeployments: the snapshot first, then each alias change, in
 * order per model. A new version is downloaded (cached by digest), loaded and warmed up
 * before its alias moves to it; one that cannot load is recorded and the alias stays where
 * it was. The stream resumes after the last sequence seen when it breaks.
 */
export class DeploymentFollower {
  connected = false;
  /** The first snapshot has been applied and its loads have settled. */
  synced = false;
  #sequence = 0n;
  readonly #chains = new Map<string, Promise<void>>();
  readonly #stop = new AbortController();
  #loop: Promise<void> | undefined;

  constructor(
    private readonly registry: ServiceClient<typeof RegistryService>,
    private readonly pool: ModelPool,
    private readonly cache: ArtifactCache,
    private readonly log: PoolLogger,
    private readonly options: FollowerOptions,
  ) {}

  start(): void {
    this.#loop ??= this.#run();
  }

  async stop(): Promise<void> {
    this.#stop.abort();
    await this.#loop;
    await Promise.all(this.#chains.values());
  }

  /** Resolves when every alias change received so far has been applied (or refused). */
  async settled(): Promise<void> {
    let before: Promise<void>[];
    do {
      before = [...this.#chains.values()];
      await Promise.all(before);
    } while ([...this.#chains.values()].some((p, i) => p !== before[i]));
  }

  #serves(model: string, alias: string): boolean {
    return (
      (SERVED_ALIASES as readonly string[]).includes(alias) &&
      (this.options.models.length === 0 || this.options.models.includes(model))
    );
  }

  async #run(): Promise<void> {
    const baseMs = this.options.retryMs ?? 500;
    let backoff = baseMs;
    while (!this.#stop.signal.aborted) {
      try {
        const stream = this.registry.watchDeployments(
          {
            model: this.options.models.length === 1 ? (this.options.models[0] ?? '') : '',
            afterSequence: this.#sequence,
          },
          { timeoutMs: Number.POSITIVE_INFINITY, signal: this.#stop.signal },
        );
        for await (const message of stream) {
          if (!this.connected)
            this.log.info({ afterSequence: String(this.#sequence) }, 'following registry deployments');
          this.connected = true;
          backoff = baseMs;
          if (message.event.case === 'snapshot') {
            const snapshot = message.event.value;
            this.#sequence = snapshot.sequence;
            for (const { model, alias, version, traceparent } of snapshot.aliases) {
              if (this.#serves(model, alias)) this.#enqueue(model, alias, version, traceparent);
            }
            void this.settled().then(() => {
              this.synced = true;
            });
          } else if (message.event.case === 'deployment') {
            const d = message.event.value;
            this.#sequence = d.sequence;
            if (this.#serves(d.model, d.alias))
              this.#enqueue(d.model, d.alias, d.toVersion, d.traceparent, d.sequence);
          }
        }
      } catch (error) {
        if (this.#stop.signal.aborted) break;
        if (this.connected || !this.synced) {
          this.log.warn(
            { error: (error as Error).message, retryMs: backoff },
            'registry watch broke; reconnecting',
          );
        }
      }
      this.connected = false;
      // With no registry at start, there is nothing to load: serve what is here (nothing) meanwhile.
      this.synced ||= this.#sequence === 0n;
      await sleep(backoff, undefined, { signal: this.#stop.signal }).catch(() => {});
      backoff = Math.min(backoff * 2, baseMs * 10);
    }
  }

  #enqueue(model: string, alias: string, version: number, traceparent: string, sequence?: bigint): void {
    const previous = this.#chains.get(model) ?? Promise.resolve();
    const next = previous.then(() => this.#swap(model, alias, version, traceparent, sequence));
    this.#chains.set(model, next);
  }

  /**
   * One alias change applied, as a span of its own trace (`inference.swap`): it links to the
   * registry call that made the change (the deployment's traceparent), its registry calls and
   * the load are its children, and the first request the version then serves links back to it.
   */
  #swap(
    model: string,
    alias: string,
    version: number,
    traceparent: string,
    sequence: bigint | undefined,
  ): Promise<void> {
    const cause = spanContextOf(traceparent);
    const links: Link[] = cause
      ? [{ context: cause, attributes: { 'ballast.link': 'deployment', 'ballast.model': model } }]
      : [];
    return tracer.startActiveSpan(
      'inference.swap',
      {
        root: true,
        links,
        attributes: {
          'inference.model': model,
          'inference.alias': alias,
          'inference.version': version,
          ...(sequence === undefined ? {} : { 'inference.deployment_sequence': String(sequence) }),
        },
      },
      async (span) => {
        try {
          const failure = await this.#apply(model, alias, version, span.spanContext());
          if (failure !== undefined)
            span.setStatus({
              code: SpanStatusCode.ERROR,
              message: failure instanceof Error ? failure.message : String(failure),
            });
        } finally {
          span.end();
        }
      },
    );
  }

  /** Applies the change; answers the error when the version was refused (recorded in the pool). */
  async #apply(
    model: string,
    alias: string,
    version: number,
    swapSpan: SpanContext,
    attempt = 1,
  ): Promise<unknown> {
    if (version === 0) {
      this.pool.deleteAlias(model, alias);
      return undefined;
    }
    let digest = '';
    try {
      const [{ version: record }, { model: modelRecord }] = await Promise.all([
        this.registry.getModelVersion({ model, version }),
        this.registry.getModel({ name: model }),
      ]);
      if (!record) throw new Error(`the registry returned no version record for ${model} v${version}`);
      digest = record.artifactDigest;
      const config = servingConfig(modelRecord?.tags ?? {}, this.options.defaults);
      this.pool.setConfig(model, config);
      const existing = this.pool.find(model)?.versions.get(version);
      const loaded =
        existing ??
        (await this.pool.load({
          model,
          version,
          digest,
          files: await this.cache.get(digest, () =>
            this.registry.downloadArtifact({ digest, chunkBytes: 0 }, { timeoutMs: 120_000 }),
          ),
          config,
          expected: toSignature(record.signature),
          featureView: record.lineage?.featureView?.name ? record.lineage.featureView : undefined,
        }));
      this.pool.setAlias(model, alias, loaded, swapSpan);
      return undefined;
    } catch (error) {
      if (this.#stop.signal.aborted) return undefined;
      // The registry being briefly away is not the artifact's fault: try again before giving up.
      const code = (error as { code?: unknown }).code;
      if ((code === status.UNAVAILABLE || code === status.DEADLINE_EXCEEDED) && attempt < 5) {
        const delayMs = (this.options.retryMs ?? 500) * 2 ** attempt;
        this.log.warn(
          { model, version, attempt, delayMs, error: (error as Error).message },
          'registry unavailable; retrying',
        );
        await sleep(delayMs, undefined, { signal: this.#stop.signal }).catch(() => {});
        if (this.#stop.signal.aborted) return undefined;
        return this.#apply(model, alias, version, swapSpan, attempt + 1);
      }
      this.pool.recordFailure(model, version, digest, error);
      return error;
    }
  }
}
