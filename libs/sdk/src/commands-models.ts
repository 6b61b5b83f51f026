import { parseArgs } from 'node:util';
import {
  type Metric,
  type Model,
  ModelSchema,
  type ModelVersion,
  ModelVersionSchema,
  type PromotionPolicy,
  Task,
} from '@ballast/contracts/ballast/registry/v1/registry_pb.js';
import { toJson } from '@bufbuild/protobuf';
import { timestampMs } from '@bufbuild/protobuf/wkt';
import { applyOne } from './apply-one.js';
import { readBallastFile } from './ballast-file.js';
import { withClients } from './clients.js';
import { requireModel } from './models.js';
import { type CommandIo, printJson, printTable } from './output.js';

/**
 * `ballast models [list] | create | show`: the registry's models, one created from flags or a
 * file, and one model with its policy and every version (lineage, metrics, aliases).
 */

/** A model's aliases as `production=v3 candidate=v4`. */
export const aliasList = (aliases: Record<string, number>) =>
  Object.entries(aliases)
    .map(([alias, v]) => `${alias}=v${v}`)
    .join(' ') || '(no aliases)';

const TASKS = ['regression', 'classification'];

/** The overall metrics a version was judged on, as `mae=1.23 rmse=2.1 (holdout)`. */
export function metricSummary(metrics: readonly Metric[]): string {
  const overall = metrics.filter((m) => !m.segment);
  const sets = [...new Set(overall.map((m) => m.evalSet))];
  return (
    sets
      .map(
        (set) =>
          `${overall
            .filter((m) => m.evalSet === set)
            .map((m) => `${m.name}=${Number(m.value.toPrecision(4))}`)
            .join(' ')}${set ? ` (${set})` : ''}`,
      )
      .join('; ') || '-'
  );
}

/** A promotion policy as one line: `mae lower is better on holdout, at least 2% better`. */
export function policyLine(policy: PromotionPolicy | undefined): string {
  if (!policy?.primaryMetric) return 'none (every promotion passes the gate)';
  const direction = policy.direction === 2 ? 'higher is better' : 'lower is better';
  const parts = [`${policy.primaryMetric} ${direction}${policy.evalSet ? ` on ${policy.evalSet}` : ''}`];
  if (policy.minImprovement !== undefined)
    parts.push(`at least ${Number((policy.minImprovement * 100).toPrecision(3))}% better`);
  if (policy.maxSegmentRegression !== undefined)
    parts.push(`no segment more than ${Number((policy.maxSegmentRegression * 100).toPrecision(3))}% worse`);
  if (policy.maxP99LatencyIncrease !== undefined)
    parts.push(`p99 latency at most +${Number((policy.maxP99LatencyIncrease * 100).toPrecision(3))}%`);
  if (policy.maxCostIncrease !== undefined)
    parts.push(`cost at most +${Number((policy.maxCostIncrease * 100).toPrecision(3))}%`);
  return parts.join(', ');
}

/** One version as a table row: number, when, artifact, data and view it was trained on, metrics, aliases. */
export function versionRow(v: ModelVersion): string[] {
  const lineage = v.lineage;
  return [
    `v${v.version}`,
    v.createTime ? new Date(timestampMs(v.createTime)).toISOString().slice(0, 19).replace('T', ' ') : '-',
    v.artifactDigest.slice(0, 12),
    lineage?.dataset ? `${lineage.dataset.name}@${lineage.dataset.version.slice(0, 12)}` : '-',
    lineage?.featureView ? `${lineage.featureView.name}@${lineage.featureView.version.slice(0, 12)}` : '-',
    metricSummary(v.metrics),
    v.aliases.join(' '),
  ];
}

async function allVersions(
  registry: Parameters<typeof requireModel>[0],
  model: string,
): Promise<ModelVersion[]> {
  const versions: ModelVersion[] = [];
  let pageToken = '';
  do {
    const page = await registry.listModelVersions({ model, pageSize: 100, pageToken });
    versions.push(...page.versions);
    pageToken = page.nextPageToken;
  } while (pageToken);
  return versions;
}

function printModel(print: CommandIo['print'], m: Model, versions: readonly ModelVersion[]) {
  print(`${m.name}: ${Task[m.task]?.toLowerCase() ?? m.task}, team ${m.ownerTeam || '-'}`);
  if (m.description) print(`  ${m.description}`);
  print(`  aliases: ${aliasList(m.aliases)}`);
  print(`  promotion gate: ${policyLine(m.policy)}`);
  print('');
  if (versions.length === 0) {
    print(`no versions yet (\`ballast train ${m.name} --view <view>\` trains one)`);
    return;
  }
  printTable(
    print,
    ['VERSION', 'CREATED', 'ARTIFACT', 'DATASET', 'VIEW', 'METRICS', 'ALIASES'],
    versions.map(versionRow),
  );
}

function printVersion(print: CommandIo['print'], v: ModelVersion) {
  const [, created, artifact, dataset, view] = versionRow(v);
  print(
    `${v.model} v${v.version}${v.aliases.length ? ` (${v.aliases.join(', ')})` : ''}, created ${created} by ${v.createdBy || '-'}`,
  );
  print(`  artifact ${artifact}, dataset ${dataset}, view ${view}`);
  const config = v.lineage?.config;
  if (config)
    print(
      `  seed ${config.seed}; ${Object.entries(config.hyperparameters)
        .map(([k, val]) => `${k}=${val}`)
        .join(' ')}`,
    );
  if (v.lineage?.trainingJobId) print(`  training job ${v.lineage.trainingJobId}`);
  print('');
  printTable(
    print,
    ['METRIC', 'EVAL SET', 'SEGMENT', 'VALUE'],
    v.metrics.map((m) => [
      m.name,
      m.evalSet || '-',
      m.segment || 'all rows',
      String(Number(m.value.toPrecision(6))),
    ]),
  );
}

export async function modelsCommand(args: string[], { env, print }: CommandIo): Promise<number> {
  const action = args[0] && !args[0].startsWith('-') ? args[0] : 'list';
  const rest = action === args[0] ? args.slice(1) : args;
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: {
      json: { type: 'boolean', default: false },
      file: { type: 'string', short: 'f' },
      task: { type: 'string' },
      owner: { type: 'string' },
      description: { type: 'string' },
      version: { type: 'string' },
    },
  });
  if (action === 'create') {
    const [name] = positionals;
    if (!name)
      throw new Error(
        'models create: `ballast models create <name> [--task regression|classification] [--owner team]` or `-f ballast.yaml`',
      );
    if (values.task && !TASKS.includes(values.task.toLowerCase()))
      throw new Error(`--task: expected regression or classification, got "${values.task}"`);
    const declared = values.file
      ? (await readBallastFile(values.file)).models?.find((m) => m.name === name)
      : {
          name,
          task: values.task ?? 'regression',
          ownerTeam: values.owner ?? 'default',
          ...(values.description ? { description: values.description } : {}),
        };
    if (!declared) throw new Error(`${values.file}: declares no model "${name}"`);
    const step = await applyOne(env, { models: [declared] }, 'model');
    print(`model ${name}: ${step}`);
    return 0;
  }
  return withClients(env, async ({ registry }) => {
    if (action === 'list') {
      const { models } = await registry.listModels({});
      if (values.json)
        printJson(
          print,
          models.map((m) => toJson(ModelSchema, m, { alwaysEmitImplicit: true })),
        );
      else if (models.length === 0)
        print('no models registered yet (`ballast models create <name>` adds one)');
      else
        printTable(
          print,
          ['MODEL', 'TASK', 'LATEST', 'ALIASES', 'TEAM'],
          models.map((m) => [
            m.name,
            Task[m.task]?.toLowerCase() ?? String(m.task),
            m.latestVersion ? `v${m.latestVersion}` : '-',
            aliasList(m.aliases),
            m.ownerTeam,
          ]),
        );
      return 0;
    }
    if (action === 'show') {
      const [name] = positionals;
      if (!name) throw new Error('models show: `ballast models show <model> [--version n] [--json]`');
      await requireModel(registry, name);
      if (values.version) {
        const number = Number(values.version.replace(/^v/i, ''));
        if (!Number.isSafeInteger(number) || number < 1)
          throw new Error(`--version: expected a version number, got "${values.version}"`);
        const { version } = await registry.getModelVersion({ model: name, version: number });
        if (!version) throw new Error(`model ${name} has no version ${number}`);
        if (values.json) printJson(print, toJson(ModelVersionSchema, version));
        else printVersion(print, version);
        return 0;
      }
      const { model } = await registry.getModel({ name });
      if (!model) throw new Error(`unknown model "${name}"`);
      const versions = await allVersions(registry, name);
      if (values.json)
        printJson(print, {
          model: toJson(ModelSchema, model, { alwaysEmitImplicit: true }),
          versions: versions.map((v) => toJson(ModelVersionSchema, v)),
        });
      else printModel(print, model, versions);
      return 0;
    }
    throw new Error('models: list, create <name> or show <model>');
  });
}
