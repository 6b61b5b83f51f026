import { parseArgs } from 'node:util';
import {
  type DatasetVersion,
  DatasetVersionSchema,
  FieldType,
  VolumeStatus,
} from '@ballast/contracts/ballast/ingest/v1/ingest_pb.js';
import { toJson } from '@bufbuild/protobuf';
import { timestampMs } from '@bufbuild/protobuf/wkt';
import { withClients } from './clients.js';
import {
  diffVersions,
  eventRange,
  listDatasetVersions,
  num,
  pickVersion,
  shortId,
} from './dataset-versions.js';
import { materializationsOf, runCell } from './materializations.js';
import { type CommandIo, type Print, printJson, printTable } from './output.js';
import { about } from './rpc-errors.js';

/**
 * `ballast versions list | show | diff`: a dataset's committed versions, one version's field
 * summaries and quality, and what differs between two of them.
 */

const created = (v: DatasetVersion) =>
  v.createTime ? new Date(timestampMs(v.createTime)).toISOString().slice(0, 19).replace('T', ' ') : '-';

/** A version as a table row (the materialization cell filled in by the caller). */
export function versionRow(v: DatasetVersion, materialized: string): string[] {
  return [
    `v${v.number}`,
    shortId(v.id),
    String(v.recordCount),
    `+${v.addedCount}`,
    eventRange(v),
    `v${v.schemaMajor}.${v.schemaMinor}`,
    created(v),
    materialized,
  ];
}

export const VERSION_HEADER = [
  'VERSION',
  'ID',
  'RECORDS',
  'ADDED',
  'EVENT TIMES',
  'SCHEMA',
  'CREATED',
  'MATERIALIZED',
];

/** The views materialized over a version, each with its state (and a failure's reason). */
export async function materializedCell(
  feature: Parameters<typeof materializationsOf>[0],
  v: DatasetVersion,
): Promise<string> {
  const runs = await materializationsOf(feature, v.id);
  return runs.map(runCell).join('; ') || 'not materialized';
}

function printVersion(print: Print, v: DatasetVersion, materialized: string) {
  print(
    `${v.dataset} v${v.number} (${v.id}): ${v.recordCount} records, ${v.addedCount} added since ${v.previousId ? shortId(v.previousId) : 'the start'}, event times ${eventRange(v)}, schema v${v.schemaMajor}.${v.schemaMinor}, created ${created(v)}`,
  );
  print(`  materialized: ${materialized}`);
  printTable(
    print,
    ['FIELD', 'TYPE', 'COUNT', 'NULLS', 'MIN', 'MAX', 'MEAN', 'STDDEV', 'DISTINCT / TOP'],
    v.fields.map((f) => {
      const numeric = f.type === FieldType.FLOAT || f.type === FieldType.INT;
      return [
        f.field,
        FieldType[f.type]?.toLowerCase() ?? String(f.type),
        String(f.count),
        String(f.nullCount),
        numeric ? num(f.min) : '',
        numeric ? num(f.max) : '',
        numeric ? num(f.mean) : '',
        numeric ? num(f.stddev) : '',
        numeric || f.type === FieldType.TIMESTAMP
          ? ''
          : `${f.distinctCount}: ${f.topValues
              .slice(0, 3)
              .map((t) => `${t.value} (${t.count})`)
              .join(', ')}`,
      ];
    }),
    '  ',
  );
  const quality = v.quality;
  if (!quality) return;
  const flagged = quality.fields.filter(
    (f) => f.nullCount > 0n || f.outOfRangeCount > 0n || f.newValueCount > 0n || f.invalidCount > 0n,
  );
  print(
    flagged.length === 0
      ? '  quality of what it added: no nulls, out-of-range, invalid or new values'
      : '  quality of what it added:',
  );
  for (const f of flagged)
    print(
      `    ${f.field}: ${f.nullCount} nulls, ${f.outOfRangeCount} out of range, ${f.invalidCount} invalid${f.newValueCount ? `, ${f.newValueCount} new values (${f.newValues.slice(0, 5).join(', ')})` : ''}`,
    );
  const volume = quality.volume.filter((c) => c.status !== VolumeStatus.OK);
  for (const c of volume)
    print(
      `    volume ${c.dimension} ${c.key}: ${VolumeStatus[c.status]?.toLowerCase()} (${c.previousCount} -> ${c.count})`,
    );
  for (const a of quality.anomalies) print(`    anomaly: ${a}`);
}

const USAGE =
  'versions: `ballast versions list <dataset>`, `versions show <dataset> <version>` or `versions diff <dataset> <a> <b>` (a version: its number, the start of its id, or latest)';

export async function versionsCommand(args: string[], { env, print }: CommandIo): Promise<number> {
  const [action = '', ...rest] = args;
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: { json: { type: 'boolean', default: false } },
  });
  const [dataset, a, b] = positionals;
  const needs = { list: 1, show: 2, diff: 3 }[action];
  if (needs === undefined || !dataset || positionals.length < needs) throw new Error(USAGE);
  return withClients(env, async ({ ingest, feature }) => {
    const versions = await about(
      listDatasetVersions(ingest, dataset),
      `dataset "${dataset}"`,
      '`ballast datasets` lists the datasets',
    );
    if (action === 'list') {
      if (values.json) {
        printJson(
          print,
          versions.map((v) => toJson(DatasetVersionSchema, v)),
        );
        return 0;
      }
      if (versions.length === 0) {
        print(`${dataset} has no committed version yet (\`ballast ingest ${dataset} <file> --commit\`)`);
        return 0;
      }
      const cells = await Promise.all(versions.map((v) => materializedCell(feature, v)));
      printTable(
        print,
        VERSION_HEADER,
        versions.map((v, i) => versionRow(v, cells[i] ?? '')),
      );
      return 0;
    }
    const first = pickVersion(versions, a ?? '', dataset);
    if (action === 'show') {
      if (values.json) printJson(print, toJson(DatasetVersionSchema, first));
      else printVersion(print, first, await materializedCell(feature, first));
      return 0;
    }
    const diff = diffVersions(first, pickVersion(versions, b ?? '', dataset));
    if (values.json) {
      printJson(print, diff);
      return 0;
    }
    const label = (v: { number: number; id: string }) => `v${v.number} (${shortId(v.id)})`;
    print(`${dataset}: ${label(diff.a)} -> ${label(diff.b)}`);
    if (diff.version.length + diff.fields.length === 0) {
      print('no differences');
      return 0;
    }
    printTable(
      print,
      ['OF', 'WHAT', label(diff.a), label(diff.b)],
      [...diff.version, ...diff.fields].map((d) => [d.subject, d.what, d.a, d.b]),
      '  ',
    );
    return 0;
  });
}
