// Cross-checks between the manifests and the code: each returns a list of problems (empty: fine),
// so a test can show both that the real manifests pass and that a broken one is caught.
import { existsSync } from 'node:fs';
import type { ComposeFile } from './compose.js';
import { baseImage, type Dockerfile, effective, effectiveEnv, lineage } from './dockerfile.js';
import type { K8sObject } from './kustomize.js';
import { splitImage } from './kustomize.js';
import { deployPath, repoPath } from './paths.js';
import {
  addrVariable,
  DEFAULT_PORTS,
  HEALTH_SERVICE_NAMES,
  isGrpc,
  peersOf,
  SERVICES,
  type ServiceName,
  variablesReadBy,
} from './repo.js';
import { isRecord } from './yaml.js';

export const GPU_SERVICES: readonly ServiceName[] = ['inference', 'trainer'];

// ------------------------------------------------------------------------------------------------
// Dockerfile

export function dockerfileProblems(dockerfile: Dockerfile): string[] {
  const problems: string[] = [];
  const names = dockerfile.stages.map((s) => s.name);
  const stage = (name: string) => dockerfile.stages.find((s) => s.name === name);
  dockerfile.stages.forEach((s, index) => {
    for (const i of s.instructions) {
      if (i.keyword === 'HEALTHCHECK')
        problems.push(`line ${i.line}: HEALTHCHECK (orchestrators probe gRPC health)`);
      const from = /--from=(\S+)/.exec(i.args)?.[1];
      if (i.keyword === 'COPY' && from && !from.includes('/') && !from.includes(':')) {
        if (!names.slice(0, index).includes(from))
          problems.push(`line ${i.line}: COPY --from=${from}: no earlier stage`);
      }
    }
  });
  const targets = [
    ...SERVICES.map((s) => [s, s] as const),
    ...GPU_SERVICES.map((s) => [`${s}-gpu`, s] as const),
  ];
  for (const [target, service] of targets) {
    const s = stage(target);
    if (!s) {
      problems.push(`no target ${target}`);
      continue;
    }
    const user = effective(s, 'USER');
    if (!user || user === 'root' || user.startsWith('0'))
      problems.push(`${target}: runs as root (USER ${user ?? 'unset'})`);
    const cmd = effective(s, 'CMD') ?? '';
    const entry = `services/${service}/dist/main.js`;
    if (!cmd.includes(entry)) problems.push(`${target}: CMD does not start ${entry}`);
    if (!existsSync(repoPath('services', service, 'src', 'main.ts')))
      problems.push(`${target}: services/${service}/src/main.ts does not exist`);
    const entrypoint = effective(s, 'ENTRYPOINT') ?? '';
    if (!entrypoint.includes('@ballast/telemetry/register'))
      problems.push(`${target}: ENTRYPOINT does not preload @ballast/telemetry/register`);
    const env = effectiveEnv(s);
    if (env.OTEL_SERVICE_NAME !== `ballast-${service}`)
      problems.push(`${target}: OTEL_SERVICE_NAME is ${env.OTEL_SERVICE_NAME}, expected ballast-${service}`);
    const image = baseImage(s);
    const copies = lineage(s).flatMap((x) => x.instructions.filter((i) => i.keyword === 'COPY'));
    const depsStage = copies.map((i) => /--from=(deps-\S+)/.exec(i.args)?.[1]).find(Boolean);
    const deps = depsStage ? stage(depsStage) : undefined;
    const install = deps
      ? lineage(deps).flatMap((x) => x.instructions.filter((i) => i.keyword === 'RUN'))
      : [];
    if (!install.some((i) => i.args.includes(`--workspace=@ballast/${service}`)))
      problems.push(`${target}: its dependencies are not installed for the @ballast/${service} workspace`);
    if (!install.some((i) => i.args.includes('--omit=dev')))
      problems.push(`${target}: dev dependencies not pruned`);
    if (target.endsWith('-gpu')) {
      if (!/^nvidia\/cuda:.*cudnn.*runtime/.test(image))
        problems.push(`${target}: base ${image} is not a CUDA+cuDNN runtime`);
      if (env.BALLAST_TF_BACKEND !== 'tensorflow')
        problems.push(`${target}: BALLAST_TF_BACKEND is not tensorflow`);
      if (install.some((i) => i.args.includes('--omit=optional')))
        problems.push(`${target}: --omit=optional would leave out @tensorflow/tfjs-node-gpu`);
      if (!install.some((i) => i.args.includes('@tensorflow/tfjs-node-gpu')))
        problems.push(`${target}: does not check that @tensorflow/tfjs-node-gpu installed`);
    } else if (!/^node:20[\w.-]*-slim$/.test(image))
      problems.push(`${target}: base ${image} is not node:20 slim`);
  }
  return problems;
}

// ------------------------------------------------------------------------------------------------
// docker-compose

function hostOf(url: string): { host: string; port: string } | undefined {
  try {
    const u = new URL(url);
    return { host: u.hostname, port: u.port };
  } catch {
    return undefined;
  }
}

export function composeProblems(compose: ComposeFile, dockerfile: Dockerfile): string[] {
  const problems: string[] = [];
  const services = compose.services;
  const stageNames = new Set(dockerfile.stages.map((s) => s.name));
  const publishes = (name: string, port: number) =>
    (services[name]?.ports ?? []).some((p) => String(p).split('/')[0]?.split(':').at(-1) === String(port));

  for (const s of SERVICES) {
    const svc = services[s];
    if (!svc) {
      problems.push(`service ${s} is missing`);
      continue;
    }
    const target = svc.build?.target;
    if (!target || !stageNames.has(target))
      problems.push(`${s}: build target ${target} is not a Dockerfile stage`);
    if (svc.build?.dockerfile !== 'deploy/Dockerfile')
      problems.push(`${s}: build.dockerfile is not deploy/Dockerfile`);
    const { grpc, http } = DEFAULT_PORTS[s];
    for (const port of [grpc, http])
      if (port !== null && !publishes(s, port)) problems.push(`${s}: port ${port} not published`);

    const env = Object.fromEntries(Object.entries(svc.environment ?? {}).map(([k, v]) => [k, String(v)]));
    const reads = variablesReadBy(s);
    for (const key of Object.keys(env))
      if (!reads.has(key)) problems.push(`${s}: sets ${key}, which ${s} does not read`);
    if (env.OTEL_SERVICE_NAME !== `ballast-${s}`)
      problems.push(`${s}: OTEL_SERVICE_NAME is not ballast-${s}`);
    for (const peer of peersOf(s)) {
      const want = `${peer}:${DEFAULT_PORTS[peer].grpc}`;
      const addr = env[addrVariable(peer)];
      if (addr !== want) problems.push(`${s}: ${addrVariable(peer)} is ${addr}, expected ${want}`);
    }
    const otlp = hostOf(env.OTEL_EXPORTER_OTLP_ENDPOINT ?? '');
    if (!otlp || !services[otlp.host] || otlp.port !== '4317')
      problems.push(
        `${s}: OTEL_EXPORTER_OTLP_ENDPOINT does not reach an OTLP/gRPC receiver (port 4317) in this file`,
      );
    for (const key of ['BALLAST_REDIS_URL', 'BALLAST_DATABASE_URL']) {
      if (env[key] === undefined) continue;
      const target = hostOf(env[key]);
      if (!target || !services[target.host]) problems.push(`${s}: ${key} names no service of this file`);
    }
    const test = JSON.stringify(svc.healthcheck?.test ?? '');
    if (!test.includes(`:${http}/readyz`))
      problems.push(`${s}: healthcheck does not probe /readyz on ${http}`);
  }

  for (const [name, svc] of Object.entries(services)) {
    const deps = svc.depends_on;
    if (!deps) continue;
    const entries = Array.isArray(deps)
      ? deps.map((d) => [d, { condition: 'service_started' }] as const)
      : Object.entries(deps);
    for (const [dep, { condition }] of entries) {
      if (!services[dep]) problems.push(`${name}: depends on ${dep}, which is not a service`);
      else if (condition === 'service_healthy' && !services[dep].healthcheck)
        problems.push(`${name}: waits for ${dep} to be healthy, but ${dep} has no healthcheck`);
    }
  }

  const redis = JSON.stringify(services.redis?.command ?? '');
  if (!/--appendonly","yes"/.test(redis)) problems.push('redis: append-only file (--appendonly yes) is off');
  if (!services.jaeger || !publishes('jaeger', 4317))
    problems.push('jaeger: OTLP/gRPC port 4317 is not published');

  for (const name of ['prometheus', 'grafana']) {
    for (const volume of services[name]?.volumes ?? []) {
      const source = volume.split(':')[0] ?? '';
      if (source.startsWith('./') && !existsSync(deployPath(source)))
        problems.push(`${name}: mounts ${source}, which does not exist`);
    }
  }
  return problems;
}

/** Prometheus config: a job per service scraping its HTTP port. */
export function prometheusProblems(config: unknown): string[] {
  const problems: string[] = [];
  const jobs =
    isRecord(config) && Array.isArray(config.scrape_configs) ? (config.scrape_configs as unknown[]) : [];
  for (const s of SERVICES) {
    const job = jobs.find((j) => isRecord(j) && j.job_name === s) as Record<string, unknown> | undefined;
    if (!job) {
      problems.push(`no scrape job for ${s}`);
      continue;
    }
    const text = JSON.stringify(job);
    const http = DEFAULT_PORTS[s].http;
    const dns = text.includes(`"names":["${s}"]`) && text.includes(`"port":${http}`);
    if (!dns && !text.includes(`"${s}:${http}"`))
      problems.push(`scrape job ${s} does not target ${s}:${http}`);
  }
  return problems;
}

// ------------------------------------------------------------------------------------------------
// Kubernetes

type Container = Record<string, unknown> & {
  name: string;
  image?: string;
  ports?: Array<{ name?: string; containerPort: number }>;
  env?: Array<{ name: string; value?: string }>;
  envFrom?: Array<{ configMapRef?: { name: string }; secretRef?: { name: string } }>;
  resources?: { limits?: Record<string, unknown>; requests?: Record<string, unknown> };
};

const get = (o: unknown, ...path: string[]): unknown =>
  path.reduce<unknown>((node, key) => (isRecord(node) ? node[key] : undefined), o);

function podSpec(o: K8sObject): Record<string, unknown> | undefined {
  const spec = get(o, 'spec', 'template', 'spec');
  return isRecord(spec) ? spec : undefined;
}

const matches = (selector: unknown, labels: unknown) =>
  isRecord(selector) &&
  isRecord(labels) &&
  Object.keys(selector).length > 0 &&
  Object.entries(selector).every(([k, v]) => labels[k] === v);

/** Resolves a probe's port (a number, or a container port name) to a number. */
function probePort(probe: unknown, container: Container): number | undefined {
  const handler = get(probe, 'grpc') ?? get(probe, 'httpGet') ?? get(probe, 'tcpSocket');
  const port = get(handler, 'port');
  if (typeof port === 'number') return port;
  return container.ports?.find((p) => p.name === port)?.containerPort;
}

export interface K8sCheckOptions {
  /** The overlay that puts inference and trainer on GPUs. */
  gpu: boolean;
}

export function k8sProblems(objects: readonly K8sObject[], options: K8sCheckOptions): string[] {
  const problems: string[] = [];
  const find = (kind: string, name: string) =>
    objects.find((o) => o.kind === kind && o.metadata.name === name);
  const configData = (kind: 'ConfigMap' | 'Secret', name: string) => {
    const o = find(kind, name);
    if (!o) return undefined;
    return {
      ...(get(o, 'data') as Record<string, string> | undefined),
      ...(get(o, 'stringData') as Record<string, string> | undefined),
    };
  };

  for (const o of objects) {
    if (o.kind === 'Deployment' || o.kind === 'StatefulSet') {
      if (
        !matches(get(o, 'spec', 'selector', 'matchLabels'), get(o, 'spec', 'template', 'metadata', 'labels'))
      )
        problems.push(`${o.kind}/${o.metadata.name}: selector does not match the pod template's labels`);
    }
    if (o.kind === 'Secret') {
      for (const [key, value] of Object.entries(configData('Secret', o.metadata.name) ?? {}))
        if (!String(value).includes('CHANGE-ME'))
          problems.push(`Secret/${o.metadata.name}: ${key} is not a marked placeholder`);
    }
  }

  for (const s of SERVICES) {
    const deployment = find('Deployment', s);
    const spec = deployment && podSpec(deployment);
    const container = (spec?.containers as Container[] | undefined)?.find((c) => c.name === s);
    if (!deployment || !spec || !container) {
      problems.push(`Deployment/${s} with a container ${s} is missing`);
      continue;
    }
    const labels = get(deployment, 'spec', 'template', 'metadata', 'labels');
    const { grpc, http } = DEFAULT_PORTS[s];
    const portOf = (name: string) => container.ports?.find((p) => p.name === name)?.containerPort;
    if (portOf('http') !== http)
      problems.push(`${s}: container port "http" is ${portOf('http')}, expected ${http}`);

    // Probes: gRPC health on the gRPC port (readiness under the service's full name), or HTTP for trainer.
    const probes = ['startupProbe', 'livenessProbe', 'readinessProbe'] as const;
    for (const p of probes) {
      const probe = container[p];
      if (!probe) {
        problems.push(`${s}: no ${p}`);
        continue;
      }
      if (isGrpc(s)) {
        if (!get(probe, 'grpc')) problems.push(`${s}: ${p} is not a gRPC health probe`);
        else if (probePort(probe, container) !== grpc)
          problems.push(`${s}: ${p} does not probe the gRPC port ${grpc}`);
        const service = get(probe, 'grpc', 'service');
        if (p === 'readinessProbe' && service !== HEALTH_SERVICE_NAMES[s])
          problems.push(`${s}: readiness asks for "${service}", expected ${HEALTH_SERVICE_NAMES[s]}`);
        if (p !== 'readinessProbe' && service)
          problems.push(`${s}: ${p} should ask for the empty service (liveness)`);
      } else if (probePort(probe, container) !== http)
        problems.push(`${s}: ${p} does not probe the HTTP port ${http}`);
    }
    if (isGrpc(s) && portOf('grpc') !== grpc)
      problems.push(`${s}: container port "grpc" is ${portOf('grpc')}, expected ${grpc}`);

    // Services: headless for gRPC (client-side round robin), a normal one for HTTP.
    if (isGrpc(s)) {
      const headless = find('Service', s);
      if (!headless) problems.push(`Service/${s} is missing`);
      else {
        if (get(headless, 'spec', 'clusterIP') !== 'None')
          problems.push(`Service/${s}: not headless (clusterIP: None)`);
        const ports = (get(headless, 'spec', 'ports') as Array<Record<string, unknown>> | undefined) ?? [];
        if (!ports.some((p) => p.port === grpc && (p.targetPort === 'grpc' || p.targetPort === grpc)))
          problems.push(`Service/${s}: does not serve port ${grpc} to the gRPC container port`);
        if (!matches(get(headless, 'spec', 'selector'), labels))
          problems.push(`Service/${s}: selects no ${s} pods`);
      }
    }
    const httpService = find('Service', `${s}-http`);
    if (!httpService) problems.push(`Service/${s}-http is missing`);
    else if (!matches(get(httpService, 'spec', 'selector'), labels))
      problems.push(`Service/${s}-http: selects no ${s} pods`);

    const pdb = find('PodDisruptionBudget', s);
    if (!pdb || !matches(get(pdb, 'spec', 'selector', 'matchLabels'), labels))
      problems.push(`${s}: no PodDisruptionBudget selecting its pods`);

    // Environment: everything set is read by the service, every peer address is set and right.
    const env: Record<string, string> = {};
    for (const from of container.envFrom ?? []) {
      const [kind, name] = from.configMapRef
        ? (['ConfigMap', from.configMapRef.name] as const)
        : (['Secret', from.secretRef?.name ?? ''] as const);
      const data = configData(kind, name);
      if (!data) problems.push(`${s}: envFrom ${kind}/${name}, which does not exist`);
      Object.assign(env, data);
    }
    for (const e of container.env ?? []) env[e.name] = e.value ?? '';
    const reads = variablesReadBy(s);
    for (const key of Object.keys(env))
      if (!reads.has(key)) problems.push(`${s}: sets ${key}, which ${s} does not read`);
    if (env.OTEL_SERVICE_NAME !== `ballast-${s}`)
      problems.push(`${s}: OTEL_SERVICE_NAME is not ballast-${s}`);
    if (!env.OTEL_EXPORTER_OTLP_ENDPOINT) problems.push(`${s}: OTEL_EXPORTER_OTLP_ENDPOINT is not set`);
    for (const peer of peersOf(s)) {
      const addr = env[addrVariable(peer)] ?? '';
      const [host = '', port] = addr.replace(/^dns:\/\/\//, '').split(':');
      if (host.split('.')[0] !== peer || Number(port) !== DEFAULT_PORTS[peer].grpc || !find('Service', peer))
        problems.push(
          `${s}: ${addrVariable(peer)} is "${addr}", expected the headless Service ${peer}:${DEFAULT_PORTS[peer].grpc}`,
        );
    }

    // Images: one per Dockerfile target, the GPU ones only in the GPU overlay.
    const gpu = options.gpu && GPU_SERVICES.includes(s);
    const [image = ''] = splitImage(container.image ?? '');
    const expectedImage = `ballast/${s}${gpu ? '-gpu' : ''}`;
    if (image !== expectedImage)
      problems.push(`${s}: image ${image}, expected ${expectedImage} (Dockerfile target)`);
    const gpus = container.resources?.limits?.['nvidia.com/gpu'];
    if (gpu) {
      if (Number(gpus) !== 1) problems.push(`${s}: no nvidia.com/gpu: 1 limit`);
      if (!isRecord(spec.nodeSelector) || Object.keys(spec.nodeSelector).length === 0)
        problems.push(`${s}: no nodeSelector for GPU nodes`);
      const tolerations = (spec.tolerations as Array<Record<string, unknown>> | undefined) ?? [];
      if (!tolerations.some((t) => t.key === 'nvidia.com/gpu'))
        problems.push(`${s}: does not tolerate the nvidia.com/gpu taint`);
      if (env.BALLAST_TF_BACKEND !== 'tensorflow')
        problems.push(`${s}: BALLAST_TF_BACKEND is not tensorflow on GPU`);
    } else if (gpus !== undefined) problems.push(`${s}: requests a GPU outside the GPU overlay`);
  }

  const hpa = objects.find(
    (o) => o.kind === 'HorizontalPodAutoscaler' && get(o, 'spec', 'scaleTargetRef', 'name') === 'inference',
  );
  if (!hpa) problems.push('no HorizontalPodAutoscaler for inference');
  else {
    const metrics = JSON.stringify(get(hpa, 'spec', 'metrics') ?? []);
    if (!metrics.includes('"name":"cpu"')) problems.push('inference HPA does not scale on CPU');
    if (get(find('Deployment', 'inference'), 'spec', 'replicas') !== undefined)
      problems.push('Deployment/inference sets replicas, which fights its HPA');
  }
  const redis = find('StatefulSet', 'redis');
  if (redis && !JSON.stringify(get(redis, 'spec', 'template')).includes('"--appendonly","yes"'))
    problems.push('redis: append-only file (--appendonly yes) is off');
  problems.push(...replicaProblems(objects));
  return problems;
}

/** The replicas a workload runs: its own count, or at least 2 when an HPA scales it. */
function replicasOf(objects: readonly K8sObject[], o: K8sObject): number {
  const scaled = objects.some(
    (h) =>
      h.kind === 'HorizontalPodAutoscaler' &&
      get(h, 'spec', 'scaleTargetRef', 'name') === o.metadata.name &&
      get(h, 'spec', 'scaleTargetRef', 'kind') === o.kind,
  );
  const replicas = get(o, 'spec', 'replicas');
  const count = typeof replicas === 'number' ? replicas : 1;
  return scaled ? Math.max(2, count) : count;
}

/**
 * Replicated workloads: each Deployment or StatefulSet of 2+ pods has a PodDisruptionBudget
 * selecting them; no budget forbids every voluntary disruption (a node could never drain);
 * a Deployment of 2+ pods mounts no ReadWriteOnce claim (one node at most can mount it);
 * and a replicated registry keeps its blobs in a shared store, not on its own disk.
 */
export function replicaProblems(objects: readonly K8sObject[]): string[] {
  const problems: string[] = [];
  const workloads = objects.filter((o) => o.kind === 'Deployment' || o.kind === 'StatefulSet');
  for (const o of workloads) {
    const id = `${o.kind}/${o.metadata.name}`;
    const replicas = replicasOf(objects, o);
    const labels = get(o, 'spec', 'template', 'metadata', 'labels');
    const pdbs = objects.filter(
      (p) => p.kind === 'PodDisruptionBudget' && matches(get(p, 'spec', 'selector', 'matchLabels'), labels),
    );
    if (replicas >= 2 && pdbs.length === 0)
      problems.push(`${id}: ${replicas} replicas and no PodDisruptionBudget`);
    for (const pdb of pdbs) {
      const minAvailable = get(pdb, 'spec', 'minAvailable');
      const maxUnavailable = get(pdb, 'spec', 'maxUnavailable');
      if (
        (typeof minAvailable === 'number' && minAvailable >= replicas && replicas > 0) ||
        maxUnavailable === 0 ||
        minAvailable === '100%' ||
        maxUnavailable === '0%'
      )
        problems.push(
          `PodDisruptionBudget/${pdb.metadata.name}: allows no disruption of ${id}'s ${replicas} pod(s), so no node can drain`,
        );
    }
    if (o.kind !== 'Deployment' || replicas < 2) continue;
    const volumes = (podSpec(o)?.volumes as Array<Record<string, unknown>> | undefined) ?? [];
    for (const volume of volumes) {
      const claim = get(volume, 'persistentVolumeClaim', 'claimName');
      const pvc = objects.find((c) => c.kind === 'PersistentVolumeClaim' && c.metadata.name === claim);
      const modes = (get(pvc, 'spec', 'accessModes') as string[] | undefined) ?? [];
      if (pvc && modes.includes('ReadWriteOnce'))
        problems.push(`${id}: ${replicas} replicas mount the ReadWriteOnce claim ${claim}`);
    }
  }
  const registry = objects.find((o) => o.kind === 'Deployment' && o.metadata.name === 'registry');
  const registryConfig = objects.find(
    (o) => o.kind === 'ConfigMap' && o.metadata.name === 'ballast-registry',
  );
  const blobStore = get(registryConfig, 'data', 'BALLAST_REGISTRY_BLOB_STORE');
  if (registry && replicasOf(objects, registry) >= 2 && blobStore !== 'postgres' && blobStore !== 's3')
    problems.push(
      `registry: ${replicasOf(objects, registry)} replicas with BALLAST_REGISTRY_BLOB_STORE=${blobStore ?? 'fs'}: each would keep its own artifacts (use postgres or s3)`,
    );
  return problems;
}

// ------------------------------------------------------------------------------------------------
// Grafana

const METRIC = /\b((?:ballast|grpc|bullmq|process|nodejs)_[a-zA-Z0-9_:]*)/g;

export function dashboardProblems(
  dashboard: unknown,
  exported: ReadonlySet<string>,
  datasourceUids: ReadonlySet<string>,
): string[] {
  const problems: string[] = [];
  const panels = (get(dashboard, 'panels') as Array<Record<string, unknown>> | undefined) ?? [];
  const ids = new Set<unknown>();
  for (const panel of panels) {
    if (ids.has(panel.id)) problems.push(`panel id ${String(panel.id)} is used twice`);
    ids.add(panel.id);
    if (panel.type === 'row') continue;
    const targets = (panel.targets as Array<Record<string, unknown>> | undefined) ?? [];
    if (targets.length === 0) problems.push(`panel "${String(panel.title)}" has no queries`);
    const uid = get(panel, 'datasource', 'uid');
    if (typeof uid !== 'string' || !datasourceUids.has(uid))
      problems.push(`panel "${String(panel.title)}": datasource ${String(uid)} is not provisioned`);
    for (const target of targets) {
      const expr = String(target.expr ?? '');
      // Label matchers and grouping clauses name labels (bullmq_queue_name), not metrics.
      const stripped = expr
        .replace(/\{[^}]*\}/g, '')
        .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '');
      const metrics = [...stripped.matchAll(METRIC)].map((m) => m[1] as string);
      if (metrics.length === 0)
        problems.push(`panel "${String(panel.title)}": query uses no Ballast metric: ${expr}`);
      for (const metric of metrics)
        if (!exported.has(metric))
          problems.push(`panel "${String(panel.title)}": ${metric} is not exported by any service`);
    }
  }
  return problems;
}

/**
 * Grafana provisioning agrees with the compose file: the dashboards folder is mounted where the
 * provider looks, the home dashboard exists there, and each datasource URL names a compose
 * service and a port it listens on.
 */
export function grafanaProblems(compose: ComposeFile, datasources: unknown, providers: unknown): string[] {
  const problems: string[] = [];
  const grafana = compose.services.grafana;
  if (!grafana) return ['no grafana service'];
  const mounts = new Map(
    (grafana.volumes ?? []).map((v) => {
      const [source = '', target = ''] = v.split(':');
      return [target, source] as const;
    }),
  );
  const providerPaths = ((get(providers, 'providers') as unknown[] | undefined) ?? []).map((p) =>
    get(p, 'options', 'path'),
  );
  if (providerPaths.length === 0) problems.push('no dashboard provider');
  for (const path of providerPaths) {
    const source = mounts.get(String(path));
    if (!source) problems.push(`dashboard provider reads ${String(path)}, which nothing is mounted at`);
    else if (!existsSync(deployPath(source)))
      problems.push(`${source} (mounted at ${String(path)}) does not exist`);
  }
  const home = String(grafana.environment?.GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH ?? '');
  const homeDir = home.slice(0, home.lastIndexOf('/'));
  const homeSource = mounts.get(homeDir);
  if (!homeSource || !existsSync(deployPath(homeSource, home.slice(homeDir.length + 1))))
    problems.push(`home dashboard ${home} is not a provisioned file`);
  for (const ds of (get(datasources, 'datasources') as unknown[] | undefined) ?? []) {
    const url = hostOf(String(get(ds, 'url')));
    const service = url && compose.services[url.host];
    const published = (service?.ports ?? []).some((p) => String(p).split(':').at(-1) === url?.port);
    if (!service || !published)
      problems.push(
        `datasource ${String(get(ds, 'name'))}: ${String(get(ds, 'url'))} is no compose service port`,
      );
  }
  return problems;
}
