import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { composeProblems, grafanaProblems, prometheusProblems } from './checks.js';
import { type ComposeFile, composeSchemaProblems, loadCompose, mergeCompose } from './compose.js';
import { parseDockerfile } from './dockerfile.js';
import { deployPath } from './paths.js';
import { loadYaml } from './yaml.js';

const compose = loadCompose(deployPath('docker-compose.yml'));
const gpu = loadCompose(deployPath('docker-compose.gpu.yml'));
const merged = mergeCompose(compose, gpu) as ComposeFile;
const dockerfile = parseDockerfile(readFileSync(deployPath('Dockerfile'), 'utf8'));
const datasources = loadYaml(deployPath('grafana', 'provisioning', 'datasources', 'datasources.yml'));
const providers = loadYaml(deployPath('grafana', 'provisioning', 'dashboards', 'dashboards.yml'));

describe('docker-compose.yml', () => {
  it('is valid against the Compose Specification schema, alone and with the GPU override', () => {
    expect(composeSchemaProblems(compose)).toEqual([]);
    expect(composeSchemaProblems(gpu)).toEqual([]);
    expect(composeSchemaProblems(merged)).toEqual([]);
  });

  it('runs the six services with the right ports, env, build targets, healthchecks and dependencies', () => {
    expect(composeProblems(compose, dockerfile)).toEqual([]);
  });

  it('with the GPU override, inference and trainer build the GPU targets and reserve a GPU', () => {
    expect(composeProblems(merged, dockerfile)).toEqual([]);
    for (const name of ['inference', 'trainer']) {
      const service = merged.services[name];
      expect(service?.build).toEqual({
        context: '..',
        dockerfile: 'deploy/Dockerfile',
        target: `${name}-gpu`,
      });
      expect(service?.environment?.BALLAST_TF_BACKEND).toBe('tensorflow');
      expect(JSON.stringify(service?.deploy)).toContain('"capabilities":["gpu"]');
    }
  });

  it('has Redis, Postgres, Jaeger, Prometheus and Grafana', () => {
    for (const name of ['redis', 'postgres', 'jaeger', 'prometheus', 'grafana'])
      expect(compose.services).toHaveProperty(name);
  });

  it('Grafana provisioning matches its mounts and the compose services', () => {
    expect(grafanaProblems(compose, datasources, providers)).toEqual([]);
  });

  it('prometheus.yml scrapes every service on its HTTP port', () => {
    expect(prometheusProblems(loadYaml(deployPath('prometheus.yml')))).toEqual([]);
  });
});

describe('the compose checks catch broken files', () => {
  it('schema: a misspelt key and a badly typed value', () => {
    const broken = structuredClone(compose) as ComposeFile & {
      services: Record<string, Record<string, unknown>>;
    };
    const redis = broken.services.redis as Record<string, unknown>;
    redis.helthcheck = redis.healthcheck;
    redis.ports = 6379;
    const problems = composeSchemaProblems(broken);
    expect(problems).toContain('/services/redis must NOT have additional properties (helthcheck)');
    expect(problems).toContain('/services/redis/ports must be array');
  });

  it('schema: a healthcheck interval that is no duration', () => {
    const broken = structuredClone(compose);
    (broken.services.postgres?.healthcheck as Record<string, unknown>).interval = 'five seconds';
    expect(composeSchemaProblems(broken)).toContain(
      '/services/postgres/healthcheck/interval must match format "duration"',
    );
  });

  it('cross-checks: unknown build target, wrong peer, stray variable, dependency without healthcheck', () => {
    const broken = structuredClone(compose);
    const trainer = broken.services.trainer as NonNullable<ComposeFile['services'][string]>;
    trainer.build = { ...trainer.build, target: 'trainer-cuda' };
    trainer.environment = {
      ...trainer.environment,
      BALLAST_REGISTRY_ADDR: 'registry:50054',
      BALLAST_GPU: '1',
    };
    delete broken.services.redis?.healthcheck;
    expect(composeProblems(broken, dockerfile)).toEqual([
      'trainer: build target trainer-cuda is not a Dockerfile stage',
      'trainer: sets BALLAST_GPU, which trainer does not read',
      'trainer: BALLAST_REGISTRY_ADDR is registry:50054, expected registry:50053',
      'ingest: waits for redis to be healthy, but redis has no healthcheck',
      'feature: waits for redis to be healthy, but redis has no healthcheck',
      'registry: waits for redis to be healthy, but redis has no healthcheck',
      'inference: waits for redis to be healthy, but redis has no healthcheck',
      'monitor: waits for redis to be healthy, but redis has no healthcheck',
      'trainer: waits for redis to be healthy, but redis has no healthcheck',
    ]);
  });

  it('cross-checks: Redis without its append-only file', () => {
    const broken = structuredClone(compose);
    (broken.services.redis as Record<string, unknown>).command = ['redis-server'];
    expect(composeProblems(broken, dockerfile)).toEqual([
      'redis: append-only file (--appendonly yes) is off',
    ]);
  });

  it('cross-checks: Grafana looking for dashboards where none are mounted, a datasource on no service', () => {
    const badProviders = {
      apiVersion: 1,
      providers: [{ name: 'x', type: 'file', options: { path: '/dashboards' } }],
    };
    const badSources = { apiVersion: 1, datasources: [{ name: 'Prometheus', url: 'http://prom:9090' }] };
    expect(grafanaProblems(compose, badSources, badProviders)).toEqual([
      'dashboard provider reads /dashboards, which nothing is mounted at',
      'datasource Prometheus: http://prom:9090 is no compose service port',
    ]);
  });
});
