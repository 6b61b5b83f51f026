import { SpanKind } from '@opentelemetry/api';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { describe, expect, it } from 'vitest';
import { ballastSpanProcessors, traceHousekeeping } from './spans.js';

// Spans shaped as their makers shape them (names, kinds and attributes as
// @opentelemetry/instrumentation-grpc and BullMQ set them), through the processors every
// Ballast process runs. libs/grpc-kit's span-status.test.ts checks the same rule on real calls,
// and the status grpc-kit gives server spans.
type Start = (name: string, kind: SpanKind, attributes: Record<string, string | number>) => void;

function exported(env: NodeJS.ProcessEnv, make: (start: Start) => void): string[] {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({
    spanProcessors: ballastSpanProcessors(new SimpleSpanProcessor(exporter), env),
  });
  const tracer = provider.getTracer('test');
  make((name, kind, attributes) => tracer.startSpan(name, { kind, attributes }).end());
  return exporter.getFinishedSpans().map((s) => s.name);
}

const grpc = (service: string, method: string) => ({
  'rpc.system': 'grpc',
  'rpc.service': service,
  'rpc.method': method,
});
const bullmq = (operation: string) => ({
  'bullmq.queue.name': 'training.run',
  'bullmq.queue.operation': operation,
});

const health = (method: string) => grpc('grpc.health.v1.Health', method);
const reflection = grpc('grpc.reflection.v1.ServerReflection', 'ServerReflectionInfo');
const EVERY_KIND: [string, SpanKind, Record<string, string>][] = [
  ['grpc.grpc.health.v1.Health/Check', SpanKind.SERVER, health('Check')],
  ['grpc.grpc.health.v1.Health/Watch', SpanKind.CLIENT, health('Watch')],
  ['grpc.grpc.reflection.v1.ServerReflection/ServerReflectionInfo', SpanKind.SERVER, reflection],
  ['getNextJob training.run', SpanKind.INTERNAL, bullmq('getNextJob')],
  ['extendLocks training.run', SpanKind.INTERNAL, bullmq('extendLocks')],
  ['moveStalledJobsToWait training.run', SpanKind.INTERNAL, bullmq('moveStalledJobsToWait')],
  [
    'grpc.ballast.registry.v1.RegistryService/ListModels',
    SpanKind.SERVER,
    grpc('ballast.registry.v1.RegistryService', 'ListModels'),
  ],
  ['add training.run.train', SpanKind.PRODUCER, bullmq('add')],
  ['process training.run', SpanKind.CONSUMER, bullmq('process')],
  ['complete training.run', SpanKind.INTERNAL, bullmq('complete')],
];

function everyKind(start: Start) {
  for (const [name, kind, attributes] of EVERY_KIND) start(name, kind, attributes);
}

describe('housekeeping spans', () => {
  it('are dropped by default: health, reflection and BullMQ polling; work and jobs stay', () => {
    expect(exported({}, everyKind)).toEqual([
      'grpc.ballast.registry.v1.RegistryService/ListModels',
      'add training.run.train',
      'process training.run',
      'complete training.run',
    ]);
  });

  it('are exported with BALLAST_TRACE_HOUSEKEEPING=true', () => {
    expect(exported({ BALLAST_TRACE_HOUSEKEEPING: 'true' }, everyKind)).toHaveLength(10);
  });

  it('are traced only when the variable says true', () => {
    expect(traceHousekeeping({})).toBe(false);
    expect(traceHousekeeping({ BALLAST_TRACE_HOUSEKEEPING: 'false' })).toBe(false);
    expect(traceHousekeeping({ BALLAST_TRACE_HOUSEKEEPING: ' TRUE ' })).toBe(true);
  });
});
