import { parseArgs } from 'node:util';
import type { BallastQueue, TrainingRunJob } from '@ballast/queue';
import { connect, withClients } from './clients.js';
import { failedMaterializations } from './materializations.js';
import { explainNotFound, requireModel } from './models.js';
import {
  type CommandIo,
  type Print,
  type ProgressStream,
  printJson,
  printTable,
  progress,
} from './output.js';
import {
  cancelTraining,
  enqueueTraining,
  listTrainingJobs,
  listTrainingSchedules,
  removeTrainingSchedule,
  reproductionJob,
  scheduleTraining,
  type TrainingJobSummary,
  type TrainingProgress,
  waitForTraining,
  withTrainingQueue,
} from './training.js';

/**
 * The model-lifecycle commands of the `ballast` CLI: train (and reproduce), schedules,
 * training jobs, promote and rollback. Each returns the process exit code; output goes through
 * `print` so tests and the CLI share one path.
 */
function int(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0)
    throw new Error(`--${name}: expected a whole number, got "${value}"`);
  return n;
}

function progressLine(p: TrainingProgress): string {
  if (p.stage !== 'training' || !p.epochs) return `  ${p.stage ?? 'queued'}...`;
  const width = 24;
  const done = Math.round(((p.epoch ?? 0) / p.epochs) * width);
  const eta = p.etaMs === undefined ? '' : ` eta ${(p.etaMs / 1000).toFixed(1)}s`;
  return `  [${'#'.repeat(done)}${'.'.repeat(width - done)}] epoch ${p.epoch}/${p.epochs} loss ${p.loss?.toFixed(4)}${eta}`;
}

/** Follows a training job, drawing its progress, until it completes (its result) or fails. */
function followTraining(
  queue: BallastQueue<'training.run'>,
  id: string,
  print: Print,
  stdout: ProgressStream | undefined,
) {
  const bar = progress(print, stdout);
  return waitForTraining(queue, id, (p) => bar.update(progressLine(p))).finally(() => bar.done());
}

export async function trainCommand(args: string[], { env, print, stdout }: CommandIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      view: { type: 'string' },
      'dataset-version': { type: 'string' },
      hidden: { type: 'string', default: '16' },
      epochs: { type: 'string', default: '20' },
      'batch-size': { type: 'string', default: '64' },
      'learning-rate': { type: 'string', default: '0.01' },
      seed: { type: 'string', default: '1' },
      promote: { type: 'boolean', default: false },
      reproduce: { type: 'string' },
      wait: { type: 'boolean', default: false },
    },
  });
  let job: TrainingRunJob;
  let expectDigest: string | undefined;
  if (values.reproduce) {
    const [model, version] = values.reproduce.split('@');
    if (!model || !version)
      throw new Error(`--reproduce: expected <model>@<version>, got "${values.reproduce}"`);
    const reproduction = await withClients(env, (c) =>
      reproductionJob(c.registry, model, int('reproduce', version, 0)),
    );
    job = reproduction.job;
    expectDigest = reproduction.artifactDigest;
  } else {
    const [model] = positionals;
    if (!model) throw new Error('train: name the model, e.g. `ballast train demand --view demand`');
    // Training a model the registry does not know would fail only after the training, at registration.
    await withClients(env, (c) => requireModel(c.registry, model));
    const learningRate = Number(values['learning-rate']);
    job = {
      model,
      reason: 'cli',
      requestedBy: env.USER || 'cli',
      ...(values.view ? { featureView: values.view } : {}),
      ...(values['dataset-version'] ? { datasetVersion: values['dataset-version'] } : {}),
      spec: {
        hiddenUnits: (values.hidden ?? '')
          .split(',')
          .filter(Boolean)
          .map((u) => int('hidden', u, 0)),
        epochs: int('epochs', values.epochs, 20),
        batchSize: int('batch-size', values['batch-size'], 64),
        learningRate,
        seed: int('seed', values.seed, 1),
      },
      ...(values.promote ? { promote: true } : {}),
    };
  }
  return withTrainingQueue(env, async (queue) => {
    const id = await enqueueTraining(queue, job);
    print(`queued ${id} (${job.model}${job.featureView ? ` on ${job.featureView}` : ''})`);
    if (!values.wait && !expectDigest) return 0;
    const result = await followTraining(queue, id, print, stdout);
    if (expectDigest === undefined)
      print(
        `${result.model} v${result.version} ${result.reused ? 'already registered by this job' : 'registered'}, artifact ${result.artifactDigest.slice(0, 12)}; promotion: ${result.promotion}${result.promotionDetail ? ` (${result.promotionDetail})` : ''}`,
      );
    if (expectDigest === undefined) return 0;
    const same = result.artifactDigest === expectDigest;
    print(
      same
        ? `reproduced: the same artifact digest ${expectDigest.slice(0, 12)} (${result.model} v${result.version} re-run; nothing registered, no alias moved)`
        : `NOT reproduced: ${expectDigest.slice(0, 12)} != ${result.artifactDigest.slice(0, 12)} (${result.model} v${result.version} re-run; nothing registered, no alias moved)`,
    );
    return same ? 0 : 1;
  });
}

export async function scheduleCommand(args: string[], { env, print }: CommandIo): Promise<number> {
  const [action, ...rest] = args;
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: {
      cron: { type: 'string' },
      view: { type: 'string' },
      promote: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    },
  });
  if (action === 'add' && positionals[0]) {
    const model = positionals[0];
    await withClients(env, (c) => requireModel(c.registry, model));
  }
  return withTrainingQueue(env, async (queue) => {
    if (action === 'add') {
      const [model] = positionals;
      if (!model || !values.cron)
        throw new Error(
          'schedule add: `ballast schedule add <model> --cron "0 3 * * *" [--view v] [--promote]`',
        );
      const id = `retrain-${model}`;
      await scheduleTraining(queue, id, values.cron, {
        model,
        reason: 'schedule',
        ...(values.view ? { featureView: values.view } : {}),
        ...(values.promote ? { promote: true } : {}),
      });
      print(`scheduled ${id}: ${values.cron}`);
      return 0;
    }
    if (action === 'list') {
      const schedules = await listTrainingSchedules(queue);
      if (values.json) printJson(print, schedules);
      else if (schedules.length === 0)
        print('no schedules (`ballast schedule add <model> --cron ...` adds one)');
      else
        printTable(
          print,
          ['SCHEDULE', 'CRON', 'NEXT RUN', 'MODEL'],
          schedules.map((s) => [s.id, s.cron, `next ${s.next?.toISOString() ?? '-'}`, s.job?.model ?? '']),
        );
      return 0;
    }
    if (action === 'remove') {
      const [id] = positionals;
      if (!id) throw new Error('schedule remove: name the schedule, e.g. retrain-demand');
      const removed = await removeTrainingSchedule(queue, id);
      print(removed ? `removed ${id}` : `no schedule ${id}`);
      return removed ? 0 : 1;
    }
    throw new Error('schedule: add, list or remove');
  });
}

export async function promoteCommand(args: string[], { env, print }: CommandIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { force: { type: 'boolean', default: false }, reason: { type: 'string', default: '' } },
  });
  const [model, version] = positionals;
  if (!model || !version)
    throw new Error('promote: `ballast promote <model> <version> [--reason "..."] [--force]`');
  return withClients(env, async ({ registry }) => {
    const { deployment } = await registry
      .promote({
        model,
        version: int('version', version, 0),
        reason: values.reason ?? '',
        force: values.force ?? false,
      })
      .catch(async (err: unknown) => {
        // NOT_FOUND may be the version's: the model is named only when it is the one missing.
        throw await explainNotFound(err, registry, model);
      });
    print(
      `${model}: production v${deployment?.fromVersion || '-'} -> v${deployment?.toVersion}; ${deployment?.verdict?.summary ?? ''}`,
    );
    return 0;
  });
}

export async function rollbackCommand(args: string[], { env, print }: CommandIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { reason: { type: 'string', default: '' } },
  });
  const [model] = positionals;
  if (!model) throw new Error('rollback: `ballast rollback <model> [--reason "..."]`');
  return withClients(env, async ({ registry }) => {
    const { deployment } = await registry
      .rollback({ model, reason: values.reason ?? '' })
      .catch(async (err: unknown) => {
        throw await explainNotFound(err, registry, model);
      });
    print(`${model}: production v${deployment?.fromVersion} -> v${deployment?.toVersion}`);
    return 0;
  });
}

const ago = (ms: number) => {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  return s < 120 ? `${s}s ago` : s < 7200 ? `${Math.round(s / 60)}m ago` : `${Math.round(s / 3600)}h ago`;
};

function jobRow(job: TrainingJobSummary): string[] {
  const detail =
    job.state === 'completed' && job.result
      ? `v${job.result.version} ${job.result.promotion}`
      : job.state === 'failed'
        ? (job.failedReason ?? '')
        : job.progress
          ? progressLine(job.progress).trim()
          : '';
  return [job.id, job.state, job.model, ago(job.addedAt), detail];
}

/**
 * Failed materializations from the feature service, with a short deadline and no retries: a
 * listing of training jobs (in Redis) must not wait on a feature service that is down; what
 * could not be read is said instead.
 */
async function failedWork(env: NodeJS.ProcessEnv): Promise<{ lines: string[]; unknown?: string }> {
  const clients = connect(env, { deadlineMs: 3_000, retry: false });
  try {
    return { lines: (await failedMaterializations(clients.feature)).map((f) => f.line) };
  } catch (err) {
    return { lines: [], unknown: err instanceof Error ? err.message : String(err) };
  } finally {
    clients.close();
  }
}

/** `ballast jobs [list] | watch <id> | cancel <id>`: training jobs and their progress. */
export async function jobsCommand(args: string[], { env, print, stdout }: CommandIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      limit: { type: 'string', default: '20' },
      reason: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
  });
  const [action = 'list', id] = positionals;
  if ((action === 'watch' || action === 'cancel') && !id)
    throw new Error(
      `jobs ${action}: name the job, e.g. \`ballast jobs ${action} <job id>\` (ids: \`ballast jobs\`)`,
    );
  return withTrainingQueue(env, async (queue, redis) => {
    if (action === 'list') {
      const jobs = await listTrainingJobs(queue, int('limit', values.limit, 20));
      const failed = await failedWork(env);
      if (values.json) {
        printJson(print, [
          ...jobs.map((j) => ({ kind: 'training', ...j })),
          ...failed.lines.map((line) => ({ kind: 'materialize', state: 'failed', line })),
        ]);
        return 0;
      }
      if (jobs.length === 0) print('no training jobs yet (`ballast train <model> --view <view>` queues one)');
      else printTable(print, ['JOB', 'STATE', 'MODEL', 'ADDED', 'DETAIL'], jobs.map(jobRow));
      if (failed.lines.length > 0) {
        print('');
        for (const line of failed.lines) print(line);
      }
      if (failed.unknown) print(`\nfailed materializations unknown: feature service: ${failed.unknown}`);
      return 0;
    }
    if (action === 'watch' && id) {
      const result = await followTraining(queue, id, print, stdout);
      print(`${result.model} v${result.version}; promotion: ${result.promotion}`);
      return 0;
    }
    if (action === 'cancel' && id) {
      const outcome = await cancelTraining(
        queue,
        redis,
        id,
        values.reason ?? `cancelled by ${env.USER || 'cli'}`,
      );
      print(`${id}: ${outcome}`);
      return outcome === 'no trainer holds it' ? 1 : 0;
    }
    throw new Error('jobs: list, watch <id> or cancel <id>');
  });
}
