import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { DatasetSchema, FieldType } from '@ballast/contracts/ballast/ingest/v1/ingest_pb.js';
import {
  ErrorWindowSchema,
  GetDriftResponseSchema,
} from '@ballast/contracts/ballast/monitor/v1/monitor_pb.js';
import { toJson } from '@bufbuild/protobuf';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { execute, exportState, plan } from './apply.js';
import { applyOne } from './apply-one.js';
import { readBallastFile, writeBallastFile } from './ballast-file.js';
import { withClients } from './clients.js';
import { materializedCell, VERSION_HEADER, versionRow } from './commands-versions.js';
import { listDatasetVersions, num } from './dataset-versions.js';
import { requireModel } from './models.js';
import { type CommandIo, printJson, printTable } from './output.js';
import { about } from './rpc-errors.js';
import { inferFile } from './schema-infer.js';
import { withTrainingQueue } from './training.js';

/**
 * The no-code commands of the `ballast` CLI: apply and export a `ballast.yaml`, infer a
 * schema from a file, and the read-only views of datasets, drift and error.
 */
/** `ballast apply -f ballast.yaml [--dry-run] [--prune]`. */
export async function applyCommand(args: string[], { env, print }: CommandIo): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      file: { type: 'string', short: 'f' },
      'dry-run': { type: 'boolean', default: false },
      prune: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    },
  });
  if (!values.file) throw new Error('apply: `ballast apply -f ballast.yaml [--dry-run] [--prune]`');
  const file = await readBallastFile(values.file);
  return withClients(env, (clients) =>
    withTrainingQueue(env, async (queue) => {
      const steps = await plan(file, clients, queue, values.prune ?? false);
      const dry = values['dry-run'] ?? false;
      if (!dry) await execute(steps);
      const changes = steps.filter((s) => s.action !== 'unchanged' && s.action !== 'kept').length;
      if (values.json) {
        printJson(print, { dryRun: dry, changes, steps: steps.map(({ run: _run, ...s }) => s) });
        return 0;
      }
      printTable(
        print,
        ['KIND', 'NAME', dry ? 'PLAN' : 'DONE', 'DETAIL'],
        steps.map((s) => [s.kind, s.name, s.action, s.detail ?? '']),
      );
      print(
        changes === 0
          ? 'no changes: the services already hold what the file declares'
          : `${changes} change${changes === 1 ? '' : 's'} ${dry ? 'planned (dry run: nothing written)' : 'applied'}`,
      );
      return 0;
    }),
  );
}

/** `ballast export [-o ballast.yaml] [--view name]...`. */
export async function exportCommand(args: string[], { env, print }: CommandIo): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { output: { type: 'string', short: 'o' }, view: { type: 'string', multiple: true } },
  });
  const text = await withClients(env, (clients) =>
    withTrainingQueue(env, async (queue) =>
      writeBallastFile(await exportState(clients, queue, values.view ?? [])),
    ),
  );
  if (values.output) {
    writeFileSync(values.output, text);
    print(`wrote ${values.output}`);
  } else print(text.trimEnd());
  return 0;
}

/** `ballast schema infer <file> --dataset name [--label f --entity f] [-o out.yaml]`. */
export async function schemaCommand(args: string[], { print }: CommandIo): Promise<number> {
  const [action, ...rest] = args;
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: {
      dataset: { type: 'string' },
      label: { type: 'string' },
      entity: { type: 'string' },
      owner: { type: 'string' },
      sample: { type: 'string', default: '1000' },
      output: { type: 'string', short: 'o' },
    },
  });
  const [path] = positionals;
  if (action !== 'infer' || !path || !values.dataset)
    throw new Error(
      'schema: `ballast schema infer <file.csv|file.jsonl> --dataset <name> [--label f --entity f]`',
    );
  const sample = Number(values.sample);
  if (!Number.isSafeInteger(sample) || sample < 1)
    throw new Error(`--sample: expected rows > 0, got "${values.sample}"`);
  const file = await inferFile(path, {
    dataset: values.dataset,
    sample,
    ...(values.label ? { label: values.label } : {}),
    ...(values.entity ? { entity: values.entity } : {}),
    ...(values.owner ? { owner: values.owner } : {}),
  });
  const text = writeBallastFile(
    file,
    `# Inferred from the first ${sample} records of ${path}: check the types, ranges and vocabularies, then \`ballast apply -f\`.\n`,
  );
  if (values.output) {
    writeFileSync(values.output, text);
    print(`wrote ${values.output}`);
  } else print(text.trimEnd());
  return 0;
}

/** `ballast datasets list|show <name>|create <name> -f ballast.yaml`. */
export async function datasetsCommand(args: string[], { env, print }: CommandIo): Promise<number> {
  const [action = 'list', ...rest] = args;
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: { json: { type: 'boolean', default: false }, file: { type: 'string', short: 'f' } },
  });
  if (action === 'create') {
    const [name] = positionals;
    if (!name || !values.file)
      throw new Error(
        'datasets create: `ballast datasets create <name> -f ballast.yaml` (its schema from the file)',
      );
    const file = await readBallastFile(values.file);
    const dataset = file.datasets?.find((d) => d.name === name);
    if (!dataset) throw new Error(`${values.file}: declares no dataset "${name}"`);
    print(`dataset ${name}: ${await applyOne(env, { datasets: [dataset] }, 'dataset')}`);
    return 0;
  }
  return withClients(env, async ({ ingest, feature }) => {
    if (action === 'list') {
      const { datasets } = await ingest.listDatasets({});
      if (values.json)
        printJson(
          print,
          datasets.map((d) => toJson(DatasetSchema, d)),
        );
      else if (datasets.length === 0) print('no datasets yet (`ballast apply -f ballast.yaml` creates them)');
      else
        printTable(
          print,
          ['DATASET', 'SCHEMA', 'FIELDS', 'RECORDS', 'QUARANTINED', 'LATEST VERSION'],
          datasets.map((d) => [
            d.name,
            `v${d.schema?.major}.${d.schema?.minor}`,
            String(d.schema?.fields.length ?? 0),
            String(d.recordCount),
            String(d.quarantinedCount),
            d.latestVersion.slice(0, 12) || '-',
          ]),
        );
      return 0;
    }
    if (action === 'show') {
      const [name] = positionals;
      if (!name) throw new Error('datasets show: `ballast datasets show <name> [--json]`');
      const { dataset } = await about(
        ingest.getDataset({ name }),
        `dataset "${name}"`,
        '`ballast datasets` lists the datasets',
      );
      if (!dataset) throw new Error(`no dataset ${name}`);
      const versions = await listDatasetVersions(ingest, name);
      const materialized = await Promise.all(versions.map((v) => materializedCell(feature, v)));
      if (values.json) {
        printJson(print, {
          ...(toJson(DatasetSchema, dataset) as Record<string, unknown>),
          versions: versions.map((v, i) => ({
            number: Number(v.number),
            id: v.id,
            recordCount: Number(v.recordCount),
            materialized: materialized[i],
          })),
        });
        return 0;
      }
      print(
        `${dataset.name}: schema v${dataset.schema?.major}.${dataset.schema?.minor}, ${dataset.recordCount} records, ${dataset.quarantinedCount} quarantined, latest version ${dataset.latestVersion.slice(0, 12) || '-'}`,
      );
      printTable(
        print,
        ['FIELD', 'TYPE', 'REQUIRED', 'RANGE / VALUES'],
        (dataset.schema?.fields ?? []).map((f) => [
          f.name,
          FieldType[f.type]?.toLowerCase() ?? String(f.type),
          f.required ? 'yes' : 'no',
          f.min !== undefined || f.max !== undefined
            ? `${f.min ?? ''}..${f.max ?? ''}`
            : [...f.vocabulary, ...f.allowedValues].slice(0, 8).join(', '),
        ]),
      );
      print('');
      if (versions.length === 0)
        print(`no committed version yet (\`ballast ingest ${name} <file> --commit\`)`);
      else
        printTable(
          print,
          VERSION_HEADER,
          versions.map((v, i) => versionRow(v, materialized[i] ?? '')),
        );
      return 0;
    }
    throw new Error('datasets: list, show <name> or create <name> -f ballast.yaml');
  });
}

/** A window as `--window 24h` (back from now) for drift and error. */
function windowStart(window: string | undefined) {
  if (!window) return undefined;
  const match = /^(\d+)([mhd])$/.exec(window);
  if (!match) throw new Error(`--window: expected e.g. 30m, 24h or 7d, got "${window}"`);
  const ms = Number(match[1]) * { m: 60_000, h: 3_600_000, d: 86_400_000 }[match[2] as 'm' | 'h' | 'd'];
  return timestampFromMs(Date.now() - ms);
}

/** drift's and error's shared options: a model, a segment (or all of them), a window. */
function monitorQuery(command: 'drift' | 'error', args: string[]) {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      segment: { type: 'string' },
      'all-segments': { type: 'boolean', default: false },
      window: { type: 'string' },
      version: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
  });
  const [model] = positionals;
  if (!model)
    throw new Error(`${command}: \`ballast ${command} <model> [--segment s] [--window 24h] [--json]\``);
  const start = windowStart(values.window);
  const query = {
    model,
    ...(values.version ? { version: Number(values.version) } : {}),
    ...(values.segment ? { segment: values.segment } : {}),
    allSegments: values['all-segments'] ?? false,
    ...(start ? { startTime: start } : {}),
  };
  return { query, json: values.json ?? false };
}

/** `ballast drift <model> [--segment s | --all-segments] [--window 24h] [--json]`. */
export async function driftCommand(args: string[], { env, print }: CommandIo): Promise<number> {
  const { query, json } = monitorQuery('drift', args);
  const model = query.model;
  return withClients(env, async ({ monitor, registry }) => {
    await requireModel(registry, model);
    const response = await monitor.getDrift(query);
    if (json) {
      printJson(print, toJson(GetDriftResponseSchema, response));
      return 0;
    }
    if (response.windows.length === 0) {
      print(`no drift report for ${model} yet (no logged predictions in the window)`);
      return 0;
    }
    for (const w of response.windows) {
      print(
        `${model} v${response.version} ${w.segment || 'all rows'}, ${w.rows} rows: ${w.drifted ? 'DRIFTED' : 'no drift'} (${w.driftedFeatures} of ${w.features.length} features)`,
      );
      printTable(
        print,
        ['FEATURE', 'METHOD', 'STATISTIC', 'THRESHOLD', 'PSI', 'VERDICT'],
        w.features.map((f) => [
          f.isPrediction ? `${f.feature} (prediction)` : f.feature,
          f.method,
          num(f.statistic),
          num(f.threshold),
          num(f.psi),
          f.insufficient ? 'too few values' : f.drifted ? 'drifted' : 'ok',
        ]),
        '  ',
      );
    }
    return 0;
  });
}

/** `ballast error <model> [--segment s | --all-segments] [--window 24h] [--json]`. */
export async function errorCommand(args: string[], { env, print }: CommandIo): Promise<number> {
  const { query, json } = monitorQuery('error', args);
  const model = query.model;
  return withClients(env, async ({ monitor, registry }) => {
    await requireModel(registry, model);
    const { windows } = await monitor.getError({ ...query, mergeWindows: true });
    if (json)
      printJson(
        print,
        windows.map((w) => toJson(ErrorWindowSchema, w)),
      );
    else if (windows.length === 0) print(`no actuals joined for ${model} yet (\`RecordActuals\` sends them)`);
    else
      printTable(
        print,
        ['SEGMENT', 'COUNT', 'MAE', 'RMSE', 'MAPE', 'ACCURACY'],
        windows.map((w) => [
          w.segment || 'all rows',
          String(w.count),
          num(w.mae),
          num(w.rmse),
          num(w.mape),
          num(w.accuracy),
        ]),
      );
    return 0;
  });
}
