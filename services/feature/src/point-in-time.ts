import { Aggregation } from '@ballast/contracts/ballast/feature/v1/feature_pb.js';
import { DAY_MS } from './definition.js';

/**
 * Point-in-time lookups over one entity's rows, sorted by event time. A row at time t may
 * read only rows whose event time is at or before t: every function here looks backwards
 * from the row (or, for the label alone, forwards). Values are NaN where null. Records that
 * share the row's event time count as at or before it, whichever of them the row is; where
 * one record must be picked among several at the same time, the one ingested last wins.
 */

/** The last index holding the same event time as row i (rows with equal times are adjacent). */
function lastAtSameTime(times: Float64Array, i: number): number {
  let k = i;
  while (k + 1 < times.length && times[k + 1] === times[i]) k++;
  return k;
}
export interface EntityRows {
  /** Event times (ms), ascending; equal times (two events at once) in ingest order. */
  times: Float64Array;
  /** Record index of each row in the table. */
  records: Int32Array;
}

/** As of `days` before each row, on `on` (a timestamp column; the event time when null). */
export function lagColumn(
  rows: EntityRows,
  field: readonly number[],
  days: number,
  on: readonly number[] | null,
  out: Float64Array,
  offset: number,
): void {
  const n = rows.times.length;
  const back = days * DAY_MS;
  if (!on) {
    let j = -1;
    let hi = -1;
    for (let i = 0; i < n; i++) {
      if (hi < i) hi = lastAtSameTime(rows.times, i);
      const target = (rows.times[i] as number) - back;
      while (j + 1 <= hi && (rows.times[j + 1] as number) <= target) j++;
      out[offset + i] = j >= 0 ? (field[rows.records[j] as number] as number) : Number.NaN;
    }
    return;
  }
  let hi = -1;
  for (let i = 0; i < n; i++) {
    if (hi < i) hi = lastAtSameTime(rows.times, i);
    const at = on[rows.records[i] as number] as number;
    const target = at - back;
    let best = -1;
    let bestAt = Number.NEGATIVE_INFINITY;
    // Only rows with event time <= the row's are candidates; scanning down, the first of
    // equal `on` values seen is the one ingested last.
    for (let j = hi; j >= 0; j--) {
      const t = on[rows.records[j] as number] as number;
      if (t <= target && t > bestAt) {
        best = j;
        bestAt = t;
      }
    }
    out[offset + i] = best >= 0 ? (field[rows.records[best] as number] as number) : Number.NaN;
  }
}

/** An aggregate over the rows with event time in (t - windowDays, t]. */
export function rollingColumn(
  rows: EntityRows,
  field: readonly number[],
  aggregation: Aggregation,
  windowDays: number,
  out: Float64Array,
  offset: number,
): void {
  const n = rows.times.length;
  const span = windowDays * DAY_MS;
  let lo = 0;
  let hi = -1;
  let sum = 0;
  let sumSq = 0;
  let count = 0;
  for (let i = 0; i < n; i++) {
    const t = rows.times[i] as number;
    // Every record at time t is in the window, the ones after row i as well.
    while (hi + 1 < n && (rows.times[hi + 1] as number) <= t) {
      hi++;
      const x = field[rows.records[hi] as number] as number;
      if (!Number.isNaN(x)) {
        sum += x;
        sumSq += x * x;
        count++;
      }
    }
    while ((rows.times[lo] as number) <= t - span) {
      const y = field[rows.records[lo] as number] as number;
      if (!Number.isNaN(y)) {
        sum -= y;
        sumSq -= y * y;
        count--;
      }
      lo++;
    }
    let value = Number.NaN;
    switch (aggregation) {
      case Aggregation.COUNT:
        value = count;
        break;
      case Aggregation.SUM:
        value = count > 0 ? sum : Number.NaN;
        break;
      case Aggregation.MEAN:
        value = count > 0 ? sum / count : Number.NaN;
        break;
      case Aggregation.STD:
        value = count > 1 ? Math.sqrt(Math.max(0, (sumSq - (sum * sum) / count) / (count - 1))) : Number.NaN;
        break;
      case Aggregation.MIN:
      case Aggregation.MAX: {
        const max = aggregation === Aggregation.MAX;
        for (let j = lo; j <= hi; j++) {
          const y = field[rows.records[j] as number] as number;
          if (!Number.isNaN(y) && (Number.isNaN(value) || (max ? y > value : y < value))) value = y;
        }
        break;
      }
    }
    out[offset + i] = value;
  }
}

/**
 * The label: `field` on the row exactly `leadDays` days later (0: the row itself; of
 * several records at that later time, the one ingested last).
 */
export function labelColumn(
  rows: EntityRows,
  field: readonly number[],
  leadDays: number,
  out: Float64Array,
  offset: number,
): void {
  const n = rows.times.length;
  const ahead = leadDays * DAY_MS;
  if (leadDays === 0) {
    for (let i = 0; i < n; i++) out[offset + i] = field[rows.records[i] as number] as number;
    return;
  }
  let j = 0;
  for (let i = 0; i < n; i++) {
    const target = (rows.times[i] as number) + ahead;
    while (j < n && (rows.times[j] as number) < target) j++;
    out[offset + i] =
      j < n && rows.times[j] === target
        ? (field[rows.records[lastAtSameTime(rows.times, j)] as number] as number)
        : Number.NaN;
  }
}
