import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { deployPath } from './paths.js';
import { exportedSeries } from './repo.js';
import { isRecord, loadYaml } from './yaml.js';

/** prometheus-rules.yml: valid for promtool, on series the services export, and loaded by Prometheus. */
const rules = loadYaml(deployPath('prometheus-rules.yml'));
const exprs = (isRecord(rules) && Array.isArray(rules.groups) ? rules.groups : []).flatMap((g) =>
  isRecord(g) && Array.isArray(g.rules) ? g.rules.map((r) => String((r as { expr?: unknown }).expr)) : [],
);

describe('Prometheus alert rules', () => {
  it('pass promtool check rules', () => {
    const check = spawnSync('promtool', ['check', 'rules', deployPath('prometheus-rules.yml')], {
      encoding: 'utf8',
    });
    expect(`${check.stdout}${check.stderr}`).toMatch(/SUCCESS: 2 rules found/);
    expect(check.status).toBe(0);
  });

  it('alert on a failed materialization and on failed jobs, with series the services export', () => {
    const exported = exportedSeries();
    const metrics = exprs.flatMap((e) => [...e.matchAll(/\b([a-z_]+_total)\b/g)].map((m) => m[1] as string));
    expect(metrics).toEqual(['ballast_feature_materializations_total', 'bullmq_jobs_failed_total']);
    for (const m of metrics) expect(exported.has(m), m).toBe(true);
    expect(exprs[0]).toContain('outcome="failed"');
  });

  it('are loaded by prometheus.yml from where docker-compose.yml mounts them', () => {
    const config = loadYaml(deployPath('prometheus.yml')) as { rule_files?: string[] };
    expect(config.rule_files).toEqual(['/etc/prometheus/rules.yml']);
    const compose = loadYaml(deployPath('docker-compose.yml')) as {
      services: { prometheus: { volumes: string[] } };
    };
    expect(compose.services.prometheus.volumes).toContain(
      './prometheus-rules.yml:/etc/prometheus/rules.yml:ro',
    );
  });
});
