import { randomUUID } from 'node:crypto';
import { errorCodes, toStatus } from '@ballast/grpc-kit';
import { type Attributes, context, type Span, SpanStatusCode, TraceFlags, trace } from '@opentelemetry/api';
import type { BatchAnswer, Cancellation, InputLayout } from './batcher.js';
import type { ModelInputs } from './inputs.js';
import { type InferenceMetrics, requestSeries } from './metrics.js';
import type { LoadedVersion, ModelPool, PoolLogger } from './model-pool.js';
import type { PredictionLog } from './prediction-log.js';
import type { InputLimits } from './serving-config.js';

const tracer = trace.getTracer('@ballast/inference');
const statusNames = Object.fromEntries(
  Object.entries(errorCodes).map(([name, code]) => [code, name.toUpperCase()]),
);

export interface PredictCall {
  api: 'predict' | 'oip';
  model: string;
  alias?: string | undefined;
  version?: number | undefined;
  requestId?: string | undefined;
  /** Sticky canary routing: the same key always lands on the same side. */
  stickyKey?: string | undefined;
  entityKeys?: string[] | undefined;
  segments?: Record<string, string> | undefined;
  /** Each row's segments, when the rows do not all share `segments`. */
  rowSegments?: Record<string, string>[] | undefined;
  /** Each row's event time (ms), when the request gave any. */
  rowTimes?: number[] | undefined;
  /** Builds the model inputs for the version chosen (validation happens here). */
  build(version: LoadedVersion, limits: InputLimits): ModelInputs;
  /** The call's HandlerContext (or any AbortSignal): its `aborted` is read when a batch forms. */
  signal?: Cancellation | undefined;
  deadline?: Date | undefined;
  /**
   * The span this request is traced on: a unary call's own server span, which then carries the
   * request's attributes and links. Absent (a stream's requests, which share one call), the
   * request gets an `inference.predict` span of its own. A span per request fewer is tracing's
   * largest saving per call: the SDK's cost is per span (creation, then OTLP serialization).
   */
  span?: Span | undefined;
}

/**
 * Whether a call's span can take the request: still recording, or never sampled (nothing is
 * recorded either way). A sampled span that has ended belongs to a call already answered
 * (cancelled or timed out while its entity lookup ran): what went on it would be lost, the
 * swap link with it, so the request gets a span of its own.
 */
function usable(span: Span): boolean {
  return span.isRecording() || (span.spanContext().traceFlags & TraceFlags.SAMPLED) === 0;
}

/** A request's span of its own: the child of its call's span when it has one, whichever context is active. */
function ownSpan(callSpan: Span | undefined, attributes: Attributes): Span {
  const parent = callSpan ? trace.setSpan(context.active(), callSpan) : undefined;
  return tracer.startSpan('inference.predict', { attributes }, parent);
}

export interface PredictOutcome {
  version: LoadedVersion;
  alias: string;
  requestId: string;
  answer: BatchAnswer;
  totalUs: number;
}

/**
 * One prediction, whatever API it came from: route (alias, exact version, canary), validate,
 * queue in the version's batcher, answer; then, off the answer's path, the prediction log
 * and the shadow copy. Every request's span (its call's, or one of its own) is linked to the
 * batch execution it joined.
 */
export class Predictor {
  constructor(
    private readonly pool: ModelPool,
    private readonly predictionLog: PredictionLog | undefined,
    private readonly metrics: InferenceMetrics | undefined,
    private readonly log: PoolLogger,
  ) {}

  get backend(): string {
    return this.pool.backend;
  }

  async predict(call: PredictCall): Promise<PredictOutcome> {
    const started = performance.now();
    const requestId = call.requestId || randomUUID();
    const attributes = {
      'inference.model': call.model,
      'inference.api': call.api,
      'inference.request_id': requestId,
    };
    const onCall = call.span && usable(call.span) ? call.span : undefined;
    const own = onCall === undefined;
    const span = onCall ?? ownSpan(call.span, attributes);
    if (!own) span.setAttributes(attributes);
    let routed: LoadedVersion | undefined;
    try {
      const { version, alias } = this.pool.acquire(call.model, {
        alias: call.alias,
        version: call.version,
        stickyKey: call.stickyKey,
      });
      routed = version;
      span.setAttributes({ 'inference.version': version.version, 'inference.alias': alias });
      if (version.swapLink !== undefined) {
        // The first request this version takes since it was swapped in: the loop's trace
        // (commit, training, promotion, swap) reaches the traffic it changed.
        span.addLink({ context: version.swapLink, attributes: { 'ballast.link': 'swap' } });
        span.addEvent('first request since the swap');
        version.swapLink = undefined;
      }
      let built: ModelInputs;
      let answer: BatchAnswer;
      try {
        built = call.build(version, this.pool.configOf(call.model));
        answer = await version.batcher.submit({
          rows: built.rows,
          inputs: built.inputs,
          deadline: call.deadline
            ? performance.now() + (call.deadline.getTime() - Date.now())
            : Number.POSITIVE_INFINITY,
          signal: call.signal,
          spanContext: span.spanContext(),
        });
      } finally {
        this.pool.release(version);
      }
      if (answer.batchSpan) {
        span.addLink({ context: answer.batchSpan });
        span.setAttribute('inference.batch_size', answer.batchSize);
      }
      const totalMs = performance.now() - started;
      version.batcher.stats.recordRequest(true, totalMs);
      const totalUs = Math.round(totalMs * 1000);
      const series = version.series?.request(call.api, 'OK');
      series?.requests.add(1);
      series?.duration.record(totalUs / 1e6);
      const traceId = span.spanContext().traceId;
      if (this.predictionLog?.sample()) {
        this.predictionLog.record({
          model: call.model,
          version: version.version,
          requestId,
          rows: built.rows,
          time: Date.now(),
          latencyUs: totalUs,
          inputs: version.layout.map((input: InputLayout, i) => ({
            name: input.name,
            data: built.inputs[i] ?? new Float32Array(),
          })),
          outputs: answer.outputs.map((o) => ({ name: o.name, data: o.data })),
          traceId,
          alias,
          entityKeys: call.entityKeys,
          segments: call.segments,
          rowSegments: call.rowSegments,
          rowTimes: call.rowTimes,
        });
      }
      this.#shadow(call, version, requestId, traceId);
      return { version, alias, requestId, answer, totalUs };
    } catch (error) {
      const code = statusNames[toStatus(error).code] ?? 'UNKNOWN';
      const totalMs = performance.now() - started;
      routed?.batcher.stats.recordRequest(false, totalMs);
      // Refused before a version was chosen (no such model, shed at admission): no version.
      const series = routed
        ? routed.series?.request(call.api, code)
        : this.metrics &&
          requestSeries(this.metrics, { model: call.model, version: '', api: call.api, status: code });
      series?.requests.add(1);
      series?.duration.record(totalMs / 1000);
      // A server span's status is its adapter's to set (ERROR for the server's own failures only).
      if (own) span.setStatus({ code: SpanStatusCode.ERROR, message: (error as Error).message });
      throw error;
    } finally {
      if (own) span.end();
    }
  }

  /** Mirrors the request to the shadow version; its answer is logged, never returned, and never delays the caller. */
  #shadow(call: PredictCall, serving: LoadedVersion, requestId: string, traceId: string): void {
    const shadow = this.pool.acquireShadow(call.model, serving);
    if (!shadow) return;
    const started = performance.now();
    void context.with(context.active(), async () => {
      try {
        const built = call.build(shadow, this.pool.configOf(call.model));
        const answer = await shadow.batcher.submit({
          rows: built.rows,
          inputs: built.inputs,
          deadline: performance.now() + 10_000,
        });
        const latencyUs = Math.round((performance.now() - started) * 1000);
        this.log.info(
          {
            model: call.model,
            version: shadow.version,
            requestId,
            latencyUs,
            outputs: answer.outputs.map((o) => ({ name: o.name, values: Array.from(o.data.slice(0, 16)) })),
          },
          'shadow prediction',
        );
        this.predictionLog?.record({
          model: call.model,
          version: shadow.version,
          requestId,
          rows: built.rows,
          time: Date.now(),
          latencyUs,
          inputs: shadow.layout.map((input, i) => ({
            name: input.name,
            data: built.inputs[i] ?? new Float32Array(),
          })),
          outputs: answer.outputs.map((o) => ({ name: o.name, data: o.data })),
          traceId,
          alias: 'candidate',
          shadow: true,
          entityKeys: call.entityKeys,
          segments: call.segments,
          rowSegments: call.rowSegments,
          rowTimes: call.rowTimes,
        });
      } catch (error) {
        this.log.warn(
          { model: call.model, version: shadow.version, requestId, error: (error as Error).message },
          'shadow prediction failed (the caller was answered by production)',
        );
      } finally {
        this.pool.release(shadow);
      }
    });
  }
}
