import { describe, expect, it } from 'vitest';
import { k8sProblems } from './checks.js';
import { schemaProblems, strictFieldProblems } from './k8s-schema.js';
import { type K8sObject, kustomizationDirs, kustomizeBuild, strategicMerge } from './kustomize.js';
import { deployPath } from './paths.js';

const k8s = deployPath('k8s');
const dirs = kustomizationDirs(k8s);
const rendered = new Map(dirs.map((dir) => [dir.slice(k8s.length + 1), kustomizeBuild(dir)]));
const base = rendered.get('base') ?? [];

const clone = () => structuredClone(base) as K8sObject[];
const deployment = (objects: K8sObject[], name: string) =>
  objects.find((o) => o.kind === 'Deployment' && o.metadata.name === name) as K8sObject & {
    spec: { template: { spec: { containers: Array<Record<string, unknown>> } } };
  };

describe('kustomize overlays', () => {
  it('has a base and the dev, gpu, redis-cluster and redis-sentinel overlays, each with a kustomization.yaml', () => {
    expect([...rendered.keys()]).toEqual([
      'base',
      'overlays/dev',
      'overlays/gpu',
      'overlays/redis-cluster',
      'overlays/redis-sentinel',
    ]);
    for (const objects of rendered.values()) expect(objects.length).toBeGreaterThan(20);
  });

  for (const [name, objects] of rendered) {
    it(`${name}: every object is valid against the Kubernetes schemas`, () => {
      expect(objects.flatMap(schemaProblems)).toEqual([]);
    });

    it(`${name}: no object has a field its API type lacks`, () => {
      expect(strictFieldProblems(objects)).toEqual([]);
    });

    it(`${name}: matches the services (ports, probes, Services, PDBs, HPA, env, images)`, () => {
      expect(k8sProblems(objects, { gpu: name === 'overlays/gpu' })).toEqual([]);
    });
  }

  for (const [name, objects] of rendered) {
    if (name === 'overlays/dev') continue;
    it(`${name}: registry, monitor and trainer run 2 replicas, the registry on the postgres blob store`, () => {
      for (const service of ['registry', 'monitor', 'trainer'])
        expect(deployment(objects, service).spec, service).toMatchObject({ replicas: 2 });
      const config = objects.find((o) => o.metadata.name === 'ballast-registry') as K8sObject & {
        data: object;
      };
      expect(config.data).toMatchObject({ BALLAST_REGISTRY_BLOB_STORE: 'postgres' });
      expect(objects.filter((o) => o.kind === 'PersistentVolumeClaim')).toEqual([]);
    });
  }

  it('dev overlay: one replica of each, with budgets that let a node drain', () => {
    const dev = rendered.get('overlays/dev') ?? [];
    for (const service of ['registry', 'monitor', 'trainer', 'ingest', 'feature'])
      expect(deployment(dev, service).spec, service).toMatchObject({ replicas: 1 });
  });

  it('redis overlays: the single Redis gives way to a cluster or sentinels, named in BALLAST_REDIS_URL', () => {
    const redisUrl = (objects: K8sObject[]) =>
      (
        objects.find((o) => o.metadata.name === 'ballast-common') as K8sObject & {
          data: Record<string, string>;
        }
      ).data.BALLAST_REDIS_URL;
    const cluster = rendered.get('overlays/redis-cluster') ?? [];
    expect(cluster.some((o) => o.metadata.name === 'redis')).toBe(false);
    expect(redisUrl(cluster)).toBe(
      'redis+cluster://redis-cluster-0.redis-cluster:6379,redis-cluster-1.redis-cluster:6379,redis-cluster-2.redis-cluster:6379',
    );
    const nodes = cluster.find((o) => o.kind === 'StatefulSet' && o.metadata.name === 'redis-cluster');
    expect(nodes?.spec).toMatchObject({ replicas: 6, serviceName: 'redis-cluster' });
    const args = JSON.stringify(nodes?.spec);
    for (const flag of ['--cluster-enabled yes', '--appendonly yes', '--maxmemory-policy noeviction'])
      expect(args).toContain(flag);
    expect(JSON.stringify(cluster.find((o) => o.kind === 'Job'))).toContain('--cluster-replicas 1');

    const sentinel = rendered.get('overlays/redis-sentinel') ?? [];
    expect(sentinel.some((o) => o.metadata.name === 'redis')).toBe(false);
    expect(redisUrl(sentinel)).toMatch(
      /^redis\+sentinel:\/\/([a-z0-9.-]+:26379,){2}[a-z0-9.-]+:26379\/mymaster$/,
    );
  });

  it('gpu overlay: inference and trainer ask for a GPU on GPU nodes; nothing else does', () => {
    const gpu = rendered.get('overlays/gpu') ?? [];
    for (const name of ['inference', 'trainer']) {
      const spec = deployment(gpu, name).spec.template.spec as Record<string, unknown>;
      expect(JSON.stringify(spec)).toContain('"nvidia.com/gpu":1');
      expect(spec.nodeSelector).toEqual({ 'nvidia.com/gpu.present': 'true' });
    }
    expect(JSON.stringify(deployment(gpu, 'ingest'))).not.toContain('nvidia.com/gpu');
    // The patch merged into the container by name: the base's resources and probes are kept.
    const container = deployment(gpu, 'inference').spec.template.spec.containers[0] ?? {};
    expect(container.readinessProbe).toBeDefined();
    expect(container.resources).toMatchObject({ requests: { cpu: '1' }, limits: { memory: '4Gi' } });
  });
});

describe('the validators catch broken manifests', () => {
  it('schema: a wrongly typed field and a missing required one', () => {
    const objects = clone();
    const d = deployment(objects, 'ingest');
    const container = d.spec.template.spec.containers[0] as Record<string, unknown>;
    container.ports = [{ name: 'grpc', containerPort: 'fifty' }];
    delete container.name;
    const problems = schemaProblems(d);
    expect(problems.join('\n')).toMatch(/containerPort must be integer/);
    expect(problems.join('\n')).toMatch(/containers\/0 must have required property name/);
  });

  it('schema: an unknown kind is refused', () => {
    expect(schemaProblems({ apiVersion: 'apps/v1', kind: 'Deploymnet', metadata: { name: 'x' } })).toEqual([
      'Deploymnet/x: unknown type apps/v1 Deploymnet (no schema in kubernetes-models)',
    ]);
  });

  it('strict fields: a misspelt field is reported with the object it is in', () => {
    const objects = clone();
    const d = deployment(objects, 'registry');
    const container = d.spec.template.spec.containers[0] as Record<string, unknown>;
    container.readinesProbe = container.readinessProbe;
    const problems = strictFieldProblems([d]);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(
      /^Deployment\/registry: .*readinesProbe.* does not exist in type 'IContainer'/,
    );
  });

  it('cross-checks: probe on the wrong port, non-headless Service, stray env var, wrong peer address', () => {
    const objects = clone();
    const inference = deployment(objects, 'inference').spec.template.spec.containers[0] as Record<
      string,
      unknown
    >;
    (inference.readinessProbe as { grpc: { port: number } }).grpc.port = 9454;
    const service = objects.find((o) => o.kind === 'Service' && o.metadata.name === 'registry') as K8sObject;
    (service.spec as Record<string, unknown>).clusterIP = '10.0.0.10';
    const config = objects.find((o) => o.metadata.name === 'ballast-trainer') as K8sObject & {
      data: Record<string, string>;
    };
    config.data.BALLAST_FEATURE_ADDR = 'feature:50051';
    config.data.BALLAST_TRAINER_GPUS = '1';
    expect(k8sProblems(objects, { gpu: false })).toEqual([
      'Service/registry: not headless (clusterIP: None)',
      'inference: readinessProbe does not probe the gRPC port 50054',
      'trainer: sets BALLAST_TRAINER_GPUS, which trainer does not read',
      'trainer: BALLAST_FEATURE_ADDR is "feature:50051", expected the headless Service feature:50052',
    ]);
  });

  it('cross-checks: replicas without a budget, a budget that blocks drains, RWO volumes, a replicated registry on fs', () => {
    const objects = clone();
    objects.splice(
      objects.findIndex((o) => o.kind === 'PodDisruptionBudget' && o.metadata.name === 'trainer'),
      1,
    );
    const monitorPdb = objects.find((o) => o.kind === 'PodDisruptionBudget' && o.metadata.name === 'monitor');
    (monitorPdb as K8sObject & { spec: Record<string, unknown> }).spec.minAvailable = 2;
    const config = objects.find((o) => o.metadata.name === 'ballast-registry') as K8sObject & {
      data: Record<string, string>;
    };
    delete config.data.BALLAST_REGISTRY_BLOB_STORE;
    const registry = deployment(objects, 'registry').spec.template.spec as Record<string, unknown>;
    registry.volumes = [{ name: 'artifacts', persistentVolumeClaim: { claimName: 'registry-artifacts' } }];
    objects.push({
      apiVersion: 'v1',
      kind: 'PersistentVolumeClaim',
      metadata: { name: 'registry-artifacts' },
      spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '20Gi' } } },
    } as K8sObject);
    expect(k8sProblems(objects, { gpu: false })).toEqual([
      'trainer: no PodDisruptionBudget selecting its pods',
      'Deployment/registry: 2 replicas mount the ReadWriteOnce claim registry-artifacts',
      "PodDisruptionBudget/monitor: allows no disruption of Deployment/monitor's 2 pod(s), so no node can drain",
      'Deployment/trainer: 2 replicas and no PodDisruptionBudget',
      'registry: 2 replicas with BALLAST_REGISTRY_BLOB_STORE=fs: each would keep its own artifacts (use postgres or s3)',
    ]);
  });

  it('cross-checks: a real-looking secret is refused', () => {
    const objects = clone();
    const secret = objects.find(
      (o) => o.kind === 'Secret' && o.metadata.name === 'ballast-auth',
    ) as K8sObject & {
      stringData: Record<string, string>;
    };
    secret.stringData.BALLAST_AUTH_TOKEN = 'hunter2';
    expect(k8sProblems(objects, { gpu: false })).toEqual([
      'Secret/ballast-auth: BALLAST_AUTH_TOKEN is not a marked placeholder',
    ]);
  });
});

describe('strategic merge', () => {
  it('merges containers by name and replaces other lists', () => {
    const target = {
      spec: {
        containers: [{ name: 'a', image: 'x', args: ['1'] }, { name: 'b' }],
        tolerations: [{ key: 'k' }],
      },
    };
    const patch = { spec: { containers: [{ name: 'a', args: ['2'] }], tolerations: [{ key: 'g' }] } };
    expect(strategicMerge(target, patch)).toEqual({
      spec: {
        containers: [{ name: 'a', image: 'x', args: ['2'] }, { name: 'b' }],
        tolerations: [{ key: 'g' }],
      },
    });
  });
});
