import { getMeter } from '@ballast/telemetry';

let instruments: ReturnType<typeof create> | undefined;

/** The monitor's own instruments, as they appear on its /metrics (made once per process). */
export function monitorMetrics(): MonitorMetrics {
  instruments ??= create();
  return instruments;
}

function create() {
  const meter = getMeter('@ballast/monitor');
  return {
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
