import { SpanKind, trace } from '@opentelemetry/api';
import {
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeAll } from './close.js';
import { connectRedis } from './connection.js';
import { createQueue } from './queue.js';
import { testPrefix } from './test-support.js';
import { createWorker } from './worker.js';

// Resolves when a span of a given name ends, so the test waits on the event, not a clock.
class SpanWaiter implements SpanProcessor {
  private readonly waiting = new Map<string, (span: ReadableSpan) => void>();
  ended(name: string): Promise<ReadableSpan> {
    return new Promise((resolve) => this.waiting.set(name, resolve));
  }
  onStart(): void {}
  onEnd(span: ReadableSpan): void {
    this.waiting.get(span.name)?.(span);
    this.waiting.delete(span.name);
  }
  async forceFlush(): Promise<void> {}
  async shutdown(): Promise<void> {}
}

const exporter = new InMemorySpanExporter();
const waiter = new SpanWaiter();
// register() installs the AsyncLocalStorage context manager and the W3C propagator,
// which bullmq-otel uses to write the trace context into the job.
const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter), waiter] });
provider.register();

describe('trace propagation through a job', () => {
  const prefix = testPrefix();
  const connection = connectRedis();
  const queue = createQueue('training.run', { connection, prefix });
  let processedIn: { traceId: string; spanId: string } | undefined;
  const worker = createWorker(
    'training.run',
    async (job) => {
      processedIn = trace.getActiveSpan()?.spanContext();
      // Work the processor traces itself nests under the job's span.
      trace.getTracer('test').startActiveSpan('train the model', (span) => span.end());
      return job.data.model;
    },
    { connection, prefix },
  );

  beforeAll(async () => {
    await Promise.all([queue.waitUntilReady(), worker.waitUntilReady()]);
  });

  afterAll(async () => {
    await queue.obliterate({ force: true });
    await closeAll([worker, queue, connection]);
    await provider.shutdown();
  });

  it("processes the job in a span of the enqueuing call's trace", async () => {
    const processed = waiter.ended('process training.run');
    const tracer = trace.getTracer('test');
    const { caller, job } = await tracer.startActiveSpan('the traced call', async (span) => {
      try {
        const job = await queue.add('retrain', { model: 'demand', reason: 'drift' });
        return { caller: span.spanContext(), job };
      } finally {
        span.end();
      }
    });
    // The trace context travels with the job, in its options.
    expect(job.opts.telemetry?.metadata).toContain(caller.traceId);

    const consumer = await processed;
    const spans = exporter.getFinishedSpans();
    const producer = spans.find((s) => s.name === 'add training.run.retrain');
    const inner = spans.find((s) => s.name === 'train the model');
    if (!producer || !inner) throw new Error(`missing spans: ${spans.map((s) => s.name).join(', ')}`);

    // One trace from the call through the worker.
    expect(producer.spanContext().traceId).toBe(caller.traceId);
    expect(consumer.spanContext().traceId).toBe(caller.traceId);
    expect(processedIn).toEqual(expect.objectContaining({ traceId: caller.traceId }));

    // What bullmq-otel does: the PRODUCER span "add <queue>.<job name>" is a child of the
    // call that enqueued; the CONSUMER span "process <queue>" is a child of that producer
    // span (parent, not link: it has no links), and is the active span while the processor
    // runs, so the processor's own spans hang under it.
    expect(producer.kind).toBe(SpanKind.PRODUCER);
    expect(producer.parentSpanContext?.spanId).toBe(caller.spanId);
    expect(consumer.kind).toBe(SpanKind.CONSUMER);
    expect(consumer.parentSpanContext?.spanId).toBe(producer.spanContext().spanId);
    expect(consumer.links).toEqual([]);
    expect(processedIn?.spanId).toBe(consumer.spanContext().spanId);
    expect(inner.parentSpanContext?.spanId).toBe(consumer.spanContext().spanId);
    expect(consumer.attributes['bullmq.job.id']).toBe(job.id);
  });
});
