import { notFound, unavailable } from '@ballast/grpc-kit';
import type { ModelSignature } from '@ballast/ml';
import { fnv1a } from '@ballast/sampling';
import type { SpanContext } from '@opentelemetry/api';
import { type BatcherHooks, type BatchRun, DynamicBatcher, type InputLayout } from './batcher.js';
import { DenseChain } from './dense-chain.js';
import type { Executor } from './executor.js';
import type { DenseLayerData } from './executor-protocol.js';
import { type InferenceMetrics, type VersionSeries, versionSeries } from './metrics.js';
import type { ServingConfig } from './serving-config.js';

/** One model version loaded in the worker, warmed up, with its own batcher. */
export class LoadedVersion {
  /** Requests admitted and not yet answered; a retired version is disposed when it reaches 0. */
  inflight = 0;
  retired = false;
  readonly aliases = new Set<string>();
  /**
   * The span that last swapped this version in, until a request takes it: the first request the
   * version serves after a swap links to it (one check per request, nothing allocated after).
   */
  swapLink: SpanContext | undefined = undefined;

  constructor(
    readonly model: string,
    readonly version: number,
    readonly key: string,
    readonly digest: string,
    readonly signature: ModelSignature,
    readonly layout: InputLayout[],
    /** Column names per input, from model.json userDefinedMetadata.featureNames. */
    readonly featureNames: Map<string, string[]>,
    readonly batcher: DynamicBatcher,
    readonly loadMs: number,
    /** What runs it: `js` (inline on the event loop, dense-chain.ts) or the worker's TensorFlow.js backend. */
    readonly engine: string,
    /** The feature view (name and version) it was trained on, from its lineage: entity lookups read it. */
    readonly featureView?: { name: string; version: string } | undefined,
    /** Its metric series, taken once here so that a request hashes no labels (metrics.ts). */
    readonly series?: VersionSeries | undefined,
  ) {}
}

export interface LoadFailure {
  version: number;
  digest: string;
  error: string;
  time: Date;
}

export interface ModelEntry {
  readonly name: string;
  /** Loaded versions, serving or draining. */
  readonly versions: Map<number, LoadedVersion>;
  readonly aliases: Map<string, LoadedVersion>;
  readonly failures: LoadFailure[];
  readonly loading: Set<number>;
  config: ServingConfig;
}

/** A model that cannot be served: refused at load with the reason. */
export class IncompatibleModelError extends Error {
  override name = 'IncompatibleModelError';
}

export interface PoolLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

const MAX_FAILURES_KEPT = 20;

function product(dims: number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

/** Checks that a model can be batched and fed: every input [-1, ...fixed dims] of float32 or int32. */
export function inputLayout(signature: ModelSignature): InputLayout[] {
  if (signature.inputs.length === 0) throw new IncompatibleModelError('the model has no inputs');
  return signature.inputs.map((input) => {
    const shape = input.shape;
    if (shape === null || shape.length === 0 || shape[0] !== -1) {
      throw new IncompatibleModelError(
        `input "${input.name}" has shape ${JSON.stringify(shape)}: its first dimension must be the batch (-1)`,
      );
    }
    const rowShape = shape.slice(1);
    if (rowShape.some((d) => d < 1)) {
      throw new IncompatibleModelError(
        `input "${input.name}" has shape ${JSON.stringify(shape)}: only the batch dimension may vary`,
      );
    }
    const dtype = input.dtype ?? 'float32';
    if (dtype !== 'float32' && dtype !== 'int32') {
      throw new IncompatibleModelError(
        `input "${input.name}" has dtype ${dtype}: float32 and int32 are served`,
      );
    }
    return { name: input.name, dtype, rowShape, rowSize: product(rowShape) };
  });
}

/** Reads `featureNames: {input: [column, ...]}` from a layers model's user-defined metadata. */
export function featureNamesOf(metadata: unknown, layout: InputLayout[]): Map<string, string[]> {
  const names = new Map<string, string[]>();
  const declared = (metadata as { featureNames?: unknown } | null)?.featureNames;
  if (declared === null || typeof declared !== 'object') return names;
  for (const input of layout) {
    const columns = Object.hasOwn(declared, input.name)
      ? (declared as Record<string, unknown>)[input.name]
      : undefined;
    if (columns === undefined) continue;
    if (
      !Array.isArray(columns) ||
      !columns.every((c) => typeof c === 'string') ||
      columns.length !== input.rowSize
    ) {
      throw new IncompatibleModelError(
        `featureNames.${input.name} must list ${input.rowSize} column names (the input's row size)`,
      );
    }
    names.set(input.name, columns as string[]);
  }
  return names;
}

function sameSignature(expected: ModelSignature, actual: ModelSignature): string | undefined {
  for (const kind of ['inputs', 'outputs'] as const) {
    const want = expected[kind];
    if (want.length === 0) continue;
    const have = actual[kind];
    for (const spec of want) {
      const found = have.find((t) => t.name === spec.name);
      if (!found)
        return `the registry's signature names ${kind.slice(0, -1)} "${spec.name}", the model has ${have.map((t) => t.name).join(', ')}`;
      if (spec.shape && found.shape && JSON.stringify(spec.shape) !== JSON.stringify(found.shape)) {
        return `${kind.slice(0, -1)} "${spec.name}": the registry says shape ${JSON.stringify(spec.shape)}, the model has ${JSON.stringify(found.shape)}`;
      }
      if (spec.dtype && found.dtype && spec.dtype !== found.dtype) {
        return `${kind.slice(0, -1)} "${spec.name}": the registry says dtype ${spec.dtype}, the model has ${found.dtype}`;
      }
    }
  }
  return undefined;
}

export interface LoadSpec {
  model: string;
  version: number;
  digest: string;
  files: { path: string; data: Uint8Array }[];
  config: ServingConfig;
  /** The registry's record of the signature; the model must match it where it says anything. */
  expected?: ModelSignature | undefined;
  /** The feature view of its lineage, when it has one. */
  featureView?: { name: string; version: string } | undefined;
}

/**
 * Every loaded model version and the aliases that route to them. Swapping an alias is one
 * synchronous assignment, and admitting a request increments its version's in-flight count in
 * the same turn, so a request never sees a mixed state; a replaced version drains what it
 * admitted and is then disposed in the worker (its tensors freed).
 */
export class ModelPool {
  readonly #models = new Map<string, ModelEntry>();
  #counter = 0;

  constructor(
    private readonly executor: Executor,
    private readonly defaults: ServingConfig,
    private readonly log: PoolLogger,
    private readonly metrics?: InferenceMetrics,
  ) {
    metrics?.queueDepth.addCallback((result) => {
      for (const entry of this.#models.values()) {
        for (const v of entry.versions.values()) {
          result.observe(v.batcher.queuedRows, { model: v.model, version: String(v.version) });
        }
      }
    });
  }

  get backend(): string {
    return this.executor.backend?.backend ?? 'unknown';
  }

  /** Why this backend runs (the selection's reason), for health details. */
  get backendReason(): string {
    return this.executor.backend?.reason ?? '';
  }

  entries(): ModelEntry[] {
    return [...this.#models.values()];
  }

  entry(model: string): ModelEntry {
    let entry = this.#models.get(model);
    if (!entry) {
      entry = {
        name: model,
        versions: new Map(),
        aliases: new Map(),
        failures: [],
        loading: new Set(),
        config: this.defaults,
      };
      this.#models.set(model, entry);
    }
    return entry;
  }

  find(model: string): ModelEntry | undefined {
    return this.#models.get(model);
  }

  /** The model's serving config (the service's defaults for a model not seen yet). */
  configOf(model: string): ServingConfig {
    return this.#models.get(model)?.config ?? this.defaults;
  }

  /** Loads, checks and warms up a version (a batch at each preferred size) before it may take traffic. */
  async load(spec: LoadSpec): Promise<LoadedVersion> {
    const entry = this.entry(spec.model);
    const existing = entry.versions.get(spec.version);
    // Still in the map means not yet disposed: a retired version that is deployed again is reused.
    if (existing) return existing;
    const key = `${spec.model}@${spec.version}#${++this.#counter}`;
    const started = performance.now();
    entry.loading.add(spec.version);
    let loaded = false;
    try {
      const { signature, metadata, dense } = await this.executor.load(key, spec.files);
      loaded = true;
      const layout = inputLayout(signature);
      const featureNames = featureNamesOf(metadata, layout);
      const mismatch = spec.expected ? sameSignature(spec.expected, signature) : undefined;
      if (mismatch) throw new IncompatibleModelError(mismatch);
      const options = spec.config.batcher;
      const sizes = options.preferred_batch_size.length > 0 ? options.preferred_batch_size : [1];
      const warmStart = performance.now();
      await this.executor.warmup(key, [...new Set([...sizes, options.max_batch_size])]);
      let warmMs = (performance.now() - warmStart) / (sizes.length + 1);
      const inline = dense
        ? await this.#inlineChain(spec, key, dense, layout, signature, options.max_batch_size)
        : undefined;
      let run: BatchRun = (inputs) => this.executor.run(key, inputs);
      if (inline) {
        run = inline.run;
        warmMs = inline.fullBatchUs / 1000;
      }
      const labels = { model: spec.model, version: String(spec.version) };
      const series = this.metrics ? versionSeries(this.metrics, spec.model, spec.version) : undefined;
      const hooks: BatcherHooks = {
        onBatch: (rows, execUs) => {
          series?.batchSize.record(rows);
          series?.execution.record(execUs / 1e6);
        },
        onQueueWait: (us) => series?.queueWait.record(us / 1e6),
        onShed: (reason) => this.metrics?.shed.add(1, { ...labels, reason }),
      };
      const batcher = new DynamicBatcher(
        layout,
        inline ? { ...options, inline: true } : options,
        run,
        hooks,
        warmMs,
      );
      const loadMs = performance.now() - started;
      const version = new LoadedVersion(
        spec.model,
        spec.version,
        key,
        spec.digest,
        signature,
        layout,
        featureNames,
        batcher,
        loadMs,
        inline ? 'js' : this.backend,
        spec.featureView,
        series,
      );
      entry.versions.set(spec.version, version);
      this.metrics?.loadSeconds.record(loadMs / 1000, { model: spec.model, result: 'ok' });
      this.log.info(
        {
          model: spec.model,
          version: spec.version,
          digest: spec.digest,
          loadMs: Math.round(loadMs),
          engine: version.engine,
        },
        'model version loaded and warmed up',
      );
      return version;
    } catch (error) {
      if (loaded) await this.executor.unload(key).catch(() => {});
      this.metrics?.loadSeconds.record((performance.now() - started) / 1000, {
        model: spec.model,
        result: 'failed',
      });
      throw error;
    } finally {
      entry.loading.delete(spec.version);
    }
  }

  /**
   * Whether a dense-chain model runs inline: only when a full batch takes at most the model's
   * `inlineMaxUs` on this event loop, and only when its answers match the worker's
   * TensorFlow.js on the same pseudo-random batch (a relative 1e-4: float32 sums in another
   * order). Otherwise (and when it says why) the model stays on the worker.
   */
  async #inlineChain(
    spec: LoadSpec,
    key: string,
    dense: DenseLayerData[],
    layout: InputLayout[],
    signature: ModelSignature,
    maxBatch: number,
  ): Promise<{ run: BatchRun; fullBatchUs: number } | undefined> {
    const boundUs = spec.config.inlineMaxUs;
    const input = layout[0];
    if (boundUs <= 0 || layout.length !== 1 || !input || input.dtype !== 'float32') return undefined;
    const where = { model: spec.model, version: spec.version };
    const multiplyAdds = DenseChain.multiplyAddsPerRow(dense) * maxBatch;
    if (multiplyAdds > boundUs * MAX_MULTIPLY_ADDS_PER_US) {
      this.log.info(
        { ...where, multiplyAddsPerBatch: multiplyAdds, inlineMaxUs: boundUs },
        'a full batch of the dense chain is too much arithmetic for inference.inline_max_us; the model worker runs it',
      );
      return undefined;
    }
    let chain: DenseChain;
    try {
      chain = new DenseChain(dense);
    } catch (error) {
      this.log.warn(
        { ...where, error: String(error) },
        'dense chain not runnable inline; the model worker runs it',
      );
      return undefined;
    }
    if (chain.inputSize !== input.rowSize || signature.outputs.length !== 1) return undefined;
    const batch = pseudoRandomBatch(maxBatch * chain.inputSize);
    const fullBatchUs = fastestRunUs(chain, batch, maxBatch);
    if (fullBatchUs > boundUs) {
      this.log.info(
        { ...where, fullBatchUs: Math.round(fullBatchUs), inlineMaxUs: boundUs },
        'a full batch of the dense chain takes longer than inference.inline_max_us; the model worker runs it',
      );
      return undefined;
    }
    const expected = await this.executor.run(key, [
      { shape: [maxBatch, chain.inputSize], data: batch.slice() },
    ]);
    const reference = expected.outputs[0]?.data;
    const actual = chain.run(batch, maxBatch);
    const mismatch = reference ? firstMismatch(actual, reference) : 0;
    if (mismatch !== undefined) {
      this.log.warn(
        { ...where, index: mismatch, inline: actual[mismatch], worker: reference?.[mismatch] },
        'the inline dense chain does not match TensorFlow.js; the model worker runs it',
      );
      return undefined;
    }
    const output = { name: signature.outputs[0]?.name ?? 'output_0', dtype: 'float32' };
    const run: BatchRun = (inputs, rows) => {
      const started = performance.now();
      const data = chain.run(inputs[0]?.data as Float32Array, rows);
      const execUs = Math.round((performance.now() - started) * 1000);
      return Promise.resolve({ outputs: [{ ...output, shape: [rows, chain.outputSize], data }], execUs });
    };
    return { run, fullBatchUs };
  }

  /** A version refused at load: kept for health details, counted, logged. The current version keeps serving. */
  recordFailure(model: string, version: number, digest: string, error: unknown): void {
    const entry = this.entry(model);
    const message = error instanceof Error ? error.message : String(error);
    entry.failures.unshift({ version, digest, error: message, time: new Date() });
    entry.failures.length = Math.min(entry.failures.length, MAX_FAILURES_KEPT);
    this.metrics?.loadFailures.add(1, { model, version: String(version) });
    this.log.error(
      { model, version, digest, error: message },
      `model ${model} version ${version} refused at load; the current version keeps serving`,
    );
  }

  /**
   * Points `alias` at a loaded version, atomically; the version it replaces drains and is disposed.
   * `swapSpan`, the span of the change, is what the version's next request links to.
   */
  setAlias(model: string, alias: string, version: LoadedVersion, swapSpan?: SpanContext): void {
    const entry = this.entry(model);
    const previous = entry.aliases.get(alias);
    if (previous === version) return;
    if (swapSpan) version.swapLink = swapSpan;
    entry.aliases.set(alias, version);
    version.aliases.add(alias);
    version.retired = false;
    if (previous) {
      previous.aliases.delete(alias);
      this.#retireIfUnused(entry, previous);
    }
    this.log.info(
      { model, alias, version: version.version, from: previous?.version ?? null },
      `${model}: ${alias} -> version ${version.version}`,
    );
  }

  deleteAlias(model: string, alias: string): void {
    const entry = this.#models.get(model);
    const previous = entry?.aliases.get(alias);
    if (!entry || !previous) return;
    entry.aliases.delete(alias);
    previous.aliases.delete(alias);
    this.#retireIfUnused(entry, previous);
  }

  setConfig(model: string, config: ServingConfig): void {
    this.entry(model).config = config;
  }

  #retireIfUnused(entry: ModelEntry, version: LoadedVersion): void {
    if (version.aliases.size > 0) return;
    version.retired = true;
    if (version.inflight === 0) this.#dispose(entry, version);
  }

  #dispose(entry: ModelEntry, version: LoadedVersion): void {
    if (entry.versions.get(version.version) === version) entry.versions.delete(version.version);
    this.executor.unload(version.key).catch((error: unknown) => {
      this.log.warn(
        { model: version.model, version: version.version, error: String(error) },
        'unload failed',
      );
    });
  }

  /**
   * Chooses the version that answers: an exact version (it must be loaded), or the alias
   * (default `production`), with the canary policy applied to `production`. The version's
   * in-flight count is taken here, in the same turn; call release() when answered.
   */
  acquire(
    model: string,
    target: { alias?: string | undefined; version?: number | undefined; stickyKey?: string | undefined },
  ): {
    version: LoadedVersion;
    alias: string;
  } {
    const entry = this.#models.get(model);
    if (!entry || (entry.versions.size === 0 && entry.loading.size === 0 && entry.failures.length === 0)) {
      throw notFound(`model "${model}" is not served here (no alias of it is deployed)`);
    }
    let chosen: LoadedVersion | undefined;
    let alias = '';
    if (target.version) {
      chosen = entry.versions.get(target.version);
      if (!chosen || chosen.retired) {
        const loaded = [...entry.versions.values()].filter((v) => !v.retired).map((v) => v.version);
        throw notFound(
          `model "${model}" version ${target.version} is not loaded (loaded: ${loaded.join(', ') || 'none'})`,
        );
      }
    } else {
      alias = target.alias || 'production';
      chosen = entry.aliases.get(alias);
      if (!chosen) {
        if (entry.loading.size > 0) throw unavailable(`model "${model}" is still loading`);
        throw notFound(`model "${model}" has no "${alias}" version loaded`);
      }
      const candidate = entry.aliases.get('candidate');
      if (alias === 'production' && candidate && entry.config.canaryPercent > 0) {
        if (canaryBucket(target.stickyKey) < entry.config.canaryPercent) {
          chosen = candidate;
          alias = 'candidate';
        }
      }
    }
    chosen.inflight++;
    return { version: chosen, alias };
  }

  /** Takes the shadow version (`candidate` while shadowing is on), or undefined. */
  acquireShadow(model: string, serving: LoadedVersion): LoadedVersion | undefined {
    const entry = this.#models.get(model);
    const candidate = entry?.aliases.get('candidate');
    if (!entry?.config.shadow || !candidate || candidate === serving) return undefined;
    candidate.inflight++;
    return candidate;
  }

  release(version: LoadedVersion): void {
    version.inflight--;
    if (version.retired && version.inflight === 0) {
      const entry = this.#models.get(version.model);
      if (entry) this.#dispose(entry, version);
    }
  }
}

/** Values in [-2, 2) from a fixed linear congruential sequence: the same check at every load. */
function pseudoRandomBatch(size: number): Float32Array {
  const values = new Float32Array(size);
  let state = 12345;
  for (let i = 0; i < size; i++) {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    values[i] = (state / 2 ** 32) * 4 - 2;
  }
  return values;
}

/**
 * Multiply-adds a microsecond past which a chain is not even timed: about ten times what the
 * inline loop does here (a batch of 64 through 32 -> 64 -> 1, 135k multiply-adds, takes ~150 us).
 * Timing runs whole batches on the event loop at load, so a large chain (32 -> 1024 -> 1024 -> 1:
 * 69M multiply-adds a batch of 64, ~70 ms) timed 8 times stalled serving for half a second at
 * every load or hot swap.
 */
const MAX_MULTIPLY_ADDS_PER_US = 10_000;

/**
 * A full batch's own time inline, us: the fastest of 7 runs, after 20 ms (or 200 runs) of
 * warm-up, since V8 compiles the loops to machine code only once they have run for a while:
 * timed cold, a batch measured several times its steady cost. The fastest, not the median: other
 * processes on the cores, or a profiler, only add to a run's time (under --cpu-prof the median
 * put the bench's small model over the bound and onto the worker), and the bound is about the
 * model.
 */
function fastestRunUs(chain: DenseChain, batch: Float32Array, rows: number): number {
  const warmUntil = performance.now() + 20;
  for (let i = 0; i < 200 && performance.now() < warmUntil; i++) chain.run(batch, rows);
  let fastest = Number.POSITIVE_INFINITY;
  for (let i = 0; i < 7; i++) {
    const started = performance.now();
    chain.run(batch, rows);
    fastest = Math.min(fastest, (performance.now() - started) * 1000);
  }
  return fastest;
}

/** The first index where the two differ by more than 1e-4 relative (absolute below 1), or undefined. */
function firstMismatch(actual: ArrayLike<number>, expected: ArrayLike<number>): number | undefined {
  if (actual.length !== expected.length) return 0;
  for (let i = 0; i < actual.length; i++) {
    const e = expected[i] as number;
    if (!(Math.abs((actual[i] as number) - e) <= 1e-4 * Math.max(1, Math.abs(e)))) return i;
  }
  return undefined;
}

/** 0-100: random per request, or fixed per entity key (sticky: an entity always gets the same answer source). */
export function canaryBucket(stickyKey: string | undefined): number {
  if (!stickyKey) return Math.random() * 100;
  // FNV-1a: stable across processes and restarts.
  return (fnv1a(stickyKey) % 10_000) / 100;
}
