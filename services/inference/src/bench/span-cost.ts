import { loadavg } from 'node:os';
import { writeBenchResult } from '@ballast/grpc-kit/testing';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { otlpSink } from './otlp-sink.js';

/**
 * What one span costs in CPU, the unit tracing's price is paid in: created with attributes
 * and a link, ended, batched by the batch span processor, serialized and exported over
 * OTLP/gRPC to a sink in the same process (its receiving counts too, so the figures are an
 * upper bound). `node dist/bench/span-cost.js [spans per round]`; rounds of 4 and of 10
 * attributes (a server span alone, and one that also carries a request's attributes).
 */
const perRound = Number(process.argv[2] ?? 50_000);
const ROUNDS = 5;
const sink = await otlpSink();
const provider = new BasicTracerProvider({
  spanProcessors: [
    new BatchSpanProcessor(new OTLPTraceExporter({ url: `http://127.0.0.1:${sink.port}` }), {
      maxQueueSize: 4_096,
      maxExportBatchSize: 512,
      scheduledDelayMillis: 50,
    }),
  ],
});
const tracer = provider.getTracer('span-cost');

async function round(spans: number, attributeCount: number): Promise<number> {
  const started = process.cpuUsage();
  for (let i = 0; i < spans; i++) {
    const attributes: Record<string, string | number> = {};
    for (let k = 0; k < attributeCount; k++) attributes[`bench.attribute_${k}`] = k % 2 ? `value-${i}` : i;
    const span = tracer.startSpan('grpc.bench.v1.Bench/Call', { attributes });
    span.addLink({ context: span.spanContext() });
    span.end();
    // Flushed as it goes, so no export is refused for too many in flight and no span dropped.
    if (i % 2_048 === 2_047) await provider.forceFlush();
  }
  await provider.forceFlush();
  const used = process.cpuUsage(started);
  return (used.user + used.system) / spans;
}

const result: Record<string, number[]> = {};
const load = loadavg()[0] ?? 0;
for (const attributes of [4, 10]) {
  await round(10_000, attributes);
  const rounds: number[] = [];
  for (let r = 0; r < ROUNDS; r++) rounds.push(Number((await round(perRound, attributes)).toFixed(1)));
  result[`attributes_${attributes}`] = rounds;
  console.log(
    `${attributes} attributes + 1 link: ${rounds.join(', ')} us of CPU per span (load ${load.toFixed(2)})`,
  );
}
await provider.shutdown();
sink.close();
const out = writeBenchResult(import.meta.dirname, 'span-cost', {
  spansPerRound: perRound,
  loadAverage: { before: load, after: loadavg()[0] },
  cpuUsPerSpan: result,
  exports: sink.exports(),
});
console.log(`wrote ${out}`);
