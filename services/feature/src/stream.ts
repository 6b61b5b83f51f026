import type { CompiledFeature, CompiledView } from './definition.js';
import { yieldToLoop } from './event-loop.js';
import type { OnlineStore } from './online.js';
import { WRITE_CHUNK } from './online.js';
import { type RecordSource, RecordTable } from './records.js';
import type { FeatureStore } from './store.js';
import {
  computeRowsSliced,
  type Fit,
  type FitPlan,
  rankVocabulary,
  rowKeys,
  standardization,
} from './transforms.js';

/**
 * Materialization in bounded memory, whatever the version's size: the records are staged in
 * the offline store as they are read (stage.ts), then read back in row order a chunk of
 * whole entity groups at a time, computed with the same engine as the in-memory path
 * (transforms.ts) and written chunk by chunk. Fits that need every row come from passes of
 * their own: vocabularies are counted while staging (counts do not depend on order);
 * a standardization sums its input in row order over a pass of its own (one pass per level
 * of standardizations of standardizations), so its mean and std are bit for bit those of
 * the in-memory path. The rows and the materialization commit in one transaction; the
 * online vectors follow it, as in the in-memory path.
 */

/**
 * The longest the compute holds the loop before yielding (plus one step, a few ms): at 20 ms
 * a slice plus a step reached 48 ms, most of the loop's p99 delay while materializing.
 */
const COMPUTE_SLICE_MS = 5;

export interface StreamResult {
  records: number;
  rows: number;
  entities: number;
  onlineWritten: number;
  skipped: number;
}

export interface StreamDeps {
  store: FeatureStore;
  online: OnlineStore;
  source: RecordSource;
}

/** The features `names` are computed from, themselves included. */
export function inputsOf(view: CompiledView, names: Iterable<string>): Set<string> {
  const byName = new Map(view.features.map((f) => [f.name, f]));
  const out = new Set<string>();
  const visit = (name: string) => {
    const feature = byName.get(name);
    if (!feature || out.has(name)) return;
    out.add(name);
    if (feature.kind === 'ratio') {
      visit(feature.numerator);
      visit(feature.denominator);
    }
    if (feature.kind === 'standardize') visit(feature.input);
  };
  for (const name of names) visit(name);
  return out;
}

/** How many standardizations each standardization's input goes through first (0: none). */
export function standardizeLevels(view: CompiledView): Map<string, number> {
  const depth = new Map<string, number>();
  const levels = new Map<string, number>();
  const of = (name: string) => depth.get(name) ?? 0;
  for (const feature of view.features as CompiledFeature[]) {
    if (feature.kind === 'ratio')
      depth.set(feature.name, Math.max(of(feature.numerator), of(feature.denominator)));
    if (feature.kind === 'standardize') {
      levels.set(feature.name, of(feature.input));
      depth.set(feature.name, of(feature.input) + 1);
    }
  }
  return levels;
}

export async function materializeStreaming(
  deps: StreamDeps,
  view: CompiledView,
  datasetVersion: string,
  options: {
    chunkRecords: number;
    progress: (fraction: number) => unknown;
    signal?: AbortSignal | undefined;
  },
): Promise<StreamResult> {
  const { chunkRecords, signal } = options;
  let reported = 0;
  const progress = async (fraction: number) => {
    // The job's progress is a Redis write: once per percent at most.
    if (fraction < 1 && fraction - reported < 0.01) return;
    reported = fraction;
    await options.progress(fraction);
  };
  const stage = await deps.store.stage(view);
  let failed = true;
  try {
    // 1. Stage the records as they come, counting the encodings' categories.
    const encodings = view.features.filter((f) => f.kind === 'encoding');
    const counts = new Map(encodings.map((f) => [f.name, new Map<string, number>()]));
    let records = 0;
    let skipped = 0;
    for await (const batch of deps.source.read(view.dataset, datasetVersion, signal)) {
      signal?.throwIfAborted();
      // The page was read (decoded, for ingest's) in this turn.
      await yieldToLoop();
      const table = new RecordTable(view.fields);
      table.append(batch);
      const keys = rowKeys(view, table);
      await yieldToLoop();
      await stage.append(table, keys, records);
      const time = table.numeric(view.eventTimeField);
      for (const feature of encodings) {
        const column = table.text(feature.field);
        const count = counts.get(feature.name) as Map<string, number>;
        for (let i = 0; i < table.length; i++) {
          const v = column[i] ?? null;
          const t = time[i] as number;
          if (keys[i] !== null && v !== null && t >= view.fitWindow.start && t < view.fitWindow.end) {
            count.set(v, (count.get(v) ?? 0) + 1);
          }
        }
      }
      for (const key of keys) if (key === null) skipped++;
      records += table.length;
      await yieldToLoop();
    }
    await stage.index();
    const total = Math.max(1, records - skipped);
    await progress(0.4);

    const fit: Fit = { vocabularies: {}, standardization: {} };
    for (const feature of encodings) {
      fit.vocabularies[feature.name] = rankVocabulary(
        counts.get(feature.name) as Map<string, number>,
        feature.maxCategories,
      );
    }
    // 2. One pass per level of standardizations, summing in row order.
    const levels = standardizeLevels(view);
    const passes = levels.size ? Math.max(...levels.values()) + 2 : 1;
    for (let level = 0; level < passes - 1; level++) {
      const summed = [...levels].filter(([, at]) => at === level).map(([name]) => name);
      const plan: FitPlan = { fit, sums: new Map(), only: inputsOf(view, summed) };
      let done = 0;
      for await (const chunk of stage.chunks(undefined, chunkRecords, signal)) {
        // The page was parsed and decoded in this turn of the loop: let others run first.
        await yieldToLoop();
        await computeRowsSliced(view, chunk.table, COMPUTE_SLICE_MS, plan);
        done += chunk.table.length;
        await progress(0.4 + (0.5 * (level + done / total)) / passes);
        await yieldToLoop();
      }
      for (const [name, at] of levels) {
        if (at === level)
          fit.standardization[name] = standardization(plan.sums.get(name) ?? { sum: 0, sumSq: 0, n: 0 });
      }
    }

    // 3. The rows, in one transaction, each group's latest vector kept for the online store.
    let rows = 0;
    let entities = 0;
    await deps.store.replaceRows(view, datasetVersion, async (tx, insert) => {
      for await (const chunk of stage.chunks(tx, chunkRecords, signal)) {
        await yieldToLoop();
        const computed = await computeRowsSliced(view, chunk.table, COMPUTE_SLICE_MS, {
          fit,
          sums: new Map(),
        });
        // Positions in the chunk -> positions in the version (ingest order).
        for (let i = 0; i < computed.count; i++) {
          computed.records[i] = chunk.records[computed.records[i] as number] as number;
        }
        await insert(computed);
        await stage.putLatest(tx, datasetVersion, computed);
        rows += computed.count;
        entities += computed.groupStarts.length - 1;
        await progress(0.4 + (0.5 * (passes - 1 + rows / total)) / passes);
        await yieldToLoop();
      }
      return { records, entities, skipped, fit };
    });
    await progress(0.9);

    // 4. Online vectors, once the rows are committed.
    let onlineWritten = 0;
    for await (const page of stage.latest(WRITE_CHUNK, signal)) {
      onlineWritten += await deps.online.writePacked(view.version, page.entities, page.vectors);
    }
    await progress(1);
    failed = false;
    return { records, rows, entities, onlineWritten, skipped };
  } finally {
    // A failed drop must not hide the error that ended the run (the table is then left over).
    await stage.drop().catch((err) => {
      if (!failed) throw err;
    });
  }
}
