import type { FeatureService } from '@ballast/contracts/ballast/feature/v1/feature_pb.js';
import type { IngestService } from '@ballast/contracts/ballast/ingest/v1/ingest_pb.js';
import {
  type ModelVersion,
  type RegistryService,
  Task,
} from '@ballast/contracts/ballast/registry/v1/registry_pb.js';
import { RpcError, type ServiceClient } from '@ballast/grpc-kit';
import {
  artifactManifest,
  type BackendSelection,
  modelSignature,
  saveModelFiles,
  trainTabularModel,
} from '@ballast/ml';
import type { ModelSpec, TrainingRunJob } from '@ballast/queue';
import { spanContextOf } from '@ballast/telemetry';
import { status } from '@grpc/grpc-js';
import { type Span, SpanStatusCode, trace } from '@opentelemetry/api';
import { UnrecoverableError } from 'bullmq';
import { productionOnHoldout } from './champion.js';
import { trainingEnvironment } from './environment.js';
import { evaluate } from './evaluate.js';
import { costPerMillion, measureLatency } from './profile.js';
import { specFromHyperparameters, specHyperparameters } from './spec.js';
import { readTrainingSet, split } from './training-set.js';

/**
 * One `training.run` job, start to finish: resolve what to train on, read the training set
 * from feature, train with the spec's seed, evaluate on the time-based holdout overall and
 * per segment, profile latency and cost, then register the version with its lineage, point
 * `candidate` at it and, when asked, ask registry to promote it (its gate decides).
 */

const tracer = trace.getTracer('@ballast/trainer');

/** The lineage hyper-parameter recording the eval spec's holdout share. */
export const HOLDOUT_FRACTION = 'holdout_fraction';
const DEFAULT_HOLDOUT_FRACTION = 0.2;

/** One child span per stage of the job (the job's own span comes from bullmq-otel). */
async function stage<T>(name: string, fn: (span: Span) => Promise<T>): Promise<T> {
  return tracer.startActiveSpan(`training.${name}`, async (span) => {
    try {
      return await fn(span);
    } catch (err) {
      span.recordException(err as Error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message });
      throw err;
    } finally {
      span.end();
    }
  });
}

export interface TrainerClients {
  registry: ServiceClient<typeof RegistryService>;
  feature: ServiceClient<typeof FeatureService>;
  ingest: ServiceClient<typeof IngestService>;
}

export interface TrainerSettings {
  backend: BackendSelection;
  /** Price of one core-hour for the cost estimate (in `currency`). */
  pricePerCoreHour: number;
  currency: string;
}

export interface Progress {
  stage: 'resolving' | 'reading' | 'training' | 'evaluating' | 'registering' | 'done';
  epoch?: number;
  epochs?: number;
  loss?: number;
  etaMs?: number;
}

export interface TrainingOutcome {
  model: string;
  version: number;
  artifactDigest: string;
  /** True when an earlier attempt of this job had already registered the version. */
  reused: boolean;
  promotion: 'promoted' | 'refused' | 'not requested';
  promotionDetail?: string;
  /** True for a `reproduces` job: `version` is the version re-run, and nothing was registered. */
  reproduction?: boolean;
  /** Rows trained and evaluated on, and rows left out for missing values. */
  rows: { train: number; holdout: number; dropped: number };
}

export interface TrainingJob {
  id: string;
  data: TrainingRunJob;
}

export async function runTraining(
  job: TrainingJob,
  clients: TrainerClients,
  settings: TrainerSettings,
  report: (progress: Progress) => Promise<void>,
  signal?: AbortSignal,
): Promise<TrainingOutcome> {
  const { registry } = clients;
  // A cancelled job stops at the next epoch or stage boundary and fails without retries;
  // nothing is registered after the request arrived.
  const stopIfCancelled = () => {
    if (signal?.aborted) throw new UnrecoverableError(`cancelled: ${String(signal.reason ?? 'on request')}`);
  };
  await report({ stage: 'resolving' });
  const model = await unrecoverableIf(registry.getModel({ name: job.data.model }), [status.NOT_FOUND]);
  const task = model.model?.task === Task.CLASSIFICATION ? 'classification' : 'regression';
  const recent = (await registry.listModelVersions({ model: job.data.model, pageSize: 50 })).versions;
  // A retried job whose earlier attempt registered its version before dying: the same
  // version, never a second one.
  const done = recent.find((v) => v.lineage?.trainingJobId === job.id);
  if (done) return outcome(job, done, true, 'not requested', { train: 0, holdout: 0, dropped: 0 });

  const previous = recent[0];
  const spec = job.data.spec ?? specOf(previous);
  // A retraining keeps the holdout share its model was judged with, like its spec.
  const holdoutFraction =
    job.data.eval?.holdoutFraction ??
    Number(previous?.lineage?.config?.hyperparameters[HOLDOUT_FRACTION] ?? DEFAULT_HOLDOUT_FRACTION);
  const viewName = job.data.featureView ?? previous?.lineage?.featureView?.name;
  if (!viewName)
    throw new UnrecoverableError(
      `job for ${job.data.model} names no feature view and the model has no version to take one from`,
    );
  const { view } = await unrecoverableIf(clients.feature.getFeatureView({ name: viewName }), [
    status.NOT_FOUND,
  ]);
  if (!view?.definition?.source)
    throw new UnrecoverableError(`feature view ${viewName} has no source dataset`);
  const datasetName = view.definition.source.dataset;
  const datasetVersion = job.data.datasetVersion ?? (await latestDatasetVersion(clients.ingest, datasetName));

  await report({ stage: 'reading' });
  const set = await stage('fetch', async (span) => {
    await linkToCommit(span, clients.ingest, datasetName, datasetVersion);
    const read = await unrecoverableIf(
      readTrainingSet(clients.feature, {
        view: viewName,
        viewVersion: view.version,
        datasetVersion,
        validationFraction: holdoutFraction,
      }),
      [status.NOT_FOUND, status.INVALID_ARGUMENT, status.FAILED_PRECONDITION],
    );
    span.setAttributes({ 'ballast.rows': read.rows, 'ballast.rows_dropped': read.droppedRows });
    return read;
  });
  const train = split(set, 'train');
  const holdout = split(set, 'holdout');

  const started = performance.now();
  let epochStart = Date.now();
  const trained = await stage('fit', () =>
    trainTabularModel({
      features: train.features,
      featureCount: train.width,
      labels: train.labels,
      task,
      hiddenUnits: spec.hiddenUnits,
      activation: spec.activation,
      dropout: spec.dropout,
      epochs: spec.epochs,
      batchSize: spec.batchSize,
      learningRate: spec.learningRate,
      seed: spec.seed,
      ...(spec.earlyStopping
        ? {
            validation: { features: holdout.features, labels: holdout.labels },
            earlyStopping: spec.earlyStopping,
          }
        : {}),
      onEpochEnd: async ({ epoch, loss }) => {
        stopIfCancelled();
        tracer
          .startSpan('training.epoch', {
            startTime: epochStart,
            attributes: { 'ballast.epoch': epoch + 1, 'ballast.loss': loss },
          })
          .end();
        epochStart = Date.now();
        const perEpoch = (performance.now() - started) / (epoch + 1);
        await report({
          stage: 'training',
          epoch: epoch + 1,
          epochs: spec.epochs,
          loss,
          etaMs: Math.round(perEpoch * (spec.epochs - epoch - 1)),
        });
      },
    }),
  );
  try {
    await report({ stage: 'evaluating' });
    const { metrics, files, latency, signature } = await stage('evaluate', async (span) => {
      const champion = await productionOnHoldout(
        registry,
        job.data.model,
        task,
        { name: viewName, version: view.version },
        holdout,
      );
      if (champion.skipped) span.setAttribute('ballast.production_comparison', champion.skipped);
      // The artifact names its input columns, so callers (inference's Predict rows, the
      // monitor's per-feature statistics) can speak in feature names, not positions.
      const [input] = modelSignature(trained.model).inputs;
      if (input) trained.model.setUserDefinedMetadata({ featureNames: { [input.name]: set.featureNames } });
      return {
        metrics: [...evaluate(trained.model, task, holdout), ...champion.metrics],
        files: await saveModelFiles(trained.model),
        latency: measureLatency(trained.model, train.width),
        signature: modelSignature(trained.model),
      };
    });

    stopIfCancelled();
    const manifest = artifactManifest(files);
    const rows = { train: train.rows, holdout: holdout.rows, dropped: set.droppedRows };
    // A reproduction answers one question, whether the lineage gives the same bytes; a new
    // version or a moved `candidate` would change what serves and what the gate compares.
    if (job.data.reproduces !== undefined) {
      await report({ stage: 'done' });
      return {
        model: job.data.model,
        version: job.data.reproduces,
        artifactDigest: manifest.digest,
        reused: false,
        promotion: 'not requested',
        reproduction: true,
        rows,
      };
    }
    await report({ stage: 'registering' });
    await stage('upload', () => registry.uploadArtifact(artifactParts(files, manifest)));
    const { version } = await stage('register', () =>
      registry.createModelVersion({
        model: job.data.model,
        artifactDigest: manifest.digest,
        description: `trained by job ${job.id} (${job.data.reason}) on ${train.rows} rows, evaluated on ${holdout.rows}; ${set.droppedRows} rows left out for missing values`,
        lineage: {
          dataset: { name: datasetName, version: datasetVersion },
          featureView: { name: viewName, version: view.version },
          config: {
            hyperparameters: { ...specHyperparameters(spec), [HOLDOUT_FRACTION]: String(holdoutFraction) },
            seed: BigInt(spec.seed),
          },
          environment: trainingEnvironment(settings.backend.tfjsVersion, settings.backend.backend),
          trainingJobId: job.id,
        },
        metrics,
        servingProfile: {
          backend: settings.backend.backend,
          latency,
          costPerMillion: costPerMillion(latency, settings.pricePerCoreHour),
          costCurrency: settings.currency,
        },
        signature: {
          inputs: signature.inputs.map(tensorSpec),
          outputs: signature.outputs.map(tensorSpec),
        },
      }),
    );
    if (!version) throw new Error('registry answered CreateModelVersion without a version');
    await registry.setAlias({
      model: job.data.model,
      alias: 'candidate',
      version: version.version,
      reason: `trained by job ${job.id}`,
    });
    if (!job.data.promote) return outcome(job, version, false, 'not requested', rows);
    try {
      await registry.promote({ model: job.data.model, version: version.version, reason: job.data.reason });
      return outcome(job, version, false, 'promoted', rows);
    } catch (err) {
      // The gate said no: the job did its work; production stays where it was.
      if (err instanceof RpcError && err.code === status.FAILED_PRECONDITION)
        return { ...outcome(job, version, false, 'refused', rows), promotionDetail: err.details };
      throw err;
    } finally {
      await report({ stage: 'done' });
    }
  } finally {
    trained.model.dispose();
  }
}

function specOf(previous: ModelVersion | undefined): ModelSpec {
  const spec = previous?.lineage?.config && specFromHyperparameters(previous.lineage.config.hyperparameters);
  if (!spec)
    throw new UnrecoverableError('the job has no spec and the model has no earlier version trained from one');
  return spec;
}

async function latestDatasetVersion(
  ingest: ServiceClient<typeof IngestService>,
  dataset: string,
): Promise<string> {
  const { dataset: found } = await unrecoverableIf(ingest.getDataset({ name: dataset }), [status.NOT_FOUND]);
  if (!found?.latestVersion)
    throw new UnrecoverableError(`dataset ${dataset} has no committed version to train on`);
  return found.latestVersion;
}

/**
 * Jobs fan in on data committed earlier, in another trace: the fetch links to the span of the
 * CommitVersion call that created the dataset version (its commit_traceparent).
 */
async function linkToCommit(
  span: Span,
  ingest: ServiceClient<typeof IngestService>,
  dataset: string,
  id: string,
): Promise<void> {
  try {
    const { version } = await ingest.getVersion({ dataset, id });
    const commit = spanContextOf(version?.commitTraceparent ?? '');
    if (commit)
      span.addLink({
        context: commit,
        attributes: { 'ballast.link': 'dataset_commit', 'ballast.dataset.version': id },
      });
  } catch {
    // A link is a tracing aid: a version that cannot be read fails the fetch itself, with its reason.
  }
}

/** Errors that retrying cannot fix fail the job at once, with their reason. */
async function unrecoverableIf<T>(call: Promise<T>, codes: status[]): Promise<T> {
  try {
    return await call;
  } catch (err) {
    if (err instanceof RpcError && codes.includes(err.code)) throw new UnrecoverableError(err.message);
    throw err;
  }
}

/** The upload stream: the manifest, then each file in chunks well under the 1 MiB limit. */
async function* artifactParts(
  files: { path: string; data: Uint8Array }[],
  manifest: { files: { path: string; size: number; sha256: string }[]; digest: string },
) {
  const entries = manifest.files.map((f) => ({ ...f, size: BigInt(f.size) }));
  yield { part: { case: 'manifest' as const, value: { files: entries, digest: manifest.digest } } };
  for (const file of files)
    for (let at = 0; at < file.data.byteLength; at += 512 * 1024)
      yield {
        part: {
          case: 'chunk' as const,
          value: { path: file.path, data: file.data.subarray(at, at + 512 * 1024) },
        },
      };
}

const tensorSpec = (t: { name: string; dtype: string | null; shape: number[] | null }) => ({
  name: t.name,
  dtype: t.dtype ?? 'float32',
  shape: (t.shape ?? []).map(BigInt),
});

function outcome(
  job: TrainingJob,
  version: ModelVersion,
  reused: boolean,
  promotion: TrainingOutcome['promotion'],
  rows: TrainingOutcome['rows'],
): TrainingOutcome {
  return {
    model: job.data.model,
    version: version.version,
    artifactDigest: version.artifactDigest,
    reused,
    promotion,
    rows,
  };
}
