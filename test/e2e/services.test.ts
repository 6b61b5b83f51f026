import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GRPC_SERVICES, type GrpcServiceName } from '@ballast/config';
import {
  Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from '@ballast/contracts/grpc/health/v1/health_pb.js';
import { createClient } from '@ballast/grpc-kit';
import { reflectionClient } from '@ballast/grpc-kit/testing';
import { SERVICE_DESCRIPTORS } from '@ballast/sdk';
import { afterAll, describe, expect, it } from 'vitest';
import {
  eventually,
  promtoolCheck,
  pythonHealthProbe,
  type RunningProcess,
  startServiceProcess,
  TEST_DATABASE_URL,
  waitServing,
} from './support.js';

const dataDir = mkdtempSync(join(tmpdir(), 'ballast-e2e-'));
const running: RunningProcess[] = [];

afterAll(async () => {
  await Promise.all(running.map((p) => p.stop('SIGKILL')));
  rmSync(dataDir, { recursive: true, force: true });
});

describe.each(GRPC_SERVICES.map((s) => [s]))('%s as a process', (service: GrpcServiceName) => {
  const typeName = SERVICE_DESCRIPTORS[service].typeName;
  let proc: RunningProcess;
  let address: string;

  it('turns SERVING under its full name once its stores answer', async () => {
    proc = await startServiceProcess(service, {
      BALLAST_DATABASE_URL: TEST_DATABASE_URL,
      BALLAST_DATA_DIR: dataDir,
    });
    running.push(proc);
    address = `127.0.0.1:${proc.grpcPort}`;
    expect(await waitServing(address, typeName)).toBe(ServingStatus.SERVING);
    expect(await waitServing(address, '')).toBe(ServingStatus.SERVING);
  });

  it('answers a health probe from a non-Node client (python grpcio, upstream proto)', () => {
    const probe = pythonHealthProbe(address, typeName);
    expect(probe.output.trim()).toBe('SERVING');
    expect(probe.status).toBe(0);
  });

  it('lists its service through reflection', async () => {
    expect(await reflectionClient(address).listServices()).toEqual(
      expect.arrayContaining([typeName, 'grpc.health.v1.Health']),
    );
  });

  it('serves /metrics that promtool accepts, and /readyz', async () => {
    const base = `http://127.0.0.1:${proc.httpPort}`;
    const metrics = await fetch(`${base}/metrics`);
    expect(metrics.status).toBe(200);
    const body = await metrics.text();
    expect(body).toContain('grpc_server_handled_total');
    // The process figures monitor's operations view reads from every service.
    expect(body).toMatch(/^process_cpu_seconds_total(\{[^}]*\})? [\d.e+-]+$/m);
    expect(body).toMatch(/^process_resident_memory_bytes(\{[^}]*\})? [1-9][\d.e+]*$/m);
    expect(body).toMatch(/^nodejs_eventloop_lag_seconds(\{[^}]*\})? [\d.e+-]+$/m);
    const check = promtoolCheck(body);
    expect(check.output).toBe('');
    expect(check.status).toBe(0);
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
  });

  it('drains and exits 0 on SIGTERM', async () => {
    expect(await proc.stop('SIGTERM')).toBe(0);
    expect(proc.output()).toContain('stopped');
  });
});

describe('trainer as a process', () => {
  it('reports ready on /readyz once Redis answers, serves /metrics, exits 0 on SIGTERM', async () => {
    const proc = await startServiceProcess('trainer', { BALLAST_DATA_DIR: dataDir });
    running.push(proc);
    const base = `http://127.0.0.1:${proc.httpPort}`;
    await eventually(
      async () => ((await fetch(`${base}/readyz`)).status === 200 ? true : undefined),
      'trainer ready',
    );
    const body = await (await fetch(`${base}/metrics`)).text();
    expect(body).toContain('process_resident_memory_bytes');
    expect(promtoolCheck(body).status).toBe(0);
    expect(await proc.stop('SIGTERM')).toBe(0);
  });
});

describe('embedded storage and dependency outages', () => {
  it('runs the registry on embedded PGlite when no database URL is set', async () => {
    const proc = await startServiceProcess('registry', { BALLAST_DATA_DIR: dataDir });
    running.push(proc);
    const address = `127.0.0.1:${proc.grpcPort}`;
    expect(await waitServing(address, SERVICE_DESCRIPTORS.registry.typeName)).toBe(ServingStatus.SERVING);
    expect(await proc.stop()).toBe(0);
  });

  it('stays NOT_SERVING while Redis is unreachable, without crashing', async () => {
    const proc = await startServiceProcess('inference', { BALLAST_REDIS_URL: 'redis://127.0.0.1:1' });
    running.push(proc);
    const address = `127.0.0.1:${proc.grpcPort}`;
    const health = createClient(Health, { address, deadlineMs: 1_000, retry: false });
    try {
      const status = await eventually(async () => (await health.check({ service: '' })).status, 'liveness');
      expect(status).toBe(ServingStatus.SERVING);
      const { status: readiness } = await health.check({ service: SERVICE_DESCRIPTORS.inference.typeName });
      expect(readiness).toBe(ServingStatus.NOT_SERVING);
      expect(proc.child.exitCode).toBeNull();
    } finally {
      health.close();
    }
    expect(await proc.stop()).toBe(0);
  });

  it('refuses to start with bad configuration, naming every bad variable', async () => {
    const proc = await startServiceProcess('registry', {
      BALLAST_REGISTRY_HTTP_PORT: 'not-a-port',
      BALLAST_LOG_LEVEL: 'loud',
    });
    const code = await new Promise<number | null>((resolve) =>
      proc.child.once('exit', (exit) => resolve(exit)),
    );
    expect(code).toBe(1);
    expect(proc.output()).toContain('BALLAST_REGISTRY_HTTP_PORT');
    expect(proc.output()).toContain('BALLAST_LOG_LEVEL');
  });
});
