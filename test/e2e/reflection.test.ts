import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { GRPC_SERVICES, type GrpcServiceName } from '@ballast/config';
import {
  createTestDatabase,
  type ServiceProcess,
  startServiceProcess,
  type TestDatabase,
} from '@ballast/grpc-kit/testing';
import { SERVICE_DESCRIPTORS } from '@ballast/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// Server reflection as strict outside tools (grpcurl, grpcui, Postman) use it, checked from
// Python: reflection_client.py builds what each service answers into a strict DescriptorPool
// and calls one method per served service with dynamic messages only.

const script = fileURLToPath(new URL('reflection_client.py', import.meta.url));

/**
 * One cheap call per served service: the method's full path, its request as proto3 JSON, and
 * a piece of the answer, decoded by Python with the types reflection gave it.
 */
const CALLS: Record<GrpcServiceName, Array<[string, object, string]>> = {
  ingest: [
    [
      '/ballast.ingest.v1.IngestService/CreateDataset',
      {
        name: 'reflected',
        schema: {
          fields: [
            { name: 'event_id', type: 'FIELD_TYPE_STRING', required: true },
            { name: 'day', type: 'FIELD_TYPE_TIMESTAMP', required: true },
            { name: 'units', type: 'FIELD_TYPE_FLOAT' },
          ],
          eventIdField: 'event_id',
          eventTimeField: 'day',
        },
      },
      '"createTime": "',
    ],
  ],
  feature: [
    [
      '/ballast.feature.v1.FeatureService/ApplyFeatureView',
      {
        definition: {
          name: 'reflected',
          source: {
            dataset: 'sales',
            eventTimeField: 'day',
            fields: [
              { name: 'day', type: 'SOURCE_FIELD_TYPE_TIMESTAMP' },
              { name: 'sku', type: 'SOURCE_FIELD_TYPE_STRING' },
              { name: 'units', type: 'SOURCE_FIELD_TYPE_FLOAT' },
            ],
          },
          entityFields: ['sku'],
          label: { name: 'units_next_day', field: 'units', leadDays: 1 },
          features: [{ name: 'units', raw: { field: 'units' } }],
          onlineMaxAge: '3600s',
        },
      },
      '"onlineMaxAge": "3600s"',
    ],
  ],
  registry: [
    [
      '/ballast.registry.v1.RegistryService/CreateModel',
      { name: 'reflected', task: 'TASK_REGRESSION', ownerTeam: 'tools', tags: { via: 'reflection' } },
      '"tags": {"via": "reflection"}',
    ],
  ],
  inference: [
    ['/ballast.inference.v1.InferenceService/GetServingStatus', {}, '"backend": "'],
    ['/inference.GRPCInferenceService/ServerLive', {}, '{"live": true}'],
  ],
  monitor: [
    [
      '/ballast.monitor.v1.MonitorService/PutAlertRule',
      {
        rule: {
          model: 'reflected',
          name: 'psi-high',
          metric: 'ALERT_METRIC_MAX_PSI',
          threshold: 0.25,
          for: '300s',
        },
      },
      '"for": "300s"',
    ],
  ],
};

async function reflectFromPython(address: string, calls: Array<[string, object, string]>) {
  const args = [
    script,
    address,
    ...calls.flatMap(([path, request]) => ['--call', path, JSON.stringify(request)]),
  ];
  const child = spawn('/usr/bin/python3', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(timer);
  return { code, output };
}

let db: TestDatabase;
const running = new Map<GrpcServiceName, ServiceProcess>();

beforeAll(async () => {
  db = await createTestDatabase('reflection');
  // One at a time: five services migrating one database at once only slow each other down.
  for (const service of GRPC_SERVICES) {
    running.set(
      service,
      await startServiceProcess({
        package: `@ballast/${service}`,
        env: { ...db.env, BALLAST_REDIS_URL: process.env.BALLAST_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379' },
        ready: SERVICE_DESCRIPTORS[service].typeName,
      }),
    );
  }
}, 600_000);

afterAll(async () => {
  await Promise.all([...running.values()].map((p) => p.stop('SIGKILL')));
  await db?.close();
});

describe.each(GRPC_SERVICES.map((s) => [s]))('%s reflection', (service: GrpcServiceName) => {
  it('satisfies a strict Python client (grpcio, DescriptorPool, dynamic messages)', async () => {
    const proc = running.get(service);
    if (!proc) throw new Error(`${service} did not start`);
    const { code, output } = await reflectFromPython(proc.address, CALLS[service]);
    console.log(`--- ${service} (${proc.address})\n${output}`);
    expect(output).not.toContain('FAIL');
    expect(output).toContain(`${SERVICE_DESCRIPTORS[service].typeName}:`);
    expect(output).toContain('grpc.reflection.v1.ServerReflection:');
    for (const [path, , answer] of CALLS[service]) {
      expect(output).toMatch(new RegExp(`^${path} -> \\{.*$`, 'm'));
      expect(output.split('\n').find((line) => line.startsWith(`${path} -> `))).toContain(answer);
    }
    expect(output).toContain('OK: v1 and v1alpha agree');
    expect(code).toBe(0);
  }, 90_000);
});
