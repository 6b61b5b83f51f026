import {
  type DatasetVersion,
  DatasetVersionSchema,
  FieldType,
} from '@ballast/contracts/ballast/ingest/v1/ingest_pb.js';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { describe, expect, it } from 'vitest';
import { diffVersions, pickVersion } from './dataset-versions.js';

const DAY = 86_400_000;

function version(
  number: number,
  id: string,
  over: MessageInitShape<typeof DatasetVersionSchema> = {},
): DatasetVersion {
  return create(DatasetVersionSchema, {
    dataset: 'weather',
    id,
    number: BigInt(number),
    recordCount: 100n * BigInt(number),
    addedCount: 100n,
    minEventTime: timestampFromMs(Date.UTC(2012, 0, 1)),
    maxEventTime: timestampFromMs(Date.UTC(2012, 0, 1) + number * 100 * DAY),
    schemaMajor: 1,
    schemaMinor: 0,
    fields: [
      { field: 'temp', type: FieldType.FLOAT, count: 100n, min: -3, max: 30, mean: 12.5, stddev: 7 },
      {
        field: 'weather',
        type: FieldType.CATEGORICAL,
        count: 100n,
        distinctCount: 3n,
        topValues: [
          { value: 'rain', count: 60n },
          { value: 'sun', count: 30n },
        ],
      },
    ],
    ...over,
  });
}

describe('pickVersion', () => {
  const versions = [
    version(3, 'c3f00d'.padEnd(64, '0')),
    version(2, 'ab12'.padEnd(64, '1')),
    version(1, 'ab99'.padEnd(64, '2')),
  ];

  it('finds a version by number, v-number, id start or latest', () => {
    expect(pickVersion(versions, '2', 'weather').number).toBe(2n);
    expect(pickVersion(versions, 'v1', 'weather').number).toBe(1n);
    expect(pickVersion(versions, 'c3f0', 'weather').number).toBe(3n);
    expect(pickVersion(versions, 'latest', 'weather').number).toBe(3n);
  });

  it('refuses a start of an id that matches two versions, and names the versions for an unknown one', () => {
    expect(() => pickVersion(versions, 'ab', 'weather')).toThrow(/no version "ab" \(its versions: v3 c3f00d/);
    // 'ab1' and 'ab9' share 'ab' but four digits are needed: 'ab1' is no number either.
    expect(() =>
      pickVersion(
        [version(2, 'abcd1'.padEnd(64, '0')), version(1, 'abcd2'.padEnd(64, '0'))],
        'abcd',
        'weather',
      ),
    ).toThrow('"abcd" matches 2 versions of weather: give more of the id');
    expect(() => pickVersion(versions, '9', 'weather')).toThrow('dataset weather has no version "9"');
  });
});

describe('diffVersions', () => {
  it('names what differs: counts, event times, schema, quality, fields added or dropped, statistics moved', () => {
    const a = version(1, 'a'.repeat(64));
    const b = version(2, 'b'.repeat(64), {
      schemaMinor: 1,
      quality: { recordCount: 100n, fields: [], volume: [], anomalies: ['source cli: spike (previous 10)'] },
    });
    b.fields[0] = { ...b.fields[0], mean: 14.25 } as (typeof b.fields)[0];
    b.fields.splice(1, 1);
    b.fields.push({ ...a.fields[0], field: 'wind' } as (typeof b.fields)[0]);
    const diff = diffVersions(a, b);
    expect(diff.a).toEqual({ number: 1, id: 'a'.repeat(64) });
    expect(diff.version).toEqual([
      { subject: 'version', what: 'records', a: '100', b: '200' },
      { subject: 'version', what: 'event times', a: '2012-01-01..2012-04-10', b: '2012-01-01..2012-07-19' },
      { subject: 'version', what: 'schema', a: 'v1.0', b: 'v1.1' },
      { subject: 'version', what: 'quality anomalies', a: 'none', b: 'source cli: spike (previous 10)' },
    ]);
    expect(diff.fields).toEqual([
      { subject: 'temp', what: 'mean', a: '12.5', b: '14.25' },
      { subject: 'weather', what: 'field', a: 'present', b: 'absent' },
      { subject: 'wind', what: 'field', a: 'absent', b: 'present' },
    ]);
  });

  it('finds nothing between a version and itself', () => {
    const a = version(1, 'a'.repeat(64));
    expect(diffVersions(a, a)).toMatchObject({ version: [], fields: [] });
  });
});
