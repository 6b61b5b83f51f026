import type { MonitorService } from '@ballast/contracts/ballast/monitor/v1/monitor_pb.js';
import { invalidArgument, notFound, type ServiceImpl } from '@ballast/grpc-kit';
import { type Timestamp, timestampMs } from '@bufbuild/protobuf/wkt';
import { recordActuals } from './actuals.js';
import type { MonitorDeps } from './deps.js';
import { buildBaseline, durationMs, sameLayout, windowMs } from './model-baseline.js';
import { operationsReport } from './operations.js';
import { driftReport, errorWindow } from './report.js';
import * as store from './store.js';
import { addSums, type ErrorKey, type ErrorSums } from './store.js';

const MAX_ACTUALS = 10_000;
const MAX_DRIFT_WINDOWS = 2_000;

function name(field: string, value: string): string {
  const v = value.trim();
  if (!v) throw invalidArgument(field, 'must not be empty');
  if (v.length > 256) throw invalidArgument(field, 'must be at most 256 characters');
  return v;
}

function versionOf(field: string, value: number, allowZero = false): number {
  if (!Number.isInteger(value) || value < (allowZero ? 0 : 1))
    throw invalidArgument(field, allowZero ? 'must be >= 0' : 'must be >= 1');
  return value;
}

const ms = (t: Timestamp | undefined) => (t ? timestampMs(t) : undefined);

/** The monitor's RPC handlers: validate, call the domain modules, shape the answer. */
export function monitorService(deps: MonitorDeps): ServiceImpl<typeof MonitorService> {
  const { sql, baselines, alerts, settings } = deps;
  const requireBaseline = async (model: string, version: number) => {
    const b = await baselines.get(model, version);
    if (!b) throw notFound(`model ${model} version ${version} has no baseline`);
    return b;
  };
  return {
    async setBaseline(req) {
      const baseline = buildBaseline(
        name('model', req.model),
        versionOf('version', req.version),
        req.statistics,
        req.config,
        { windowMs: settings.windowMs },
      );
      // Windows already cut to another length or binned on other edges (e.g. a baseline
      // resolved from lineage before this one was declared) cannot be re-cut: they go.
      const previous = await store.getBaseline(sql(), baseline.model, baseline.version);
      await sql().transaction(async (tx) => {
        if (previous && !sameLayout(previous, baseline))
          await store.dropWindows(tx, baseline.model, baseline.version);
        await store.putBaseline(tx, baseline);
      });
      baselines.set(baseline);
      await alerts.ensureDefaultRule(baseline.model, windowMs(baseline.config));
      return { features: baseline.features };
    },

    async getDrift(req) {
      const modelName = name('model', req.model);
      let version = versionOf('version', req.version, true);
      if (version === 0) {
        version = (await store.newestVersion(sql(), modelName)) ?? 0;
        if (!version) throw notFound(`model ${modelName} has no logged predictions`);
      }
      const model = await requireBaseline(modelName, version);
      const start = ms(req.startTime);
      const end = ms(req.endTime);
      if (start !== undefined && end !== undefined && end <= start)
        throw invalidArgument('end_time', 'must be after start_time');
      // Each window is judged when asked: a range is bounded so an answer stays bounded.
      if (start !== undefined) {
        const last = end ?? (await store.latestWindow(sql(), model.model, model.version)) ?? start;
        if ((last - start) / windowMs(model.config) > MAX_DRIFT_WINDOWS)
          throw invalidArgument('start_time', `the range spans more than ${MAX_DRIFT_WINDOWS} windows`);
      }
      const windows = await store.readWindows(sql(), {
        model: model.model,
        version: model.version,
        start,
        end,
        segment: req.allSegments ? undefined : req.segment,
      });
      return { windows: driftReport(model, windows), version };
    },

    async recordActuals(req) {
      const model = name('model', req.model);
      if (req.actuals.length > MAX_ACTUALS)
        throw invalidArgument('actuals', `at most ${MAX_ACTUALS} per call`);
      const now = Date.now();
      const rows = req.actuals.map((a, i) => {
        if (!a.entityKey) throw invalidArgument(`actuals[${i}].entity_key`, 'must not be empty');
        if (a.entityKey.length > 512)
          throw invalidArgument(`actuals[${i}].entity_key`, 'must be at most 512 characters');
        if (!Number.isFinite(a.value))
          throw invalidArgument(`actuals[${i}].value`, 'must be a finite number');
        return { entityKey: a.entityKey, time: a.time ? timestampMs(a.time) : now, value: a.value };
      });
      const { matched, unmatched, duplicates } = await recordActuals(deps, model, rows);
      return {
        matched: BigInt(matched),
        unmatched: BigInt(unmatched),
        duplicates: BigInt(duplicates),
      };
    },

    async getError(req) {
      const model = name('model', req.model);
      const version = versionOf('version', req.version, true);
      const sums = await store.readErrors(sql(), {
        model,
        version,
        start: ms(req.startTime),
        end: ms(req.endTime),
        segment: req.allSegments ? undefined : req.segment,
      });
      const width = async (v: number) => {
        const b = await baselines.get(model, v);
        return b ? windowMs(b.config) : settings.windowMs;
      };
      if (req.mergeWindows) {
        const merged = new Map<string, { key: ErrorKey; s: ErrorSums; end: number }>();
        for (const [key, s] of sums) {
          const end = key.windowStart + (await width(key.version));
          const m = merged.get(key.segment);
          if (!m) merged.set(key.segment, { key: { ...key, version: 0 }, s: { ...s }, end });
          else {
            m.key.windowStart = Math.min(m.key.windowStart, key.windowStart);
            m.end = Math.max(m.end, end);
            addSums(m.s, s);
          }
        }
        return {
          windows: [...merged.values()]
            .sort((a, b) => (a.key.segment < b.key.segment ? -1 : 1))
            .map((m) => errorWindow(m.key, m.s, m.end - m.key.windowStart)),
        };
      }
      const windows = [];
      for (const [key, s] of sums) windows.push(errorWindow(key, s, await width(key.version)));
      return { windows };
    },

    async putAlertRule(req) {
      return { rule: await alerts.putRule(req.rule) };
    },

    async listAlerts(req) {
      return { alerts: await alerts.list(req.model, req.state) };
    },

    async *watchAlerts(req, ctx) {
      for await (const alert of alerts.watch(req.model, ctx.signal)) yield { alert };
    },

    async getOperations(req) {
      const range = durationMs(req.range, 3_600_000);
      return operationsReport(sql(), deps.operations, req.model.trim(), range);
    },

    async getMonitorStatus() {
      return { counters: await store.readCounters(sql()) };
    },
  };
}
