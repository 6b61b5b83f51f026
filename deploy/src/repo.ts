// What the manifests must agree with, read from the code itself: the services and their ports
// (@ballast/config), the gRPC service names their health reports readiness under
// (@ballast/contracts), the environment each service reads (its main.ts and the libs it uses),
// and the metric names the code exports.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  addrConfig,
  commonConfig,
  DEFAULT_PORTS,
  GRPC_SERVICES,
  type GrpcServiceName,
  SERVICES,
  type ServiceName,
  serviceConfig,
} from '@ballast/config';
import { FeatureService } from '@ballast/contracts/ballast/feature/v1/feature_pb.js';
import { InferenceService } from '@ballast/contracts/ballast/inference/v1/inference_pb.js';
import { IngestService } from '@ballast/contracts/ballast/ingest/v1/ingest_pb.js';
import { MonitorService } from '@ballast/contracts/ballast/monitor/v1/monitor_pb.js';
import { RegistryService } from '@ballast/contracts/ballast/registry/v1/registry_pb.js';
import { MetricNames } from 'bullmq';
import { repoPath } from './paths.js';

export { DEFAULT_PORTS, GRPC_SERVICES, type GrpcServiceName, SERVICES, type ServiceName };

/** The full name each gRPC service's health turns SERVING under once it is ready. */
export const HEALTH_SERVICE_NAMES: Record<GrpcServiceName, string> = {
  ingest: IngestService.typeName,
  feature: FeatureService.typeName,
  registry: RegistryService.typeName,
  inference: InferenceService.typeName,
  monitor: MonitorService.typeName,
};

export const isGrpc = (s: ServiceName): s is GrpcServiceName => DEFAULT_PORTS[s].grpc !== null;

/** Standard OpenTelemetry SDK variables the telemetry setup honours (NodeSDK reads them). */
export const OTEL_STANDARD_ENV = new Set([
  'OTEL_SERVICE_NAME',
  'OTEL_RESOURCE_ATTRIBUTES',
  'OTEL_EXPORTER_OTLP_ENDPOINT',
  'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT',
  'OTEL_TRACES_SAMPLER',
  'OTEL_TRACES_SAMPLER_ARG',
  'OTEL_TRACES_EXPORTER',
  'OTEL_PROPAGATORS',
  'OTEL_SDK_DISABLED',
]);

const mainSource = (s: ServiceName) => readFileSync(repoPath('services', s, 'src', 'main.ts'), 'utf8');

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (entry.name !== 'node_modules' && entry.name !== 'dist') out.push(...sourceFiles(path));
    } else if (
      entry.name.endsWith('.ts') &&
      !entry.name.endsWith('.test.ts') &&
      !entry.name.endsWith('.d.ts')
    )
      out.push(path);
  }
  return out;
}

/** Non-test TypeScript sources of every lib and service. */
export function codeFiles(): string[] {
  const files: string[] = [];
  for (const group of ['libs', 'services']) {
    for (const entry of readdirSync(repoPath(group), { withFileTypes: true })) {
      if (entry.isDirectory()) files.push(...sourceFiles(repoPath(group, entry.name, 'src')));
    }
  }
  return files;
}

/** Peers a service dials, from the addrConfig('<peer>') calls in its main.ts. */
export function peersOf(service: ServiceName): GrpcServiceName[] {
  const peers = [...mainSource(service).matchAll(/addrConfig\(\s*'(\w+)'\s*\)/g)].map((m) => m[1] as string);
  for (const peer of peers)
    if (!(GRPC_SERVICES as readonly string[]).includes(peer))
      throw new Error(`${service}/main.ts: addrConfig('${peer}') names no gRPC service`);
  return peers as GrpcServiceName[];
}

/** The environment variable a service reads to find `peer`. */
export const addrVariable = (peer: GrpcServiceName) => Object.keys(addrConfig(peer))[0] as string;

/**
 * Every variable a service reads: libs/config's commonConfig and serviceConfig(service), the
 * addrConfig peers and BALLAST_* names in its main.ts, the config fields its other modules
 * declare (`BALLAST_X: str()...`), the variables libs/telemetry and
 * libs/grpc-kit read directly (BALLAST_SERVICE, BALLAST_TLS_*...), and the standard OTEL_* ones.
 */
export function variablesReadBy(service: ServiceName): Set<string> {
  const names = new Set<string>([
    ...Object.keys(commonConfig),
    ...Object.keys(serviceConfig(service)),
    ...peersOf(service).map(addrVariable),
    ...OTEL_STANDARD_ENV,
  ]);
  for (const m of mainSource(service).matchAll(/\b(BALLAST_[A-Z0-9_]+)\b/g)) names.add(m[1] as string);
  // Config shapes main.ts spreads in from the service's own modules (e.g. the registry's blobStoreConfig).
  for (const file of sourceFiles(repoPath('services', service, 'src')))
    for (const m of readFileSync(file, 'utf8').matchAll(/^\s*(BALLAST_[A-Z0-9_]+): [a-zA-Z]+\(/gm))
      names.add(m[1] as string);
  for (const lib of ['telemetry', 'grpc-kit']) {
    for (const file of sourceFiles(repoPath('libs', lib, 'src'))) {
      for (const m of readFileSync(file, 'utf8').matchAll(/\benv\.(BALLAST_[A-Z0-9_]+)\b/g))
        names.add(m[1] as string);
    }
  }
  return names;
}

export type InstrumentKind = 'counter' | 'histogram' | 'gauge';

/** Prometheus name of an OpenTelemetry instrument, as @opentelemetry/exporter-prometheus writes it. */
export function prometheusName(name: string, kind: InstrumentKind): string {
  const sanitized = name.replace(/[^a-zA-Z0-9_:]/g, '_').replace(/_{2,}/g, '_');
  return kind === 'counter' && !sanitized.endsWith('_total') ? `${sanitized}_total` : sanitized;
}

/** The series names a scrape can contain for one instrument (histograms: _bucket, _sum, _count). */
export function seriesNames(name: string, kind: InstrumentKind): string[] {
  const base = prometheusName(name, kind);
  return kind === 'histogram' ? [`${base}_bucket`, `${base}_sum`, `${base}_count`] : [base];
}

/** A meter's instruments (createCounter('name'...)) and @ballast/telemetry's local ones (counter('name'...)). */
const INSTRUMENT =
  /\.(?:create(Counter|UpDownCounter|Histogram|Gauge|ObservableGauge|ObservableCounter|ObservableUpDownCounter)|(counter|histogram))\(\s*'([^']+)'/g;

function kindOf(method: string): InstrumentKind {
  if (method === 'Histogram' || method === 'histogram') return 'histogram';
  if (method === 'Counter' || method === 'ObservableCounter' || method === 'counter') return 'counter';
  return 'gauge';
}

/**
 * Every Prometheus series name the services can export: instruments created in libs/ and
 * services/ sources, and BullMQ's own (through bullmq-otel), minus its queue-size gauge, which
 * BullMQ records only when Queue.recordJobCountsMetric is called.
 */
export function exportedSeries(): Set<string> {
  const names = new Set<string>();
  let recordsJobCounts = false;
  for (const file of codeFiles()) {
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(INSTRUMENT))
      for (const s of seriesNames(m[3] as string, kindOf((m[1] ?? m[2]) as string))) names.add(s);
    if (text.includes('recordJobCountsMetric')) recordsJobCounts = true;
  }
  const bullmq: Array<[string, InstrumentKind]> = [
    [MetricNames.JobsCompleted, 'counter'],
    [MetricNames.JobsFailed, 'counter'],
    [MetricNames.JobsDelayed, 'counter'],
    [MetricNames.JobsRetried, 'counter'],
    [MetricNames.JobsWaiting, 'counter'],
    [MetricNames.JobsWaitingChildren, 'counter'],
    [MetricNames.JobDuration, 'histogram'],
  ];
  if (recordsJobCounts) bullmq.push([MetricNames.QueueJobsCount, 'gauge']);
  for (const [name, kind] of bullmq) for (const s of seriesNames(name, kind)) names.add(s);
  return names;
}
