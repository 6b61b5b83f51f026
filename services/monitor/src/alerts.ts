import { type Alert, type AlertRule, AlertState } from '@ballast/contracts/ballast/monitor/v1/monitor_pb.js';
import type { Sql } from '@ballast/storage';
import { evaluate } from './alert-evaluator.js';
import { AlertNotifier } from './alert-notifier.js';
import { defaultRule, validateRule } from './alert-rules.js';
import { EvaluationScheduler, pollAlerts } from './alert-scheduler.js';
import { AlertSeries } from './alert-series.js';
import type { MonitorMetrics } from './metrics.js';
import type { Retrainer } from './retrain.js';
import * as store from './store/alerts.js';
import { withEvaluationLock } from './store/evaluation-lock.js';
import type { BaselineCache } from './worker.js';

export { DEFAULT_RULE_NAME } from './alert-rules.js';

/**
 * Alert rules and their alerts, over the store: a rule's values (alert-series.ts) are
 * judged (alert-evaluator.ts), what changed is stored, with the alert deduplicated by rule
 * and segment across replicas, then told (alert-notifier.ts); a firing alert of a rule with
 * `retrain` asks the retrainer for a training run. When evaluations and watches run is
 * alert-scheduler.ts's part.
 */

export interface AlertEngineOptions {
  sql: () => Sql;
  baselines: BaselineCache;
  retrainer?: Retrainer | undefined;
  /**
   * The rule stored with every new baseline of a model that has no rules (see
   * alert-rules.ts's defaultRule). Undefined: none.
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

export class AlertEngine {
  readonly #now: () => number;
  readonly #series: AlertSeries;
  readonly #notifier: AlertNotifier;
  readonly #scheduler: EvaluationScheduler;

  constructor(private readonly options: AlertEngineOptions) {
    this.#now = options.now ?? Date.now;
    this.#series = new AlertSeries(options);
    this.#notifier = new AlertNotifier(options);
    this.#scheduler = new EvaluationScheduler(
      (model) => this.evaluateModel(model),
      options.minIntervalMs,
      (model, run) => withEvaluationLock(options.sql(), model, run),
    );
  }

  async putRule(input: AlertRule | undefined): Promise<AlertRule> {
    const rule = validateRule(input);
    await store.putRule(this.options.sql(), rule);
    return rule;
  }

  /** Stores the default rule for a model that has no rules yet (called when a baseline is set). */
  async ensureDefaultRule(model: string, windowMs: number): Promise<void> {
    const d = this.options.defaultRule;
    if (d) await store.putFirstRule(this.options.sql(), defaultRule(model, windowMs, d));
  }

  rules(model: string): Promise<AlertRule[]> {
    return store.readRules(this.options.sql(), model);
  }

  list(model: string, state: AlertState = AlertState.UNSPECIFIED): Promise<Alert[]> {
    return store.listAlerts(this.options.sql(), model, state);
  }

  /**
   * Firing alerts now, then every change of state, until `signal` aborts. Changes made here
   * arrive at once; those of other replicas (the alerts table) within `watchPollMs`.
   */
  watch(model: string, signal: AbortSignal): AsyncGenerator<Alert> {
    const sql = this.options.sql;
    const feed = {
      now: () => store.databaseNow(sql()),
      firing: (m: string) => this.list(m, AlertState.FIRING),
      changedSince: (m: string, since: number) => store.alertsUpdatedSince(sql(), m, since),
      subscribe: (listener: () => void) => this.#notifier.subscribe(listener),
    };
    return pollAlerts(feed, model, signal, this.options.watchPollMs ?? 1_000);
  }

  /** Evaluations and webhook deliveries in flight have finished (tests, shutdown). */
  async idle(): Promise<void> {
    await this.#scheduler.idle();
    await this.#notifier.idle();
  }

  /** See EvaluationScheduler.soon: a burst of requests for one model costs at most two evaluations. */
  evaluateSoon(model: string): Promise<void> {
    return this.#scheduler.soon(model);
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
    const series = await this.#series.of(rule);
    if (!series) return [];
    const sql = this.options.sql;
    const open = await store.firingAlertsOf(sql(), rule);
    const changed: Alert[] = [];
    for (const verdict of evaluate(rule, series, open, this.#now())) {
      const reading = {
        model: rule.model,
        rule: rule.name,
        metric: rule.metric,
        segment: verdict.segment,
        value: verdict.value,
        threshold: rule.threshold,
      };
      this.options.metrics?.readings.record({ ...reading, firing: verdict.firing });
      const t = verdict.transition;
      if (t?.kind === 'fire') {
        if (!(await store.insertAlert(sql(), t.alert))) continue;
        this.options.metrics?.readings.record({ ...reading, firing: true });
        await this.retrain(t.alert, rule);
        changed.push(t.alert);
        this.#notifier.publish(t.alert, rule);
      } else if (t?.kind === 'update') {
        await store.updateAlert(sql(), t.alert);
        if (!retrainAsked(t.alert, rule)) await this.retrain(t.alert, rule);
      } else if (!t && verdict.firing) {
        // A firing alert whose retraining was never asked for: the replica that fired it died
        // between storing it and asking (the request is per alert, so asking again is safe).
        const current = open.get(verdict.segment);
        if (current && !retrainAsked(current, rule)) await this.retrain(current, rule);
      } else if (t?.kind === 'resolve') {
        await store.updateAlert(sql(), t.alert);
        changed.push(t.alert);
        this.#notifier.publish(t.alert, rule);
      }
    }
    return changed;
  }

  /** Asks for a retraining when the rule wants one; the outcome is kept on the alert. */
  private async retrain(alert: Alert, rule: AlertRule): Promise<void> {
    const retrainer = this.options.retrainer;
    if (!rule.retrain || !retrainer) return;
    const outcome = await retrainer.request(alert);
    alert.retrainJobId = outcome.jobId ?? '';
    alert.retrainSkipped = outcome.skipped ?? '';
    this.options.metrics?.retrains.add(1, { model: rule.model, outcome: outcome.outcome });
    await store.updateAlert(this.options.sql(), alert);
  }
}

/** Whether a firing alert's retraining was decided: asked for, skipped with a reason, or not wanted. */
function retrainAsked(alert: Alert, rule: AlertRule): boolean {
  return !rule.retrain || alert.retrainJobId !== '' || alert.retrainSkipped !== '';
}
