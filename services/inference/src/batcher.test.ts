import type { BallastError } from '@ballast/grpc-kit';
import { trace } from '@opentelemetry/api';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { describe, expect, it } from 'vitest';
import { type BatcherOptions, DynamicBatcher, type InputLayout } from './batcher.js';
import type { RunResult, TensorData } from './executor.js';

const layout: InputLayout[] = [{ name: 'x', dtype: 'float32', rowShape: [2], rowSize: 2 }];
const options = (overrides: Partial<BatcherOptions> = {}): BatcherOptions => ({
  max_batch_size: 8,
  max_queue_delay_microseconds: 0,
  preferred_batch_size: [],
  max_queue_size: 100,
  default_timeout_microseconds: 0,
  ...overrides,
});

/** A model that doubles its input, recording each batch; `hold` keeps a batch running until released. */
function doubler() {
  const batches: number[] = [];
  let release: (() => void) | undefined;
  let held = false;
  const run = async (inputs: TensorData[], rows: number): Promise<RunResult> => {
    batches.push(rows);
    if (held) await new Promise<void>((r) => (release = r));
    const input = inputs[0] as TensorData;
    return {
      outputs: [
        { name: 'y', dtype: 'float32', shape: [rows, 2], data: input.data.map((v) => v * 2) as Float32Array },
      ],
      execUs: 1,
    };
  };
  return {
    batches,
    run,
    hold() {
      held = true;
    },
    release() {
      held = false;
      release?.();
    },
  };
}

const request = (values: number[], extra: { deadline?: number; signal?: AbortSignal } = {}) => ({
  rows: values.length / 2,
  inputs: [Float32Array.from(values)],
  deadline: extra.deadline ?? Number.POSITIVE_INFINITY,
  signal: extra.signal,
});

const tick = () => new Promise((r) => setImmediate(r));
const code = (promise: Promise<unknown>) =>
  promise.then(
    () => 'ok',
    (e: BallastError) => e.code,
  );

describe('DynamicBatcher', () => {
  it('coalesces concurrent requests into one execution and splits the answers back', async () => {
    const model = doubler();
    const batcher = new DynamicBatcher(layout, options(), model.run);
    const answers = await Promise.all(
      Array.from({ length: 5 }, (_, i) => batcher.submit(request([i, i + 0.5]))),
    );
    expect(model.batches).toEqual([5]);
    answers.forEach((answer, i) => {
      expect(Array.from(answer.outputs[0]?.data ?? [])).toEqual([i * 2, i * 2 + 1]);
      expect(answer.outputs[0]?.shape).toEqual([1, 2]);
      expect(answer.batchSize).toBe(5);
    });
  });

  it('never exceeds max_batch_size, and batches what arrives while a batch runs', async () => {
    const model = doubler();
    const batcher = new DynamicBatcher(layout, options({ max_batch_size: 4 }), model.run);
    await Promise.all(Array.from({ length: 10 }, (_, i) => batcher.submit(request([i, i]))));
    expect(model.batches).toEqual([4, 4, 2]);
  });

  it('waits up to max_queue_delay for a fuller batch, and goes at once when a preferred size is reached', async () => {
    const model = doubler();
    const batcher = new DynamicBatcher(
      layout,
      options({ max_queue_delay_microseconds: 60_000_000, preferred_batch_size: [4] }),
      model.run,
    );
    const first = Array.from({ length: 3 }, () => batcher.submit(request([1, 1])));
    await tick();
    await tick();
    expect(model.batches).toEqual([]);
    await Promise.all([...first, batcher.submit(request([1, 1]))]);
    expect(model.batches).toEqual([4]);
  });

  it('refuses oversized and empty requests as invalid arguments', async () => {
    const batcher = new DynamicBatcher(layout, options({ max_batch_size: 2 }), doubler().run);
    expect(await code(batcher.submit(request([1, 1, 2, 2, 3, 3])))).toBe('invalid_argument');
    expect(await code(batcher.submit(request([])))).toBe('invalid_argument');
  });

  it('sheds at once with RESOURCE_EXHAUSTED when the queue is full', async () => {
    const model = doubler();
    model.hold();
    const batcher = new DynamicBatcher(layout, options({ max_batch_size: 1, max_queue_size: 2 }), model.run);
    const running = batcher.submit(request([1, 1]));
    await tick();
    const queued = [batcher.submit(request([2, 2])), batcher.submit(request([3, 3]))];
    const shed = await code(batcher.submit(request([4, 4])));
    expect(shed).toBe('resource_exhausted');
    model.release();
    await Promise.all([running, ...queued]);
    expect(model.batches).toEqual([1, 1, 1]);
  });

  it('sheds at once when the expected wait exceeds the deadline or default_timeout', async () => {
    const model = doubler();
    model.hold();
    const slow = new DynamicBatcher(
      layout,
      options({ max_batch_size: 1, default_timeout_microseconds: 60_000 }),
      model.run,
      {},
      50,
    );
    // Idle: admitted whatever the estimate, so the estimate keeps learning.
    expect(slow.expectedWaitMs(1)).toBe(0);
    const running = slow.submit(request([1, 1]));
    await tick();
    expect(slow.expectedWaitMs(1)).toBe(25);
    const queued = slow.submit(request([2, 2]));
    expect(slow.expectedWaitMs(1)).toBe(75);
    expect(await code(slow.submit(request([3, 3])))).toBe('resource_exhausted');
    // Its deadline cannot fit the wait plus its own execution.
    const byDeadline = new DynamicBatcher(layout, options(), model.run, {}, 50);
    expect(await code(byDeadline.submit(request([1, 1], { deadline: performance.now() + 20 })))).toBe(
      'resource_exhausted',
    );
    model.release();
    expect(await code(Promise.all([running, queued]))).toBe('ok');
    expect(model.batches).toEqual([1, 1]);
  });

  it('drops queued work whose deadline passed or whose caller cancelled, without running it', async () => {
    const model = doubler();
    model.hold();
    const shed: string[] = [];
    const batcher = new DynamicBatcher(layout, options({ max_batch_size: 1 }), model.run, {
      onShed: (reason) => shed.push(reason),
    });
    const running = batcher.submit(request([1, 1]));
    await tick();
    const expiring = code(batcher.submit(request([2, 2], { deadline: performance.now() + 5 })));
    const controller = new AbortController();
    const cancelled = code(batcher.submit(request([3, 3], { signal: controller.signal })));
    const kept = batcher.submit(request([4, 4]));
    controller.abort();
    await new Promise((r) => setTimeout(r, 30));
    model.release();
    expect(await expiring).toBe('deadline_exceeded');
    expect(await cancelled).toBe('cancelled');
    expect(Array.from((await kept).outputs[0]?.data ?? [])).toEqual([8, 8]);
    await running;
    expect(model.batches).toEqual([1, 1]);
    expect(shed.sort()).toEqual(['cancelled', 'deadline']);
  });

  it('runs each batch in a span linked to the request spans it joined', async () => {
    const exporter = new InMemorySpanExporter();
    trace.setGlobalTracerProvider(
      new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }),
    );
    const tracer = trace.getTracer('test');
    const requests = [tracer.startSpan('request-a'), tracer.startSpan('request-b')];
    const batcher = new DynamicBatcher(layout, options(), doubler().run);
    const answers = await Promise.all(
      requests.map((span, i) => batcher.submit({ ...request([i, i]), spanContext: span.spanContext() })),
    );
    const batch = exporter.getFinishedSpans().find((s) => s.name === 'inference.batch');
    expect(batch?.links.map((l) => l.context.spanId).sort()).toEqual(
      requests.map((r) => r.spanContext().spanId).sort(),
    );
    expect(batch?.attributes['inference.batch_size']).toBe(2);
    for (const answer of answers) expect(answer.batchSpan?.spanId).toBe(batch?.spanContext().spanId);
  });
});
