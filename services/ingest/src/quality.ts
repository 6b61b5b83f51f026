import { VolumeStatus } from '@ballast/contracts/ballast/ingest/v1/ingest_pb.js';
import type { FieldDef, StoredSchema } from './schema.js';
import type { FieldQualityCounts } from './validation.js';
import { parseTimestamp } from './validation.js';

/**
 * Data-quality reports: per batch (from the validator's counts) and per version (null
 * rates, out-of-range counts, new categorical values, and volume per source and segment
 * against the previous version, where a warehouse that stopped sending shows as MISSING).
 */

const MAX_DISTINCT = 10_000;
const TOP_VALUES = 10;
const NEW_VALUES_SHOWN = 20;

export function batchQuality(rowCount: number, counts: FieldQualityCounts[]) {
  return {
    recordCount: BigInt(rowCount),
    fields: counts.map((c) => ({
      field: c.field,
      count: BigInt(c.count),
      nullCount: BigInt(c.nullCount),
      nullRate: c.count === 0 ? 0 : c.nullCount / c.count,
      outOfRangeCount: BigInt(c.outOfRange),
      newValues: c.newValues,
      newValueCount: BigInt(c.newValueCount),
      invalidCount: BigInt(c.invalid),
    })),
  };
}

/** What a version keeps for the next one to compare against. */
export interface VersionStats {
  /** Records the version added, per source. */
  sources: Record<string, number>;
  /** Records the version added, per segment field and value. */
  segments: Record<string, Record<string, number>>;
  /** Categorical values seen so far, per field (up to MAX_DISTINCT). */
  values: Record<string, string[]>;
}

export const EMPTY_STATS: VersionStats = { sources: {}, segments: {}, values: {} };

function volumeStatus(count: number, previous: number | undefined, hasPrevious: boolean): VolumeStatus {
  if (!hasPrevious) return VolumeStatus.OK;
  if (previous === undefined || previous === 0) return count > 0 ? VolumeStatus.NEW : VolumeStatus.OK;
  if (count === 0) return VolumeStatus.MISSING;
  if (count < previous / 2) return VolumeStatus.DROP;
  if (count > previous * 2) return VolumeStatus.SPIKE;
  return VolumeStatus.OK;
}

const STATUS_WORDS: Partial<Record<VolumeStatus, string>> = {
  [VolumeStatus.MISSING]: 'missing (sent nothing)',
  [VolumeStatus.DROP]: 'volume dropped below half',
  [VolumeStatus.SPIKE]: 'volume more than doubled',
  [VolumeStatus.NEW]: 'new',
};

export function volumeChecks(
  dimension: string,
  current: Record<string, number>,
  previous: Record<string, number>,
  hasPrevious: boolean,
) {
  const keys = [...new Set([...Object.keys(previous), ...Object.keys(current)])].sort();
  const checks = keys.map((key) => {
    const count = current[key] ?? 0;
    const prev = previous[key];
    return {
      dimension,
      key,
      count: BigInt(count),
      previousCount: BigInt(prev ?? 0),
      status: volumeStatus(count, prev, hasPrevious),
    };
  });
  const anomalies = checks
    .filter((c) => c.status !== VolumeStatus.OK)
    .map(
      (c) =>
        `${dimension === 'source' ? 'source' : 'segment'} ${dimension === 'source' ? c.key : `${dimension}=${c.key}`}: ${STATUS_WORDS[c.status]} (${c.count} now, ${c.previousCount} in the previous version)`,
    );
  return { checks, anomalies };
}

class FieldAccumulator {
  count = 0;
  nullCount = 0;
  newNulls = 0;
  newCount = 0;
  min = Number.POSITIVE_INFINITY;
  max = Number.NEGATIVE_INFINITY;
  mean = 0;
  m2 = 0;
  minTime: string | undefined;
  maxTime: string | undefined;
  minTimeMs = Number.POSITIVE_INFINITY;
  maxTimeMs = Number.NEGATIVE_INFINITY;
  distinct = new Map<string, number>();
  overflow = false;
  newValues = new Set<string>();

  constructor(
    readonly field: FieldDef,
    private readonly known: ReadonlySet<string> | undefined,
  ) {}

  add(value: unknown, isNew: boolean) {
    if (isNew) this.newCount++;
    if (value === null || value === undefined) {
      this.nullCount++;
      if (isNew) this.newNulls++;
      return;
    }
    this.count++;
    switch (this.field.type) {
      case 'float':
      case 'int': {
        const x = value as number;
        if (x < this.min) this.min = x;
        if (x > this.max) this.max = x;
        const delta = x - this.mean;
        this.mean += delta / this.count;
        this.m2 += delta * (x - this.mean);
        return;
      }
      case 'timestamp': {
        const ms = Date.parse(value as string);
        if (ms < this.minTimeMs) {
          this.minTimeMs = ms;
          this.minTime = value as string;
        }
        if (ms > this.maxTimeMs) {
          this.maxTimeMs = ms;
          this.maxTime = value as string;
        }
        return;
      }
      default: {
        const key = String(value);
        const seen = this.distinct.get(key);
        if (seen !== undefined) this.distinct.set(key, seen + 1);
        else if (this.distinct.size < MAX_DISTINCT) this.distinct.set(key, 1);
        else this.overflow = true;
        if (isNew && this.field.type === 'categorical' && this.known && !this.known.has(key)) {
          this.newValues.add(key);
        }
      }
    }
  }

  summary() {
    const numeric = this.field.type === 'float' || this.field.type === 'int';
    const top = [...this.distinct].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, TOP_VALUES);
    return {
      field: this.field.name,
      count: BigInt(this.count),
      nullCount: BigInt(this.nullCount),
      ...(numeric && this.count > 0
        ? { min: this.min, max: this.max, mean: this.mean, stddev: Math.sqrt(this.m2 / this.count) }
        : {}),
      distinctCount: BigInt(this.distinct.size),
      topValues: top.map(([value, count]) => ({ value, count: BigInt(count) })),
      ...(this.minTime ? { minTime: parseTimestamp(this.minTime) } : {}),
      ...(this.maxTime ? { maxTime: parseTimestamp(this.maxTime) } : {}),
    };
  }
}

/**
 * Accumulates a version's summaries from its records, in one pass: per-field summaries over
 * every record, and quality over the records added since the previous version.
 */
export class VersionAccumulator {
  private readonly fields: FieldAccumulator[];
  private readonly sources: Record<string, number> = {};
  private readonly segments: Record<string, Record<string, number>> = {};
  private added = 0;

  constructor(
    private readonly schema: StoredSchema,
    private readonly previous: VersionStats | undefined,
  ) {
    this.fields = schema.fields.map((f) => {
      const seen = previous?.values[f.name];
      const known =
        f.type === 'categorical' && (previous || f.vocabulary.length > 0)
          ? new Set([...f.vocabulary, ...(seen ?? [])])
          : undefined;
      return new FieldAccumulator(f, known);
    });
    for (const s of schema.segmentFields) this.segments[s] = {};
  }

  add(source: string, data: Record<string, unknown>, isNew: boolean) {
    for (const acc of this.fields) acc.add(data[acc.field.name], isNew);
    if (!isNew) return;
    this.added++;
    this.sources[source] = (this.sources[source] ?? 0) + 1;
    for (const s of this.schema.segmentFields) {
      const key = String(data[s] ?? 'null');
      const counts = this.segments[s] as Record<string, number>;
      counts[key] = (counts[key] ?? 0) + 1;
    }
  }

  finish(quarantinedViolations: { field: string; rule: string }[][]) {
    const hasPrevious = this.previous !== undefined;
    const previous = this.previous ?? EMPTY_STATS;
    const outOfRange = new Map<string, number>();
    const invalid = new Map<string, number>();
    for (const list of quarantinedViolations) {
      for (const v of list) {
        invalid.set(v.field, (invalid.get(v.field) ?? 0) + 1);
        if (v.rule === 'min' || v.rule === 'max' || v.rule === 'range') {
          outOfRange.set(v.field, (outOfRange.get(v.field) ?? 0) + 1);
        }
      }
    }
    const volume = [volumeChecks('source', this.sources, previous.sources, hasPrevious)];
    for (const s of this.schema.segmentFields) {
      volume.push(volumeChecks(s, this.segments[s] ?? {}, previous.segments[s] ?? {}, hasPrevious));
    }
    const quality = {
      recordCount: BigInt(this.added),
      fields: this.fields.map((acc) => {
        const newValues = [...acc.newValues];
        return {
          field: acc.field.name,
          count: BigInt(acc.newCount),
          nullCount: BigInt(acc.newNulls),
          nullRate: acc.newCount === 0 ? 0 : acc.newNulls / acc.newCount,
          outOfRangeCount: BigInt(outOfRange.get(acc.field.name) ?? 0),
          newValues: newValues.slice(0, NEW_VALUES_SHOWN),
          newValueCount: BigInt(newValues.length),
          invalidCount: BigInt(invalid.get(acc.field.name) ?? 0),
        };
      }),
      volume: volume.flatMap((v) => v.checks),
      anomalies: volume.flatMap((v) => v.anomalies),
    };
    const values: Record<string, string[]> = {};
    for (const acc of this.fields) {
      if (acc.field.type === 'categorical') values[acc.field.name] = [...acc.distinct.keys()];
    }
    const stats: VersionStats = { sources: this.sources, segments: this.segments, values };
    return { fields: this.fields.map((acc) => acc.summary()), quality, stats, added: this.added };
  }
}
