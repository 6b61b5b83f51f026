import {
  type DatasetVersion,
  type FieldSummary,
  FieldType,
  type IngestService,
} from '@ballast/contracts/ballast/ingest/v1/ingest_pb.js';
import type { ServiceClient } from '@ballast/grpc-kit';
import { type Timestamp, timestampMs } from '@bufbuild/protobuf/wkt';

/**
 * A dataset's committed versions as the CLI shows them: the chain ingest keeps (each version
 * names its previous one; there is no list RPC), a version picked by number, id prefix or
 * `latest`, and what differs between two of them.
 */
type Ingest = ServiceClient<typeof IngestService>;

/** Every version of `dataset`, newest first, read back along each version's previous_id. */
export async function listDatasetVersions(ingest: Ingest, dataset: string): Promise<DatasetVersion[]> {
  const { dataset: found } = await ingest.getDataset({ name: dataset });
  const versions: DatasetVersion[] = [];
  let id = found?.latestVersion ?? '';
  while (id) {
    const { version } = await ingest.getVersion({ dataset, id });
    if (!version) break;
    versions.push(version);
    id = version.previousId;
  }
  return versions;
}

/**
 * The version `ref` names among `versions`: `latest`, a number (`3` or `v3`), or the start of
 * an id (at least 4 hex digits, matching one version only).
 */
export function pickVersion(
  versions: readonly DatasetVersion[],
  ref: string,
  dataset: string,
): DatasetVersion {
  const known = versions.map((v) => `v${v.number} ${v.id.slice(0, 12)}`).join(', ') || 'none yet';
  const number = /^v?(\d+)$/i.exec(ref)?.[1];
  const matches =
    ref === 'latest'
      ? versions.slice(0, 1)
      : versions.filter(
          (v) =>
            (/^[0-9a-f]{4,64}$/i.test(ref) && v.id.startsWith(ref.toLowerCase())) ||
            (number !== undefined && v.number === BigInt(number)),
        );
  if (matches.length > 1)
    throw new Error(`"${ref}" matches ${matches.length} versions of ${dataset}: give more of the id`);
  const [version] = matches;
  if (!version) throw new Error(`dataset ${dataset} has no version "${ref}" (its versions: ${known})`);
  return version;
}

export const shortId = (id: string) => id.slice(0, 12);

const day = (t: Timestamp | undefined) => (t ? new Date(timestampMs(t)).toISOString().slice(0, 10) : '-');

/** The event times a version covers, as `2012-01-01..2015-12-31`. */
export const eventRange = (v: DatasetVersion) => `${day(v.minEventTime)}..${day(v.maxEventTime)}`;

export const num = (n: number) => (Number.isFinite(n) ? String(Number(n.toPrecision(4))) : '-');

/** One thing that differs between two versions: what, its value in a, in b. */
export interface Difference {
  /** `records`, `schema`... for the version; a field's name for its statistics. */
  subject: string;
  what: string;
  a: string;
  b: string;
}

export interface VersionDiff {
  dataset: string;
  a: { number: number; id: string };
  b: { number: number; id: string };
  /** The versions' counts, event times, schema and quality. */
  version: Difference[];
  /** Fields added, dropped or whose statistics moved. */
  fields: Difference[];
}

/** A field's statistics as comparable text, per what its type records. */
function fieldFacts(f: FieldSummary): [string, string][] {
  const facts: [string, string][] = [
    ['type', FieldType[f.type]?.toLowerCase() ?? String(f.type)],
    ['count', String(f.count)],
    ['nulls', String(f.nullCount)],
  ];
  if (f.type === FieldType.FLOAT || f.type === FieldType.INT)
    facts.push(['min', num(f.min)], ['max', num(f.max)], ['mean', num(f.mean)], ['stddev', num(f.stddev)]);
  else if (f.type === FieldType.TIMESTAMP) facts.push(['first', day(f.minTime)], ['last', day(f.maxTime)]);
  else
    facts.push(
      ['distinct', String(f.distinctCount)],
      [
        'top values',
        f.topValues
          .slice(0, 3)
          .map((t) => `${t.value} (${t.count})`)
          .join(', '),
      ],
    );
  return facts;
}

const qualityFacts = (v: DatasetVersion): [string, string][] => [
  ['quality anomalies', v.quality?.anomalies.join('; ') || 'none'],
  [
    'new categorical values',
    v.quality?.fields
      .filter((f) => f.newValueCount > 0n)
      .map((f) => `${f.field}: ${f.newValues.slice(0, 5).join(', ')}`)
      .join('; ') || 'none',
  ],
];

/**
 * What differs between versions a and b of one dataset: record counts, event times, schema
 * version and quality; then per field, whether it is in both and which of its statistics
 * (counts, nulls, range, mean, spread; distinct and top values; first and last time) moved.
 */
export function diffVersions(a: DatasetVersion, b: DatasetVersion): VersionDiff {
  const version: Difference[] = [];
  const facts = (v: DatasetVersion): [string, string][] => [
    ['records', String(v.recordCount)],
    ['added since its previous version', String(v.addedCount)],
    ['event times', eventRange(v)],
    ['schema', `v${v.schemaMajor}.${v.schemaMinor}`],
    ...qualityFacts(v),
  ];
  const bFacts = new Map(facts(b));
  for (const [what, av] of facts(a)) {
    const bv = bFacts.get(what) ?? '';
    if (av !== bv) version.push({ subject: 'version', what, a: av, b: bv });
  }
  const fields: Difference[] = [];
  const bFields = new Map(b.fields.map((f) => [f.field, f]));
  for (const fa of a.fields) {
    const fb = bFields.get(fa.field);
    if (!fb) {
      fields.push({ subject: fa.field, what: 'field', a: 'present', b: 'absent' });
      continue;
    }
    const bOf = new Map(fieldFacts(fb));
    for (const [what, av] of fieldFacts(fa)) {
      const bv = bOf.get(what) ?? '';
      if (av !== bv) fields.push({ subject: fa.field, what, a: av, b: bv });
    }
  }
  const aNames = new Set(a.fields.map((f) => f.field));
  for (const fb of b.fields)
    if (!aNames.has(fb.field)) fields.push({ subject: fb.field, what: 'field', a: 'absent', b: 'present' });
  return {
    dataset: a.dataset,
    a: { number: Number(a.number), id: a.id },
    b: { number: Number(b.number), id: b.id },
    version,
    fields,
  };
}
