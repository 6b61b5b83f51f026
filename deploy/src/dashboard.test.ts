import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { dashboardProblems } from './checks.js';
import { deployPath } from './paths.js';
import { exportedSeries, prometheusName, seriesNames } from './repo.js';
import { isRecord, loadYaml } from './yaml.js';

const dashboard = JSON.parse(
  readFileSync(deployPath('grafana', 'dashboards', 'ballast.json'), 'utf8'),
) as Record<string, unknown>;
const datasources = loadYaml(deployPath('grafana', 'provisioning', 'datasources', 'datasources.yml'));
const uids = new Set(
  (isRecord(datasources) && Array.isArray(datasources.datasources) ? datasources.datasources : []).map((d) =>
    String(d.uid),
  ),
);
const exported = exportedSeries();

describe('Grafana dashboard', () => {
  it('queries only metrics the services export, through a provisioned datasource', () => {
    expect(dashboardProblems(dashboard, exported, uids)).toEqual([]);
  });

  it('covers request rates, latency percentiles, queue depths, the drift loop and process resources', () => {
    const text = JSON.stringify(dashboard);
    for (const needle of [
      'grpc_server_handled_total',
      'histogram_quantile(0.99',
      'ballast_inference_queue_depth',
      'bullmq_jobs_completed_total',
      'monitor.predictions',
      'training.run',
      'ballast_monitor_rule_value',
      'ballast_monitor_alert_firing',
      'process_resident_memory_bytes',
      'bullmq_queue_jobs',
    ])
      expect(text).toContain(needle);
  });

  it('knows how the Prometheus exporter names instruments', () => {
    expect(prometheusName('bullmq.jobs.completed', 'counter')).toBe('bullmq_jobs_completed_total');
    expect(seriesNames('ballast_inference_batch_size', 'histogram')).toEqual([
      'ballast_inference_batch_size_bucket',
      'ballast_inference_batch_size_sum',
      'ballast_inference_batch_size_count',
    ]);
    expect(exported.has('ballast_inference_request_duration_seconds_bucket')).toBe(true);
    expect(exported.has('grpc_server_handled_total')).toBe(true);
  });

  it('reports a metric nobody exports and a datasource nobody provisioned', () => {
    const broken = {
      panels: [
        {
          id: 1,
          type: 'timeseries',
          title: 'Drift',
          datasource: { uid: 'prom' },
          targets: [{ expr: 'max(ballast_monitor_psi)' }],
        },
      ],
    };
    expect(dashboardProblems(broken, exported, uids)).toEqual([
      'panel "Drift": datasource prom is not provisioned',
      'panel "Drift": ballast_monitor_psi is not exported by any service',
    ]);
  });
});
