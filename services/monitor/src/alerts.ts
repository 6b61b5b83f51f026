import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import {
  type Alert,
  AlertMetric,
  type AlertRule,
  AlertRuleSchema,
  AlertSchema,
  AlertState,
} from '@ballast/contracts/ballast/monitor/v1/monitor_pb.js';
import { invalidArgument } from '@ballast/grpc-kit';
import type { Sql } from '@ballast/storage';
import { create, fromJson, type JsonValue, toJson } from '@bufbuild/protobuf';
import { durationFromMs, timestampFromMs, timestampMs } from '@bufbuild/protobuf/wkt';
import type { MonitorMetrics } from './metrics.js';
import { durationMs, type ModelBaseline, windowMs } from './model-baseline.js';
import { driftReport } from './report.js';
import type { Retrainer } from './retrain.js';
import * as store from './store.js';
import type { BaselineCache } from './worker.js';

/**
 * Alert rules and their alerts. A rule's condition is recomputed from the stored windows on
 * every evaluation (so a restart loses nothing): per segment, the run of consecutive windows
 * (those with enough data for a value) whose metric is at or above the threshold, ending at
 * the latest such window. The alert fires once that run spans the rule's `for` (window
 * time), stays one alert (deduplicated by rule and segment) while the condition holds, and
 * resolves when the latest window no longer meets it. Firing and resolving are published to
 * watchers, POSTed to the rule's webhook (with retries), and a firing alert of a rule with
 * `retrain` asks the retrainer for a training run.
 */

export const DEFAULT_RULE_NAME = 'default_drift';

export interface AlertEngineOptions {
  sql: () => Sql;
  baselines: BaselineCache;
  retrainer?: Retrainer | undefined;
  /** A rule stored with every new baseline of a model that has no rules; undefined: none. */
  /**
   * The rule stored with every new baseline of a model that has no rules: drift share at or
   * above `threshold` in any segment for `windows` windows (sustained: one noisy window does
   * not retrain), asking for a retraining. Undefined: none.
   */
  defaultRule?: { windows: number; threshold: number } | undefined;
  webhook?: { attempts: number; backoffMs: number; timeoutMs?: number };
  /** Minimum joined actuals in a window for an error metric to count; default 1. */
  minErrorCount?: number;
  /** How soon watchers see alert changes made by another replica; default 1 s. */
  watchPollMs?: number;
  /** Between two evaluations of one model while jobs keep arriving; default 0. */
  minIntervalMs?: number;
  metrics?: MonitorMetrics | undefined;
  now?: () => number;
}

/** Rows a window needs before its null rate counts. */
const MIN_ROWS_FOR_RATES = 30;

/** Windows looked back over beyond the rule's `for`. */
const EXTRA_WINDOWS = 3;

type WindowReport = ReturnType<typeof driftReport>[number];

interface Point {
  windowStart: number;
  value: number;
  version: number;
}

export function alertId(model: string, rule: string, segment: string, activeSince: number): string {
  return createHash('sha256')
    .update(`${model}\u0000${rule}\u0000${segment}\u0000${activeSince}`)
    .digest('hex')
    .slice(0, 24);
}

function isDriftMetric(m: AlertMetric): boolean {
  return (
    m === AlertMetric.DRIFT_SHARE ||
    m === AlertMetric.MAX_PSI ||
    m === AlertMetric.LATENCY_P99_MS ||
    m === AlertMetric.OUT_OF_RANGE_SHARE ||
    m === AlertMetric.NULL_RATE
  );
}

export function validateRule(rule: AlertRule | undefined): AlertRule {
  if (!rule) throw invalidArgument('rule', 'is required');
  if (!rule.model.trim()) throw invalidArgument('rule.model', 'must not be empty');
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(rule.name))
    throw invalidArgument('rule.name', 'must be 1-64 letters, digits, "_", "." or "-"');
  if (rule.metric === AlertMetric.UNSPECIFIED || !AlertMetric[rule.metric])
    throw invalidArgument('rule.metric', 'must be a known metric');
  if (!Number.isFinite(rule.threshold)) throw invalidArgument('rule.threshold', 'must be a finite number');
  if (rule.for && (rule.for.seconds < 0n || rule.for.nanos < 0))
    throw invalidArgument('rule.for', 'must be >= 0');
  if (rule.webhookUrl) {
    let url: URL;
    try {
      url = new URL(rule.webhookUrl);
    } catch {
      throw invalidArgument('rule.webhook_url', 'must be an absolute http(s) URL');
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:')
      throw invalidArgument('rule.webhook_url', 'must be an absolute http(s) URL');
  }
  return { ...rule, model: rule.model.trim() };
}

export class AlertEngine {
  readonly #events = new EventEmitter();
  readonly #deliveries = new Set<Promise<void>>();
  readonly #running = new Map<string, Promise<void>>();
  readonly #again = new Set<string>();
  readonly #now: () => number;
  readonly #reports = new Map<string, { baseline: ModelBaseline; signature: string; report: WindowReport }>();

  constructor(private readonly options: AlertEngineOptions) {
    this.#events.setMaxListeners(0);
    this.#now = options.now ?? Date.now;
  }

  async putRule(input: AlertRule | undefined): Promise<AlertRule> {
    const rule = validateRule(input);
    await this.options.sql().query(
      `INSERT INTO alert_rules (model, name, rule) VALUES ($1, $2, $3)
         ON CONFLICT (model, name) DO UPDATE SET rule = EXCLUDED.rule`,
      [rule.model, rule.name, JSON.stringify(toJson(AlertRuleSchema, rule))],
    );
    return rule;
  }

  /** Stores the default rule for a model that has no rules yet (called when a baseline is set). */
  async ensureDefaultRule(model: string, windowMs: number): Promise<void> {
    const d = this.options.defaultRule;
    if (!d) return;
    const rule = create(AlertRuleSchema, {
      model,
      name: DEFAULT_RULE_NAME,
      metric: AlertMetric.DRIFT_SHARE,
      threshold: d.threshold,
      for: durationFromMs(d.windows * windowMs),
      segment: '*',
      retrain: true,
    });
    await this.options.sql().query(
      `INSERT INTO alert_rules (model, name, rule)
         SELECT $1, $2, $3 WHERE NOT EXISTS (SELECT 1 FROM alert_rules WHERE model = $1)
         ON CONFLICT DO NOTHING`,
      [model, DEFAULT_RULE_NAME, JSON.stringify(toJson(AlertRuleSchema, rule))],
    );
  }

  async rules(model: string): Promise<AlertRule[]> {
    const { rows } = await this.options
      .sql()
      .query<{ rule: JsonValue }>('SELECT rule FROM alert_rules WHERE model = $1 ORDER BY name', [model]);
    return rows.map((r) => fromJson(AlertRuleSchema, r.rule));
  }

  async list(model: string, state: AlertState = AlertState.UNSPECIFIED): Promise<Alert[]> {
    const { rows } = await this.options.sql().query<{ alert: JsonValue }>(
      `SELECT alert FROM alerts WHERE ($1 = '' OR model = $1) AND ($2 = '' OR state = $2)
       ORDER BY updated_at DESC, id LIMIT 1000`,
      [model, state === AlertState.UNSPECIFIED ? '' : stateName(state)],
    );
    return rows.map((r) => fromJson(AlertSchema, r.alert));
  }

  /**
   * Firing alerts now, then every change of state, until `signal` aborts. Changes made here
   * arrive at once; those of other replicas (the alerts table) within `watchPollMs`.
   */
  async *watch(model: string, signal: AbortSignal): AsyncGenerator<Alert> {
    const sql = this.options.sql;
    const seen = new Map<string, AlertState>();
    // Rows are read back a little before the last one seen: a transaction that began before
    // it may commit after it. `seen` keeps those from coming twice.
    const MARGIN_MS = 10_000;
    let since = Number(
      (await sql().query<{ t: string }>('SELECT (extract(epoch from clock_timestamp()) * 1000)::bigint AS t'))
        .rows[0]?.t,
    );
    const startedAt = since;
    let wake: (() => void) | undefined;
    let pending = false;
    const onAlert = () => {
      pending = true;
      wake?.();
    };
    this.#events.on('alert', onAlert);
    try {
      for (const alert of await this.list(model, AlertState.FIRING)) {
        seen.set(alert.id, alert.state);
        yield alert;
      }
      while (!signal.aborted) {
        const { rows } = await sql().query<{ alert: JsonValue; at: string }>(
          `SELECT alert, (extract(epoch from updated_at) * 1000)::bigint AS at FROM alerts
           WHERE ($1 = '' OR model = $1) AND updated_at > to_timestamp($2 / 1000.0) ORDER BY updated_at, id`,
          [model, Math.max(since - MARGIN_MS, startedAt)],
        );
        for (const row of rows) {
          const alert = fromJson(AlertSchema, row.alert);
          since = Math.max(since, Number(row.at));
          if (seen.get(alert.id) === alert.state) continue;
          seen.set(alert.id, alert.state);
          yield alert;
        }
        if (pending) {
          pending = false;
          continue;
        }
        await new Promise<void>((resolve) => {
          const timer = setTimeout(done, this.options.watchPollMs ?? 1_000);
          function done() {
            pending = false;
            clearTimeout(timer);
            signal.removeEventListener('abort', done);
            resolve();
          }
          wake = done;
          signal.addEventListener('abort', done, { once: true });
        });
      }
    } finally {
      this.#events.off('alert', onAlert);
    }
  }

  /** Webhook deliveries in flight have finished (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.#running.size > 0) await Promise.allSettled([...this.#running.values()]);
    while (this.#deliveries.size > 0) await Promise.allSettled([...this.#deliveries]);
  }

  /**
   * Evaluates the model's rules; concurrent requests for one model coalesce (one runs, one
   * more follows it), so a burst of absorbed jobs costs at most two evaluations.
   */
  evaluateSoon(model: string): Promise<void> {
    const running = this.#running.get(model);
    if (running) {
      this.#again.add(model);
      return running;
    }
    const run = (async () => {
      try {
        const gap = this.options.minIntervalMs ?? 0;
        for (;;) {
          this.#again.delete(model);
          await this.evaluateModel(model);
          if (!this.#again.has(model)) break;
          if (gap > 0) await new Promise((r) => setTimeout(r, gap));
        }
      } finally {
        this.#running.delete(model);
      }
    })();
    this.#running.set(model, run);
    return run;
  }

  async evaluateModel(model: string): Promise<Alert[]> {
    const started = performance.now();
    const rules = await this.rules(model);
    const changed: Alert[] = [];
    for (const rule of rules) changed.push(...(await this.evaluateRule(rule)));
    this.options.metrics?.evaluationSeconds.record((performance.now() - started) / 1000);
    return changed;
  }

  async evaluateRule(rule: AlertRule): Promise<Alert[]> {
    const series = isDriftMetric(rule.metric) ? await this.driftSeries(rule) : await this.errorSeries(rule);
    if (!series) return [];
    const { points, width } = series;
    const forMs = durationMs(rule.for, 0);
    const open = await this.openAlerts(rule);
    const segments = new Set([...points.keys(), ...open.keys()]);
    const changed: Alert[] = [];
    const segmented = [...points.keys()].some((s) => s !== '');
    for (const segment of segments) {
      if (!inScope(rule.segment, segment, segmented)) continue;
      const list = points.get(segment) ?? [];
      const last = list[list.length - 1];
      const current = open.get(segment);
      if (!last) continue;
      let first = list.length;
      while (first > 0 && (list[first - 1] as Point).value >= rule.threshold) first--;
      const holding = first < list.length;
      const activeSince = holding ? (list[first] as Point).windowStart : 0;
      const spans = holding && last.windowStart + width - activeSince >= forMs;
      const reading = { model: rule.model, rule: rule.name, metric: rule.metric, segment };
      const threshold = rule.threshold;
      this.options.metrics?.readings.record({
        ...reading,
        value: last.value,
        threshold,
        firing: holding && !!current,
      });
      if (holding && spans && !current) {
        const alert = create(AlertSchema, {
          id: alertId(rule.model, rule.name, segment, activeSince),
          model: rule.model,
          rule: rule.name,
          segment,
          state: AlertState.FIRING,
          metric: rule.metric,
          value: last.value,
          threshold: rule.threshold,
          version: last.version,
          activeSince: timestampFromMs(activeSince),
          firedAt: timestampFromMs(this.#now()),
        });
        if (!(await this.insert(alert))) continue;
        this.options.metrics?.readings.record({ ...reading, value: last.value, threshold, firing: true });
        if (rule.retrain && this.options.retrainer) {
          const outcome = await this.options.retrainer.request(alert);
          alert.retrainJobId = outcome.jobId ?? '';
          alert.retrainSkipped = outcome.skipped ?? '';
          this.options.metrics?.retrains.add(1, { model: rule.model, outcome: outcome.outcome });
          await this.update(alert);
        }
        changed.push(alert);
        this.publish(alert, rule);
      } else if (holding && current) {
        if (current.value !== last.value || current.version !== last.version) {
          current.value = last.value;
          current.version = last.version;
          await this.update(current);
        }
      } else if (!holding && current) {
        current.state = AlertState.RESOLVED;
        current.value = last.value;
        current.resolvedAt = timestampFromMs(this.#now());
        await this.update(current);
        changed.push(current);
        this.publish(current, rule);
      }
    }
    return changed;
  }

  private async driftSeries(
    rule: AlertRule,
  ): Promise<{ points: Map<string, Point[]>; width: number } | undefined> {
    const sql = this.options.sql();
    // The newest version with windows is the one serving.
    const { rows } = await sql.query<{ version: number; latest: string }>(
      `SELECT version, max(window_start) AS latest FROM window_stats WHERE model = $1
       GROUP BY version ORDER BY max(window_start) DESC, version DESC LIMIT 1`,
      [rule.model],
    );
    const row = rows[0];
    if (!row) return undefined;
    const baseline = await this.options.baselines.get(rule.model, row.version);
    if (!baseline) return undefined;
    const width = windowMs(baseline.config);
    const lookback = durationMs(rule.for, 0) + EXTRA_WINDOWS * width;
    const segment = rule.segment === '*' ? undefined : rule.segment;
    const windows = await store.readWindows(sql, {
      model: rule.model,
      version: row.version,
      start: Number(row.latest) - lookback,
      segment,
    });
    const points = new Map<string, Point[]>();
    for (const w of this.reports(baseline, windows)) {
      const value = driftMetric(rule.metric, w);
      if (value === undefined) continue;
      const seg = w.segment ?? '';
      const list = points.get(seg) ?? [];
      list.push({ windowStart: timestampMs(w.windowStart as never), value, version: baseline.version });
      points.set(seg, list);
    }
    return { points, width };
  }

  /**
   * Drift reports per window and segment, remembered while the window's counts and the
   * baseline stay the same: an evaluation recomputes only the windows new data reached.
   */
  private reports(baseline: ModelBaseline, windows: store.StoredWindow[]): WindowReport[] {
    const groups = new Map<string, store.StoredWindow[]>();
    for (const w of windows) {
      const id = `${baseline.model}\u0000${baseline.version}\u0000${w.windowStart}\u0000${w.segment}`;
      const list = groups.get(id);
      if (list) list.push(w);
      else groups.set(id, [w]);
    }
    const out: WindowReport[] = [];
    for (const [id, group] of groups) {
      const signature = group.map((w) => `${w.feature}:${w.hist.count}:${w.hist.nulls}`).join(',');
      const hit = this.#reports.get(id);
      if (hit && hit.baseline === baseline && hit.signature === signature) {
        out.push(hit.report);
        continue;
      }
      const report = driftReport(baseline, group)[0];
      if (!report) continue;
      if (this.#reports.size >= 20_000) this.#reports.clear();
      this.#reports.set(id, { baseline, signature, report });
      out.push(report);
    }
    return out;
  }

  private async errorSeries(
    rule: AlertRule,
  ): Promise<{ points: Map<string, Point[]>; width: number } | undefined> {
    const sql = this.options.sql();
    const { rows } = await sql.query<{ version: number; latest: string }>(
      `SELECT version, max(window_start) AS latest FROM error_stats WHERE model = $1
       GROUP BY version ORDER BY max(window_start) DESC, version DESC LIMIT 1`,
      [rule.model],
    );
    const row = rows[0];
    if (!row) return undefined;
    const baseline: ModelBaseline | undefined = await this.options.baselines.get(rule.model, row.version);
    const width = baseline ? windowMs(baseline.config) : 3_600_000;
    const lookback = durationMs(rule.for, 0) + EXTRA_WINDOWS * width;
    const sums = await store.readErrors(sql, {
      model: rule.model,
      version: 0,
      start: Number(row.latest) - lookback,
      segment: rule.segment === '*' ? undefined : rule.segment,
    });
    // Versions that served in the same window are added together.
    const merged = new Map<string, { key: store.ErrorKey; s: store.ErrorSums }>();
    for (const [key, s] of sums) {
      const id = `${key.windowStart}|${key.segment}`;
      const m = merged.get(id);
      if (!m) merged.set(id, { key: { ...key }, s: { ...s } });
      else {
        m.key.version = Math.max(m.key.version, key.version);
        store.addSums(m.s, s);
      }
    }
    const min = this.options.minErrorCount ?? 1;
    const points = new Map<string, Point[]>();
    for (const { key, s } of [...merged.values()].sort((a, b) => a.key.windowStart - b.key.windowStart)) {
      if (s.n < min) continue;
      const value = errorMetric(rule.metric, s);
      if (value === undefined || !Number.isFinite(value)) continue;
      const list = points.get(key.segment) ?? [];
      list.push({ windowStart: key.windowStart, value, version: key.version });
      points.set(key.segment, list);
    }
    return { points, width };
  }

  private async openAlerts(rule: AlertRule): Promise<Map<string, Alert>> {
    const { rows } = await this.options
      .sql()
      .query<{ segment: string; alert: JsonValue }>(
        `SELECT segment, alert FROM alerts WHERE model = $1 AND rule = $2 AND state = 'firing'`,
        [rule.model, rule.name],
      );
    return new Map(rows.map((r) => [r.segment, fromJson(AlertSchema, r.alert)]));
  }

  /** False when an open alert for the rule and segment exists already (another replica fired it). */
  private async insert(alert: Alert): Promise<boolean> {
    const { rows } = await this.options.sql().query(
      `INSERT INTO alerts (id, model, rule, segment, state, alert) VALUES ($1, $2, $3, $4, 'firing', $5)
       ON CONFLICT DO NOTHING RETURNING 1`,
      [alert.id, alert.model, alert.rule, alert.segment, JSON.stringify(toJson(AlertSchema, alert))],
    );
    return rows.length > 0;
  }

  private async update(alert: Alert): Promise<void> {
    await this.options
      .sql()
      .query(`UPDATE alerts SET state = $2, alert = $3, updated_at = now() WHERE id = $1`, [
        alert.id,
        stateName(alert.state),
        JSON.stringify(toJson(AlertSchema, alert)),
      ]);
  }

  private publish(alert: Alert, rule: AlertRule): void {
    this.#events.emit('alert', alert);
    this.options.metrics?.alerts.add(1, {
      model: alert.model,
      rule: rule.name,
      state: stateName(alert.state),
    });
    if (rule.webhookUrl) {
      const delivery = this.deliver(rule.webhookUrl, alert).finally(() => this.#deliveries.delete(delivery));
      this.#deliveries.add(delivery);
    }
  }

  private async deliver(url: string, alert: Alert): Promise<void> {
    const { attempts = 5, backoffMs = 500, timeoutMs = 5_000 } = this.options.webhook ?? {};
    const body = JSON.stringify(toJson(AlertSchema, alert));
    for (let attempt = 1; attempt <= attempts; attempt++) {
      try {
        const res = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body,
          signal: AbortSignal.timeout(timeoutMs),
        });
        await res.body?.cancel();
        if (res.ok) {
          await store.addCounter(this.options.sql(), 'webhook_deliveries', 1).catch(() => {});
          return;
        }
      } catch {
        // retried below
      }
      await store.addCounter(this.options.sql(), 'webhook_failures', 1).catch(() => {});
      if (attempt < attempts) await new Promise((r) => setTimeout(r, backoffMs * 2 ** (attempt - 1)));
    }
  }
}

function stateName(state: AlertState): string {
  return state === AlertState.FIRING ? 'firing' : state === AlertState.RESOLVED ? 'resolved' : '';
}

/**
 * Empty scope: all rows only; "*": each segment separately (all rows only when the data has
 * no segments); else that segment.
 */
function inScope(scope: string, segment: string, segmented: boolean): boolean {
  if (scope === '*') return segment !== '' || !segmented;
  return scope === segment;
}

function driftMetric(
  metric: AlertMetric,
  w: {
    driftShare?: number;
    features?: {
      insufficient?: boolean;
      isPrediction?: boolean;
      psi?: number;
      count?: bigint;
      outOfRange?: bigint;
      nullCount?: bigint;
      nullRate?: number;
    }[];
    latencyP99Ms?: number;
    drifted?: boolean;
  },
): number | undefined {
  const judged = (w.features ?? []).filter((f) => !f.insufficient && !f.isPrediction);
  switch (metric) {
    case AlertMetric.DRIFT_SHARE:
      return judged.length === 0 ? undefined : (w.driftShare ?? 0);
    case AlertMetric.MAX_PSI:
      return judged.length === 0 ? undefined : Math.max(...judged.map((f) => f.psi ?? 0));
    case AlertMetric.LATENCY_P99_MS:
      return w.latencyP99Ms !== undefined && Number.isFinite(w.latencyP99Ms) ? w.latencyP99Ms : undefined;
    case AlertMetric.OUT_OF_RANGE_SHARE: {
      // Every feature with enough values, the prediction included (its outliers count).
      const enough = (w.features ?? []).filter((f) => !f.insufficient);
      return enough.length === 0
        ? undefined
        : Math.max(...enough.map((f) => Number(f.outOfRange ?? 0n) / Math.max(Number(f.count ?? 0n), 1)));
    }
    case AlertMetric.NULL_RATE: {
      // Nulls leave too few values for a drift verdict, so rows (values and nulls) decide here.
      const rows = (w.features ?? []).filter(
        (f) => !f.isPrediction && Number(f.count ?? 0n) + Number(f.nullCount ?? 0n) >= MIN_ROWS_FOR_RATES,
      );
      return rows.length === 0 ? undefined : Math.max(...rows.map((f) => f.nullRate ?? 0));
    }
    default:
      return undefined;
  }
}

function errorMetric(metric: AlertMetric, s: store.ErrorSums): number | undefined {
  switch (metric) {
    case AlertMetric.MAE:
      return s.sumAbs / s.n;
    case AlertMetric.RMSE:
      return Math.sqrt(s.sumSq / s.n);
    case AlertMetric.MAPE:
      return s.nApe ? s.sumApe / s.nApe : undefined;
    case AlertMetric.ERROR_RATE:
      return 1 - s.correct / s.n;
    default:
      return undefined;
  }
}
