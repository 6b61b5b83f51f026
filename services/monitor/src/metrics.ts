import { AlertMetric } from '@ballast/contracts/ballast/monitor/v1/monitor_pb.js';
import { getMeter } from '@ballast/telemetry';

/** What one alert rule saw in one segment at its last evaluation. */
export interface RuleReading {
  model: string;
  rule: string;
  metric: AlertMetric;
  /** '' for all rows. */
  segment: string;
  value: number;
  threshold: number;
  firing: boolean;
}

/**
 * The latest reading of every rule and segment, read at scrape time: drift and error become
 * Prometheus series (and Grafana panels) without a second computation. Bounded by rules x
 * segments; a segment no rule evaluates any more keeps its last reading until the process ends.
 */
export class RuleReadings {
  readonly #latest = new Map<string, RuleReading>();

  record(reading: RuleReading): void {
    this.#latest.set(`${reading.model}\u0000${reading.rule}\u0000${reading.segment}`, reading);
  }

  all(): RuleReading[] {
    return [...this.#latest.values()];
  }
}

function labels(r: RuleReading) {
  return {
    model: r.model,
    rule: r.rule,
    metric: (AlertMetric[r.metric] ?? String(r.metric)).toLowerCase(),
    segment: r.segment || 'all',
  };
}

let instruments: ReturnType<typeof create> | undefined;

/** The monitor's own instruments, as they appear on its /metrics (made once per process). */
export function monitorMetrics(): MonitorMetrics {
  instruments ??= create();
  return instruments;
}

function create() {
  const meter = getMeter('@ballast/monitor');
  const readings = new RuleReadings();
  meter
    .createObservableGauge('ballast_monitor_rule_value', {
      description:
        'The value each alert rule last compared with its threshold (drift share, max PSI, MAE, ...), by model, rule, metric and segment.',
    })
    .addCallback((result) => {
      for (const r of readings.all()) result.observe(r.value, labels(r));
    });
  meter
    .createObservableGauge('ballast_monitor_rule_threshold', {
      description: "Each alert rule's threshold, by model, rule, metric and segment (beside its value).",
    })
    .addCallback((result) => {
      for (const r of readings.all()) result.observe(r.threshold, labels(r));
    });
  meter
    .createObservableGauge('ballast_monitor_alert_firing', {
      description: '1 while an alert rule fires for a segment, else 0; by model, rule, metric and segment.',
    })
    .addCallback((result) => {
      for (const r of readings.all()) result.observe(r.firing ? 1 : 0, labels(r));
    });
  return {
    readings,
    records: meter.createCounter('ballast_monitor_records_total', {
      description:
        'Logged prediction records taken from monitor.predictions, by model and outcome (absorbed, malformed, unknown_model).',
    }),
    jobs: meter.createCounter('ballast_monitor_jobs_total', {
      description: 'monitor.predictions jobs, by outcome (absorbed, duplicate, malformed, failed).',
    }),
    actuals: meter.createCounter('ballast_monitor_actuals_total', {
      description: 'Actuals recorded, by model and outcome (matched, unmatched, duplicate).',
    }),
    alerts: meter.createCounter('ballast_monitor_alert_transitions_total', {
      description: 'Alerts that fired or resolved, by model, rule and state.',
    }),
    retrains: meter.createCounter('ballast_monitor_retrains_total', {
      description:
        'Retrainings asked for by alerts, by model and outcome (enqueued, cooldown, rate_limit, disabled).',
    }),
    evaluationSeconds: meter.createHistogram('ballast_monitor_alert_evaluation_seconds', {
      description: "Time to evaluate one model's alert rules.",
      unit: 's',
    }),
  };
}

export type MonitorMetrics = ReturnType<typeof create>;
