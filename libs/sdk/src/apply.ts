import {
  type FeatureViewDefinition,
  FeatureViewDefinitionSchema,
} from '@ballast/contracts/ballast/feature/v1/feature_pb.js';
import {
  type CreateDatasetRequest,
  CreateDatasetRequestSchema,
  type Schema,
  SchemaSchema,
} from '@ballast/contracts/ballast/ingest/v1/ingest_pb.js';
import {
  type CreateModelRequest,
  CreateModelRequestSchema,
  PromotionPolicySchema,
} from '@ballast/contracts/ballast/registry/v1/registry_pb.js';
import type { BallastQueue } from '@ballast/queue';
import { create, type DescMessage, equals, fromJson, type JsonValue, toJson } from '@bufbuild/protobuf';
import type { BallastFile, ScheduleEntry } from './ballast-file.js';
import type { BallastClients } from './clients.js';
import { knownViews } from './feature-views.js';
import { toFileJson, toProtoJson } from './file-format.js';
import { ifFound } from './rpc-errors.js';
import { listTrainingSchedules, removeTrainingSchedule, scheduleTraining } from './training.js';

/**
 * `ballast apply` and `ballast export`: the file's objects against what the services hold.
 * Each object is read first, so an unchanged one costs no write and `--dry-run` shows the
 * same plan a real run carries out. Nothing is deleted unless asked (`--prune`), and only
 * schedules can be: datasets, feature views and models have no delete RPC.
 */
export type Action = 'create' | 'update' | 'unchanged' | 'delete' | 'kept';

export interface PlanStep {
  kind: 'dataset' | 'featureView' | 'model' | 'schedule';
  name: string;
  action: Action;
  detail?: string;
  run?: () => Promise<unknown>;
}

type TrainingQueue = BallastQueue<'training.run'>;

const parse = <D extends DescMessage>(desc: D, entry: unknown) =>
  fromJson(desc, toProtoJson(desc, entry as JsonValue) as JsonValue);

/** A stored schema without what the service stamps on it (its version and time). */
const declared = (schema: Schema | undefined) =>
  create(SchemaSchema, {
    fields: schema?.fields ?? [],
    eventIdField: schema?.eventIdField ?? '',
    eventTimeField: schema?.eventTimeField ?? '',
    entityFields: schema?.entityFields ?? [],
    segmentFields: schema?.segmentFields ?? [],
  });

export const scheduleId = (model: string) => `retrain-${model}`;

const scheduleJob = (s: ScheduleEntry) => ({
  model: s.model,
  reason: 'schedule',
  ...(s.featureView ? { featureView: s.featureView } : {}),
  ...(s.spec ? { spec: s.spec } : {}),
  ...(s.promote ? { promote: true } : {}),
});

/** Key order does not make two jobs different. */
const canonical = (value: unknown): string =>
  JSON.stringify(value, (_k, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => a.localeCompare(b)))
      : v,
  );

export async function plan(
  file: BallastFile,
  clients: BallastClients,
  queue: TrainingQueue,
  prune: boolean,
): Promise<PlanStep[]> {
  const steps: PlanStep[] = [];
  for (const entry of file.datasets ?? []) {
    const want: CreateDatasetRequest = parse(CreateDatasetRequestSchema, entry);
    const have = (await ifFound(clients.ingest.getDataset({ name: want.name })))?.dataset;
    if (!have)
      steps.push({
        kind: 'dataset',
        name: want.name,
        action: 'create',
        run: () => clients.ingest.createDataset(want),
      });
    else if (!equals(SchemaSchema, declared(have.schema), declared(want.schema)))
      steps.push({
        kind: 'dataset',
        name: want.name,
        action: 'update',
        detail: `schema v${have.schema?.major}.${have.schema?.minor}`,
        run: () => clients.ingest.putSchema({ dataset: want.name, schema: want.schema }),
      });
    else steps.push({ kind: 'dataset', name: want.name, action: 'unchanged' });
  }
  for (const entry of file.featureViews ?? []) {
    const want: FeatureViewDefinition = parse(FeatureViewDefinitionSchema, entry);
    const have = (await ifFound(clients.feature.getFeatureView({ name: want.name })))?.view;
    const apply = () => clients.feature.applyFeatureView({ definition: want });
    if (!have) steps.push({ kind: 'featureView', name: want.name, action: 'create', run: apply });
    else if (!have.definition || !equals(FeatureViewDefinitionSchema, have.definition, want))
      steps.push({
        kind: 'featureView',
        name: want.name,
        action: 'update',
        detail: 'a new view version',
        run: apply,
      });
    else steps.push({ kind: 'featureView', name: want.name, action: 'unchanged' });
  }
  for (const entry of file.models ?? []) {
    const want: CreateModelRequest = parse(CreateModelRequestSchema, entry);
    const have = (await ifFound(clients.registry.getModel({ name: want.name })))?.model;
    const policy = want.policy ?? create(PromotionPolicySchema);
    if (!have)
      steps.push({
        kind: 'model',
        name: want.name,
        action: 'create',
        run: () => clients.registry.createModel(want),
      });
    else if (have.task !== want.task)
      throw new Error(`model ${want.name}: its task cannot change (create a model under a new name)`);
    else if (!equals(PromotionPolicySchema, have.policy ?? create(PromotionPolicySchema), policy))
      steps.push({
        kind: 'model',
        name: want.name,
        action: 'update',
        detail: 'promotion policy',
        run: () => clients.registry.updatePromotionPolicy({ model: want.name, policy }),
      });
    else steps.push({ kind: 'model', name: want.name, action: 'unchanged' });
  }
  const schedules = await listTrainingSchedules(queue);
  const declaredIds = new Set<string>();
  for (const entry of file.schedules ?? []) {
    const id = scheduleId(entry.model);
    declaredIds.add(id);
    const job = scheduleJob(entry);
    const have = schedules.find((s) => s.id === id);
    const put = () => scheduleTraining(queue, id, entry.cron, job);
    if (!have) steps.push({ kind: 'schedule', name: id, action: 'create', detail: entry.cron, run: put });
    else if (have.cron !== entry.cron || canonical(have.job) !== canonical(job))
      steps.push({ kind: 'schedule', name: id, action: 'update', detail: entry.cron, run: put });
    else steps.push({ kind: 'schedule', name: id, action: 'unchanged' });
  }
  for (const s of schedules)
    if (!declaredIds.has(s.id))
      steps.push(
        prune
          ? { kind: 'schedule', name: s.id, action: 'delete', run: () => removeTrainingSchedule(queue, s.id) }
          : { kind: 'schedule', name: s.id, action: 'kept', detail: 'not in the file (--prune removes it)' },
      );
  return steps;
}

/** Carries out a plan in its order (datasets before the views that read them, and so on). */
export async function execute(steps: PlanStep[]): Promise<void> {
  for (const step of steps) await step.run?.();
}

const fileJson = <D extends DescMessage>(desc: D, message: Parameters<typeof toJson<D>>[1]) =>
  toFileJson(desc, toJson(desc, message) as JsonValue) as Record<string, unknown>;

/**
 * What the services hold, as a file `apply` accepts unchanged. Feature views have no list
 * RPC: those exported are the ones knownViews finds, the ones schedules name, and any in
 * `views`.
 */
export async function exportState(
  clients: BallastClients,
  queue: TrainingQueue,
  views: readonly string[] = [],
): Promise<BallastFile> {
  const { datasets } = await clients.ingest.listDatasets({});
  const { models } = await clients.registry.listModels({});
  const schedules = (await listTrainingSchedules(queue)).filter(
    (s) => s.job && s.id === scheduleId(s.job.model),
  );
  const seeds = [...views, ...schedules.flatMap((s) => (s.job?.featureView ? [s.job.featureView] : []))];
  const featureViews = (await knownViews(clients, seeds)).flatMap((view) =>
    view.definition ? [fileJson(FeatureViewDefinitionSchema, view.definition)] : [],
  );
  return {
    datasets: datasets.map((d) =>
      fileJson(
        CreateDatasetRequestSchema,
        create(CreateDatasetRequestSchema, {
          name: d.name,
          description: d.description,
          schema: declared(d.schema),
        }),
      ),
    ),
    featureViews,
    models: models.map((m) =>
      fileJson(
        CreateModelRequestSchema,
        create(CreateModelRequestSchema, {
          name: m.name,
          description: m.description,
          task: m.task,
          ownerTeam: m.ownerTeam,
          tags: m.tags,
          ...(m.policy ? { policy: m.policy } : {}),
        }),
      ),
    ),
    schedules: schedules.map((s) => {
      const job = s.job as TrainingRunJobLike;
      return {
        model: job.model,
        cron: s.cron,
        ...(job.featureView ? { featureView: job.featureView } : {}),
        ...(job.promote ? { promote: true } : {}),
        ...(job.spec ? { spec: job.spec } : {}),
      };
    }),
  };
}

type TrainingRunJobLike = Pick<ScheduleEntry, 'model' | 'featureView' | 'promote' | 'spec'>;
