import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import {
  Aggregation,
  CalendarPart,
  EncodingKind,
  type Feature,
  type FeatureStatistics,
  FeatureViewDefinitionSchema,
  FeatureViewSchema,
  GetFeatureStatisticsResponseSchema,
  MaterializationSchema,
  MaterializationState,
} from '@ballast/contracts/ballast/feature/v1/feature_pb.js';
import { fromJson, type JsonValue, toJson } from '@bufbuild/protobuf';
import { withClients } from './clients.js';
import { num } from './dataset-versions.js';
import { knownViews } from './feature-views.js';
import { stateCell, stateName } from './materializations.js';
import { type CommandIo, printJson, printTable } from './output.js';
import { about } from './rpc-errors.js';

/**
 * `ballast features apply | list | show | stats`: feature views, their definitions and
 * materializations, and the statistics of a materialized (view version, dataset version),
 * which are the drift baseline a model is judged against.
 */

const lower = (name: string | undefined) => name?.toLowerCase() ?? '?';

/** A feature's transform as a short expression: `mean(units, 7d)`, `lag(units, 1d)`. */
export function transformText(f: Feature): string {
  const t = f.transform;
  switch (t.case) {
    case 'raw':
      return t.value.field;
    case 'lag':
      return `lag(${t.value.field}, ${t.value.days}d${t.value.timeField ? `, by ${t.value.timeField}` : ''})`;
    case 'rolling':
      return `${lower(Aggregation[t.value.aggregation])}(${t.value.field}, ${t.value.windowDays}d)`;
    case 'calendar':
      return `${lower(CalendarPart[t.value.part])}(${t.value.timeField || 'event time'})`;
    case 'ratio':
      return `${t.value.numerator} / ${t.value.denominator}`;
    case 'encoding':
      return `${lower(EncodingKind[t.value.kind])}(${t.value.field}${t.value.maxCategories ? `, ${t.value.maxCategories}` : ''})`;
    case 'standardize':
      return `standardize(${t.value.input})`;
    default:
      return '?';
  }
}

/** Statistics as table rows: one per feature (the label marked), in the order the service gave. */
export function statisticsRows(stats: readonly FeatureStatistics[], withSegment: boolean): string[][] {
  return stats.map((s) => {
    const median = s.quantiles.find((q) => q.q === 0.5)?.value ?? Number.NaN;
    return [
      ...(withSegment ? [s.segment || 'all rows'] : []),
      s.isLabel ? `${s.feature} (label)` : s.feature,
      String(s.count),
      String(s.nullCount),
      num(s.mean),
      num(s.std),
      num(s.min),
      num(median),
      num(s.max),
    ];
  });
}

const VIEWS_HINT = '`ballast features list` lists the views';

async function applyView(path: string, { env, print }: CommandIo) {
  let definition: ReturnType<typeof fromJson<typeof FeatureViewDefinitionSchema>>;
  try {
    definition = fromJson(FeatureViewDefinitionSchema, JSON.parse(readFileSync(path, 'utf8')) as JsonValue);
  } catch (err) {
    throw new Error(`${path}: not a feature view definition: ${(err as Error).message}`);
  }
  return withClients(env, async ({ feature }) => {
    const { view, created } = await feature.applyFeatureView({ definition });
    print(
      `${view?.definition?.name}@${view?.version.slice(0, 12)} ${created ? 'applied' : 'unchanged (same definition)'}`,
    );
    return 0;
  });
}

export async function featuresCommand(args: string[], io: CommandIo): Promise<number> {
  const [action = 'list', ...rest] = args;
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: {
      json: { type: 'boolean', default: false },
      version: { type: 'string' },
      'dataset-version': { type: 'string' },
      segment: { type: 'string' },
      'all-segments': { type: 'boolean', default: false },
      bins: { type: 'string' },
    },
  });
  const { env, print } = io;
  const [name] = positionals;
  if (action === 'apply') {
    if (!name)
      throw new Error(
        'features apply: `ballast features apply <view.json>` (a FeatureViewDefinition in protobuf JSON)',
      );
    return applyView(name, io);
  }
  if (action !== 'list' && action !== 'show' && action !== 'stats')
    throw new Error('features: list, show <view>, stats <view> or apply <view.json>');
  if (action !== 'list' && !name)
    throw new Error(`features ${action}: name the view, e.g. \`ballast features ${action} <view>\``);
  return withClients(env, async (clients) => {
    const { feature } = clients;
    if (action === 'list') {
      const views = await knownViews(clients);
      const latest = await Promise.all(
        views.map(
          async (v) =>
            (await feature.listMaterializations({ view: v.definition?.name ?? '', pageSize: 1 }))
              .materializations[0],
        ),
      );
      if (values.json)
        printJson(
          print,
          views.map((v) => toJson(FeatureViewSchema, v)),
        );
      else if (views.length === 0)
        print('no feature views yet (`ballast apply -f ballast.yaml` declares them)');
      else
        printTable(
          print,
          ['VIEW', 'VERSION', 'DATASET', 'ENTITY', 'FEATURES', 'LABEL', 'LATEST MATERIALIZATION'],
          views.map((v, i) => {
            const run = latest[i];
            return [
              v.definition?.name ?? '',
              v.version.slice(0, 12),
              v.definition?.source?.dataset ?? '',
              v.definition?.entityFields.join(',') || '-',
              String(v.featureNames.length),
              v.definition?.label?.name || '-',
              run ? `${run.datasetVersion.slice(0, 12)} ${stateCell(run)}` : 'none yet',
            ];
          }),
        );
      return 0;
    }
    const viewName = name ?? '';
    const { view } = await about(
      feature.getFeatureView({ name: viewName, version: values.version ?? '' }),
      `feature view "${viewName}"${values.version ? ` version ${values.version}` : ''}`,
      VIEWS_HINT,
    );
    const definition = view?.definition;
    if (!view || !definition) throw new Error(`feature view ${viewName} has no definition`);
    const { materializations } = await feature.listMaterializations({
      view: viewName,
      viewVersion: view.version,
      pageSize: 1000,
    });
    if (action === 'show') {
      if (values.json) {
        printJson(print, {
          view: toJson(FeatureViewSchema, view),
          materializations: materializations.map((m) => toJson(MaterializationSchema, m)),
        });
        return 0;
      }
      print(
        `${definition.name}@${view.version.slice(0, 12)}: reads ${definition.source?.dataset} (event time ${definition.source?.eventTimeField}), entity ${definition.entityFields.join(', ') || '-'}, segments ${definition.segmentFields.join(', ') || '-'}, label ${definition.label ? `${definition.label.name} = ${definition.label.field}${definition.label.leadDays ? ` ${definition.label.leadDays}d ahead` : ''}` : '-'}`,
      );
      printTable(
        print,
        ['FEATURE', 'TRANSFORM'],
        definition.features.map((f) => [f.name, transformText(f)]),
        '  ',
      );
      print('');
      if (materializations.length === 0)
        print('not materialized yet (`ballast ingest <dataset> <file> --commit` materializes it)');
      else
        printTable(
          print,
          ['DATASET VERSION', 'STATE', 'ROWS', 'ENTITIES', 'SKIPPED', 'TRIGGER', 'REASON'],
          materializations.map((m) => [
            m.datasetVersion.slice(0, 12),
            stateName(m.state),
            String(m.rows),
            String(m.entities),
            String(m.skippedRecords),
            m.trigger,
            m.reason,
          ]),
        );
      return 0;
    }
    // stats: of the dataset version asked for (an id or its start), else the newest one materialized.
    const wanted = values['dataset-version'];
    const done = materializations.filter((m) => m.state === MaterializationState.SUCCEEDED);
    const run = wanted ? done.find((m) => m.datasetVersion.startsWith(wanted)) : done[0];
    if (!run)
      throw new Error(
        `feature view ${viewName}@${view.version.slice(0, 12)} has no materialized dataset version${wanted ? ` "${wanted}"` : ''} (materialized: ${done.map((m) => m.datasetVersion.slice(0, 12)).join(', ') || 'none'})`,
      );
    const bins = values.bins === undefined ? 10 : Number(values.bins);
    if (!Number.isSafeInteger(bins) || bins < 1)
      throw new Error(`--bins: expected a whole number, got "${values.bins}"`);
    const response = await feature.getFeatureStatistics({
      view: viewName,
      viewVersion: view.version,
      datasetVersion: run.datasetVersion,
      bins,
    });
    const segment = values.segment;
    const all = values['all-segments'] ?? false;
    const shown = response.statistics.filter((s) => all || s.segment === (segment ?? ''));
    if (values.json) {
      printJson(print, toJson(GetFeatureStatisticsResponseSchema, { ...response, statistics: shown }));
      return 0;
    }
    if (shown.length === 0)
      throw new Error(
        `no statistics for segment "${segment}" (segments: ${[...new Set(response.statistics.map((s) => s.segment).filter(Boolean))].join(', ') || 'none'})`,
      );
    print(
      `${viewName}@${view.version.slice(0, 12)} on ${definition.source?.dataset}@${run.datasetVersion.slice(0, 12)}: ${response.rowCount} rows${segment ? `, segment ${segment}` : ''}`,
    );
    printTable(
      print,
      [...(all ? ['SEGMENT'] : []), 'FEATURE', 'COUNT', 'NULLS', 'MEAN', 'STD', 'MIN', 'MEDIAN', 'MAX'],
      statisticsRows(shown, all),
      '  ',
    );
    return 0;
  });
}
