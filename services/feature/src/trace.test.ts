import { randomBytes } from 'node:crypto';
import { createQueue, QueueNames } from '@ballast/queue';
import { trace } from '@opentelemetry/api';
import {
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestFeature, type TestFeature } from './test-feature.js';
import { batches, retailDefinition, retailRecords } from './testing/retail.js';
import { materializeWorker } from './worker.js';

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
const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter), waiter] });
provider.register();

describe('materialization tracing', () => {
  let f: TestFeature;
  const version = randomBytes(32).toString('hex');
  beforeAll(async () => {
    f = await startTestFeature('pglite');
    f.source.put('sales', version, batches(retailRecords({ warehouses: 1, skus: 2, days: 10 })));
    await f.client.applyFeatureView({ definition: retailDefinition() });
  });
  afterAll(async () => {
    await f?.close();
    await provider.shutdown();
  });

  it('materializes a job inside the trace of the commit that enqueued it', async () => {
    const { prefix } = f;
    const worker = materializeWorker(f, { connection: f.redis, prefix });
    const queue = createQueue(QueueNames.featuresMaterialize, { connection: f.redis, prefix });
    try {
      const materialized = waiter.ended('feature.materialize');
      const processed = waiter.ended('process features.materialize');
      const commit = await trace.getTracer('test').startActiveSpan('ingest commit', async (span) => {
        try {
          await queue.add('materialize', { datasetName: 'sales', datasetVersion: version });
          return span.spanContext();
        } finally {
          span.end();
        }
      });
      const span = await materialized;
      expect(span.spanContext().traceId).toBe(commit.traceId);
      expect(span.attributes).toMatchObject({
        'ballast.dataset.version': version,
        'ballast.feature.view': 'demand',
        'ballast.feature.rows': 20,
      });
      // Inside the worker's span for the job, which continues the commit's trace.
      const processing = await processed;
      expect(processing.spanContext().traceId).toBe(commit.traceId);
      expect(span.parentSpanContext?.spanId).toBe(processing.spanContext().spanId);
      expect(exporter.getFinishedSpans().map((s) => s.name)).toContain(
        'add features.materialize.materialize',
      );
    } finally {
      await worker.close();
      await queue.obliterate({ force: true });
      await queue.close();
    }
  });
});
