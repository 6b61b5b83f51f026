import { CalendarPart } from '@ballast/contracts/ballast/feature/v1/feature_pb.js';
import type { CompiledFeature, CompiledView } from './definition.js';
import { yieldToLoop } from './event-loop.js';
import { type EntityRows, labelColumn, lagColumn, rollingColumn } from './point-in-time.js';
import type { RecordTable } from './records.js';

/**
 * The transform engine: a view's rows from a table of records. One row per record with an
 * entity and an event time: two events of one entity at the same time are two rows (a
 * training set must not lose either), ordered by entity key, event time, then ingest order
 * (the record's position in the dataset version). That order is the tie-break everywhere
 * one value must be chosen: the online store's latest vector, a lag or a label landing on
 * a time with several records, is the one ingested last. Features are computed a column at
 * a time; encodings and standardization learn their parameters on the view's fit window.
 */

export interface Fit {
  /** Per encoding feature: its vocabulary, sorted. */
  vocabularies: Record<string, string[]>;
  /** Per standardized feature: the fit window's mean, std (population) and count. */
  standardization: Record<string, { mean: number; std: number; count: number }>;
}

export interface FeatureRows {
  featureNames: readonly string[];
  count: number;
  /** Canonical entity key per row: the JSON array of its entity field values. */
  entityKeys: string[];
  /** The JSON array of the row's segment field values. */
  segments: string[];
  times: Float64Array;
  labels: Float64Array;
  /** Row-major, count x featureNames.length; NaN is null. */
  values: Float64Array;
  /** Per row: the record's position in the dataset version (ingest order). */
  records: Int32Array;
  /** Entity g's rows are [groupStarts[g], groupStarts[g + 1]). */
  groupStarts: number[];
  /** Records left out because an entity field or the event time was null. */
  skipped: number;
  fit: Fit;
}

export function entityKey(values: readonly string[]): string {
  return JSON.stringify(values);
}

interface Layout {
  groups: EntityRows[];
  groupKeys: string[];
  starts: number[];
  count: number;
}

/** Records between checks of the time slice (see sliced). */
const SLICE_ROWS = 8_192;

function* layout(view: CompiledView, table: RecordTable): Generator<void, Layout & { skipped: number }> {
  const time = table.numeric(view.eventTimeField);
  const keyColumns = view.entityFields.map((f) => table.text(f));
  const byEntity = new Map<string, number[]>();
  let skipped = 0;
  for (let i = 0; i < table.length; i++) {
    if (i % SLICE_ROWS === 0) yield;
    const parts: string[] = [];
    let ok = !Number.isNaN(time[i] as number);
    for (const column of keyColumns) {
      const v = column[i] ?? null;
      if (v === null) ok = false;
      else parts.push(v);
    }
    if (!ok) {
      skipped++;
      continue;
    }
    const key = entityKey(parts);
    const list = byEntity.get(key);
    if (list) list.push(i);
    else byEntity.set(key, [i]);
  }
  const groupKeys = [...byEntity.keys()].sort();
  const groups: EntityRows[] = [];
  const starts: number[] = [];
  let count = 0;
  for (const key of groupKeys) {
    if (groups.length % 256 === 0) yield;
    const records = (byEntity.get(key) as number[]).sort(
      (a, b) => (time[a] as number) - (time[b] as number) || a - b,
    );
    starts.push(count);
    count += records.length;
    groups.push({
      times: Float64Array.from(records, (r) => time[r] as number),
      records: Int32Array.from(records),
    });
  }
  starts.push(count);
  return { groups, groupKeys, starts, count, skipped };
}

const QUERY_DAY = (ms: number) => new Date(ms);

function calendarValue(part: CalendarPart, ms: number, holidays: ReadonlySet<string>): number {
  if (Number.isNaN(ms)) return Number.NaN;
  const d = QUERY_DAY(ms);
  switch (part) {
    case CalendarPart.DAY_OF_WEEK:
      return d.getUTCDay();
    case CalendarPart.DAY_OF_MONTH:
      return d.getUTCDate();
    case CalendarPart.MONTH:
      return d.getUTCMonth() + 1;
    case CalendarPart.DAY_OF_YEAR:
      return Math.floor((ms - Date.UTC(d.getUTCFullYear(), 0, 1)) / 86_400_000) + 1;
    case CalendarPart.IS_HOLIDAY:
      return holidays.has(d.toISOString().slice(0, 10)) ? 1 : 0;
    default:
      return Number.NaN;
  }
}

/**
 * Fits learnt before a pass over part of the rows (streaming materialization, stream.ts):
 * the vocabularies and the standardizations already known are used as they are; a
 * standardization not known yet accumulates into `sums`, which the caller carries from one
 * part to the next in row order, so the sums come out bit for bit as over all rows at once.
 */
export interface FitPlan {
  fit: Fit;
  sums: Map<string, StandardSums>;
  /**
   * A pass that only sums: computes just these features (the standardizations summed and
   * their inputs); the others, the label and the segments are left empty.
   */
  only?: ReadonlySet<string>;
}

/** A standardization's running sums over the fit window's non-null inputs. */
export interface StandardSums {
  sum: number;
  sumSq: number;
  n: number;
}

export function standardization(s: StandardSums): { mean: number; std: number; count: number } {
  const mean = s.n > 0 ? s.sum / s.n : Number.NaN;
  const std = s.n > 0 ? Math.sqrt(Math.max(0, s.sumSq / s.n - mean * mean)) : Number.NaN;
  return { mean, std, count: s.n };
}

/** Each record's canonical entity key, or null where it is skipped (a null entity field or event time). */
export function rowKeys(view: CompiledView, table: RecordTable): (string | null)[] {
  const time = table.numeric(view.eventTimeField);
  const keyColumns = view.entityFields.map((f) => table.text(f));
  const out: (string | null)[] = new Array(table.length);
  for (let i = 0; i < table.length; i++) {
    const parts: string[] = [];
    let ok = !Number.isNaN(time[i] as number);
    for (const column of keyColumns) {
      const v = column[i] ?? null;
      if (v === null) ok = false;
      else parts.push(v);
    }
    out[i] = ok ? entityKey(parts) : null;
  }
  return out;
}

/** A vocabulary from category counts: the `max` most frequent (ties by value), sorted. */
export function rankVocabulary(counts: ReadonlyMap<string, number>, max: number): string[] {
  const ranked = [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return ranked
    .slice(0, max > 0 ? max : undefined)
    .map(([v]) => v)
    .sort();
}

function vocabulary(
  values: readonly (string | null)[],
  inFit: (row: number) => boolean,
  max: number,
): string[] {
  const counts = new Map<string, number>();
  values.forEach((v, row) => {
    if (v !== null && inFit(row)) counts.set(v, (counts.get(v) ?? 0) + 1);
  });
  return rankVocabulary(counts, max);
}

/** The rows, computed in one go (tests, small tables). */
export function computeRows(view: CompiledView, table: RecordTable): FeatureRows {
  const steps = computeSteps(view, table);
  for (;;) {
    const step = steps.next();
    if (step.done) return step.value;
  }
}

/**
 * The rows, computed in slices of at most `sliceMs` with the event loop free between them,
 * so a large version never holds the process (RPCs, health, the worker's lock renewals).
 */
export async function computeRowsSliced(
  view: CompiledView,
  table: RecordTable,
  sliceMs = 20,
  plan?: FitPlan,
): Promise<FeatureRows> {
  const steps = computeSteps(view, table, plan);
  let sliceStart = performance.now();
  for (;;) {
    const step = steps.next();
    if (step.done) return step.value;
    if (performance.now() - sliceStart >= sliceMs) {
      await yieldToLoop();
      sliceStart = performance.now();
    }
  }
}

/** computeRows as a generator: it yields at points where pausing is safe (between groups, features, slices of rows). */
function* computeSteps(view: CompiledView, table: RecordTable, plan?: FitPlan): Generator<void, FeatureRows> {
  const { groups, groupKeys, starts, count, skipped } = yield* layout(view, table);
  const width = view.featureNames.length;
  const values = new Float64Array(count * width);
  const times = new Float64Array(count);
  const rowRecord = new Int32Array(count);
  groups.forEach((g, k) => {
    times.set(g.times, starts[k]);
    rowRecord.set(g.records, starts[k]);
  });
  const inFit = (row: number) => {
    const t = times[row] as number;
    return t >= view.fitWindow.start && t < view.fitWindow.end;
  };
  const perRow = <T>(column: readonly T[]) => Array.from(rowRecord, (r) => column[r] as T);

  const labels = new Float64Array(count);
  const labelField = table.numeric(view.label.field);
  for (const [k, g] of groups.entries()) {
    if (plan?.only) break;
    if (k % 256 === 0) yield;
    labelColumn(g, labelField, view.label.leadDays, labels, starts[k] as number);
  }

  const fit: Fit = plan?.fit ?? { vocabularies: {}, standardization: {} };
  const single = new Map<string, Float64Array>();
  let col = 0;
  const scratch = new Float64Array(count);
  const emit = (column: Float64Array, name?: string) => {
    for (let i = 0; i < count; i++) values[i * width + col] = column[i] as number;
    if (name) single.set(name, Float64Array.from(column));
    col++;
  };
  function* compute(feature: CompiledFeature): Generator<void, void> {
    switch (feature.kind) {
      case 'raw': {
        const field = table.numeric(feature.field);
        for (let i = 0; i < count; i++) scratch[i] = field[rowRecord[i] as number] as number;
        return emit(scratch, feature.name);
      }
      case 'lag': {
        const field = table.numeric(feature.field);
        const on = feature.timeField === view.eventTimeField ? null : table.numeric(feature.timeField);
        for (const [k, g] of groups.entries()) {
          if (k % 256 === 0) yield;
          lagColumn(g, field, feature.days, on, scratch, starts[k] as number);
        }
        return emit(scratch, feature.name);
      }
      case 'rolling': {
        const field = table.numeric(feature.field);
        for (const [k, g] of groups.entries()) {
          if (k % 256 === 0) yield;
          rollingColumn(g, field, feature.aggregation, feature.windowDays, scratch, starts[k] as number);
        }
        return emit(scratch, feature.name);
      }
      case 'calendar': {
        const field = table.numeric(feature.timeField);
        for (let i = 0; i < count; i++) {
          scratch[i] = calendarValue(feature.part, field[rowRecord[i] as number] as number, feature.holidays);
        }
        return emit(scratch, feature.name);
      }
      case 'ratio': {
        const num = single.get(feature.numerator) as Float64Array;
        const den = single.get(feature.denominator) as Float64Array;
        for (let i = 0; i < count; i++) {
          const d = den[i] as number;
          scratch[i] = d === 0 ? Number.NaN : (num[i] as number) / d;
        }
        return emit(scratch, feature.name);
      }
      case 'encoding': {
        const column = perRow(table.text(feature.field));
        const known = plan?.fit.vocabularies[feature.name];
        const vocab = known ?? vocabulary(column, inFit, feature.maxCategories);
        fit.vocabularies[feature.name] = vocab;
        const index = new Map(vocab.map((v, k) => [v, k]));
        if (!feature.oneHot) {
          for (let i = 0; i < count; i++) {
            const v = column[i] ?? null;
            scratch[i] = v === null ? Number.NaN : (index.get(v) ?? vocab.length);
          }
          return emit(scratch, feature.name);
        }
        for (let k = 0; k < feature.maxCategories; k++) {
          for (let i = 0; i < count; i++) {
            const v = column[i] ?? null;
            scratch[i] = v === null ? Number.NaN : index.get(v) === k ? 1 : 0;
          }
          emit(scratch);
          yield;
        }
        return;
      }
      case 'standardize': {
        const input = single.get(feature.input) as Float64Array;
        let params = plan?.fit.standardization[feature.name];
        if (!params) {
          // Continues the sums of earlier parts (a plan's), in row order.
          const sums = plan?.sums.get(feature.name) ?? { sum: 0, sumSq: 0, n: 0 };
          let { sum, sumSq, n } = sums;
          for (let i = 0; i < count; i++) {
            const x = input[i] as number;
            if (!Number.isNaN(x) && inFit(i)) {
              sum += x;
              sumSq += x * x;
              n++;
            }
          }
          Object.assign(sums, { sum, sumSq, n });
          params = standardization(sums);
          if (plan) plan.sums.set(feature.name, sums);
          else fit.standardization[feature.name] = params;
        }
        const { mean, std } = params;
        for (let i = 0; i < count; i++) {
          const centred = (input[i] as number) - mean;
          scratch[i] = std > 0 ? centred / std : centred;
        }
        return emit(scratch, feature.name);
      }
    }
  }
  for (const feature of view.features) {
    yield;
    if (!plan?.only || plan.only.has(feature.name)) yield* compute(feature);
    else col += feature.kind === 'encoding' && feature.oneHot ? feature.maxCategories : 1;
  }

  const entityKeys: string[] = new Array(count);
  groups.forEach((g, k) => {
    entityKeys.fill(groupKeys[k] as string, starts[k], (starts[k] as number) + g.times.length);
  });
  const segmentColumns = view.segmentFields.map((f) => table.text(f));
  const segments: string[] = new Array(count);
  for (let i = 0; i < count && !plan?.only; i++) {
    if (i % SLICE_ROWS === 0) yield;
    const r = rowRecord[i] as number;
    segments[i] = JSON.stringify(segmentColumns.map((c) => c[r] ?? null));
  }
  return {
    featureNames: view.featureNames,
    count,
    entityKeys,
    segments,
    times,
    labels,
    values,
    records: rowRecord,
    groupStarts: starts,
    skipped,
    fit,
  };
}
