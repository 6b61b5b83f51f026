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
    // A clock that stands still: arrivals 0 ms apart, no further apart than an execution takes.
    const batcher = new DynamicBatcher(layout, options(), model.run, {}, 5, () => 0);
    await batcher.submit(request([0, 0]));
    await batcher.submit(request([0, 0]));
    const answers = await Promise.all(
      Array.from({ length: 5 }, (_, i) => batcher.submit(request([i, i + 0.5]))),
    );
    expect(model.batches).toEqual([1, 1, 5]);
    answers.forEach((answer, i) => {
      expect(Array.from(answer.outputs[0]?.data ?? [])).toEqual([i * 2, i * 2 + 1]);
      expect(answer.outputs[0]?.shape).toEqual([1, 2]);
      expect(answer.batchSize).toBe(5);
    });
  });

  it('sends a lone request to an idle model at once, in the same call, when nothing is likely to join it', async () => {
    const model = doubler();
    // No arrivals seen yet: nothing suggests another request is coming.
    const batcher = new DynamicBatcher(layout, options(), model.run);
    const first = batcher.submit(request([1, 1]));
    expect(model.batches).toEqual([1]);
    // What arrives while it runs forms the next batch (Triton's max_queue_delay 0).
    const rest = Array.from({ length: 4 }, () => batcher.submit(request([2, 2])));
    expect(model.batches).toEqual([1]);
    await Promise.all([first, ...rest]);
    expect(model.batches).toEqual([1, 4]);
  });

  it('under a latency objective, uses the tuned delay and batch size instead of the fixed knobs', async () => {
    const model = doubler();
    let now = 0;
    const batcher = new DynamicBatcher(
      layout,
      options({
        max_batch_size: 8,
        max_queue_size: 1000,
        max_queue_delay_microseconds: 60_000_000,
        latency_objective_ms: 50,
      }),
      // Each execution takes 1 ms of the made-up clock.
      async (inputs, rows) => {
        now += 1;
        return model.run(inputs, rows);
      },
      {},
      1,
      () => now,
    );
    // Nothing observed yet: the tuning says go at once, whatever max_queue_delay says.
    expect(batcher.tuning).toEqual({ delayUs: 0, batchSize: 1 });
    // Heavy traffic (arrivals 0.01 ms apart against 1 ms executions): batches of 8 fill in
    // 0.07 ms and two of them run in 2 ms, well within 70% of 50 ms.
    const queued: Promise<unknown>[] = [];
    for (let i = 0; i < 200; i++) {
      now += 0.01;
      queued.push(batcher.submit(request([1, 1])));
    }
    await Promise.all(queued);
    expect(batcher.tuning).toEqual({ delayUs: 70, batchSize: 8 });
    const fixed = new DynamicBatcher(layout, options({ max_queue_delay_microseconds: 5 }), model.run);
    expect(fixed.tuning).toEqual({ delayUs: 5, batchSize: 8 });
  });

  it('never exceeds max_batch_size, and batches what arrives while a batch runs', async () => {
    const model = doubler();
    const batcher = new DynamicBatcher(layout, options({ max_batch_size: 4 }), model.run);
    await Promise.all(Array.from({ length: 10 }, (_, i) => batcher.submit(request([i, i]))));
    // The first goes alone to the idle model; the rest queue while it runs.
    expect(model.batches).toEqual([1, 4, 4, 1]);
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

  it('refuses empty requests as invalid arguments', async () => {
    const batcher = new DynamicBatcher(layout, options({ max_batch_size: 2 }), doubler().run);
    expect(await code(batcher.submit(request([])))).toBe('invalid_argument');
  });

  it('splits a request larger than max_batch_size into batches and answers it whole, in row order', async () => {
    const model = doubler();
    const batcher = new DynamicBatcher(layout, options({ max_batch_size: 4, max_queue_size: 8 }), model.run);
    const values = Array.from({ length: 20 }, (_, i) => i);
    const answer = await batcher.submit(request(values));
    expect(model.batches).toEqual([4, 4, 2]);
    expect(answer.outputs[0]?.shape).toEqual([10, 2]);
    expect(Array.from(answer.outputs[0]?.data ?? [])).toEqual(values.map((v) => v * 2));
    expect(answer.batchSize).toBe(4);
    expect(batcher.queuedRows).toBe(0);
  });

  it('lets other requests run between the pieces of a split request', async () => {
    const model = doubler();
    model.hold();
    const batcher = new DynamicBatcher(layout, options({ max_batch_size: 2, max_queue_size: 8 }), model.run);
    const big = batcher.submit(request(Array.from({ length: 12 }, (_, i) => i)));
    await tick();
    // Its first piece runs, its second waits; a request arriving now queues before its third.
    const small = batcher.submit(request([100, 100]));
    model.release();
    const [whole, alone] = await Promise.all([big, small]);
    expect(model.batches).toEqual([2, 2, 1, 2]);
    expect(Array.from(whole.outputs[0]?.data ?? [])).toEqual(Array.from({ length: 12 }, (_, i) => i * 2));
    expect(Array.from(alone.outputs[0]?.data ?? [])).toEqual([200, 200]);
  });

  it('fails a split request whole when one piece fails, and drops the pieces not yet run', async () => {
    let calls = 0;
    const model = doubler();
    const failing = async (inputs: TensorData[], rows: number) => {
      calls++;
      if (calls === 2) throw new Error('out of memory');
      return model.run(inputs, rows);
    };
    const batcher = new DynamicBatcher(layout, options({ max_batch_size: 2, max_queue_size: 8 }), failing);
    const error = await batcher
      .submit(request(Array.from({ length: 20 }, (_, i) => i)))
      .catch((e: Error) => e);
    expect((error as Error).message).toContain('out of memory');
    await tick();
    await tick();
    // The first piece ran, the second failed; the one queued behind it was dropped unrun.
    expect(calls).toBe(2);
    expect(batcher.queuedRows).toBe(0);
  });

  it('fails a split request whole when its caller cancels, running nothing more', async () => {
    const model = doubler();
    model.hold();
    const controller = new AbortController();
    const batcher = new DynamicBatcher(layout, options({ max_batch_size: 2, max_queue_size: 8 }), model.run);
    const whole = code(
      batcher.submit(
        request(
          Array.from({ length: 20 }, (_, i) => i),
          { signal: controller.signal },
        ),
      ),
    );
    await tick();
    controller.abort();
    model.release();
    expect(await whole).toBe('cancelled');
    await tick();
    expect(model.batches).toEqual([2]);
    expect(batcher.queuedRows).toBe(0);
  });

  it('sheds a split request whole at admission when its last batch cannot meet the deadline', async () => {
    const model = doubler();
    const batcher = new DynamicBatcher(
      layout,
      options({ max_batch_size: 2, max_queue_size: 8 }),
      model.run,
      {},
      10,
    );
    // 10 batches of ~10 ms cannot fit 50 ms; one batch of 2 rows would.
    const refused = await batcher
      .submit(
        request(
          Array.from({ length: 40 }, () => 1),
          { deadline: performance.now() + 50 },
        ),
      )
      .then(
        () => undefined,
        (e: BallastError) => e,
      );
    expect(refused?.code).toBe('resource_exhausted');
    expect(refused?.message).toContain('the last of its 10 batches');
    expect(model.batches).toEqual([]);
    expect(await code(batcher.submit(request([1, 1, 2, 2], { deadline: performance.now() + 60_000 })))).toBe(
      'ok',
    );
  });

  it('counts executions, rows, queue and compute time per entry (ModelStatistics)', async () => {
    const batcher = new DynamicBatcher(
      layout,
      options({ max_batch_size: 4, max_queue_size: 8 }),
      doubler().run,
    );
    await Promise.all([batcher.submit(request([1, 1, 2, 2])), batcher.submit(request([3, 3]))]);
    await batcher.submit(request(Array.from({ length: 20 }, (_, i) => i)));
    const stats = batcher.stats;
    // 2 rows alone (idle model), the 1 row queued meanwhile, then 10 rows as 4 + 4 + 2.
    expect(stats.executionCount).toBe(5);
    expect(stats.inferenceCount).toBe(13);
    expect(stats.queue.count).toBe(5);
    expect(stats.computeInfer.count).toBe(5);
    expect(stats.computeInput.count).toBe(5);
    expect(stats.computeOutput.count).toBe(5);
    expect(stats.computeInfer.ns).toBeGreaterThan(0);
    expect(stats.lastInference).toBeGreaterThan(0);
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
    let now = 0;
    const slow = new DynamicBatcher(
      layout,
      options({ max_batch_size: 1, default_timeout_microseconds: 60_000 }),
      model.run,
      {},
      50,
      () => now,
    );
    // Idle: admitted whatever the estimate, so the estimate keeps learning.
    expect(slow.expectedWaitMs(1)).toBe(0);
    const running = slow.submit(request([1, 1]));
    await tick();
    expect(slow.running).toBe(true);
    // What is left of the running batch (50 ms estimated, 20 of them run)...
    now = 20;
    expect(slow.expectedWaitMs(1)).toBe(30);
    const queued = slow.submit(request([2, 2]));
    // ...plus a whole batch per batch queued ahead: 80 ms, past the 60 ms default_timeout.
    expect(slow.expectedWaitMs(1)).toBe(80);
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
    // A standing clock: arrivals no further apart than an execution takes, so they coalesce.
    const batcher = new DynamicBatcher(layout, options(), doubler().run, {}, 5, () => 0);
    await batcher.submit(request([9, 9]));
    const answers = await Promise.all(
      requests.map((span, i) => batcher.submit({ ...request([i, i]), spanContext: span.spanContext() })),
    );
    const batch = exporter.getFinishedSpans().findLast((s) => s.name === 'inference.batch');
    expect(batch?.links.map((l) => l.context.spanId).sort()).toEqual(
      requests.map((r) => r.spanContext().spanId).sort(),
    );
    expect(batch?.attributes['inference.batch_size']).toBe(2);
    for (const answer of answers) expect(answer.batchSpan?.spanId).toBe(batch?.spanContext().spanId);
  });
});
