import type { RpcError } from '@ballast/grpc-kit';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  demandModelFiles,
  eventually,
  FEATURES,
  startTestInference,
  type TestInference,
} from './test-support.js';

/**
 * Load shedding over a real loopback gRPC server and the real model worker: the shedder
 * refuses what cannot be served in time, and only that. A smoke run of the bench refused most
 * requests at a third of capacity: its estimate of a batch was the event loop's wall time,
 * which held every stall of the event loop (there, a loaded machine), so a stall once made
 * every later request look late.
 */
let t: TestInference;
const row = { features: Object.fromEntries(FEATURES.map((f, i) => [f, i + 1])) };

beforeAll(async () => {
  t = await startTestInference();
  // One row per batch, so that whatever arrives while a batch runs waits for it; a request
  // may wait up to 100 ms before its batch starts (far above a batch here, even on a loaded
  // machine, where a hop to the worker and back can take 10-20 ms). On the model worker
  // (inline_max_us 0), whose hop is what a stall distorts.
  t.registry.tags.set('steady', {
    'inference.max_batch_size': '1',
    'inference.default_timeout_microseconds': '100000',
    'inference.inline_max_us': '0',
  });
  t.registry.addVersion('steady', 1, await demandModelFiles(5));
  t.registry.setAlias('steady', 'production', 1);
  await eventually(() => t.pool.find('steady')?.aliases.get('production'), 'steady loaded');
});

afterAll(async () => {
  await t?.close();
});

const predict = () =>
  t.client.predict({ model: 'steady', rows: [row] }).then(
    () => 'OK',
    (e: RpcError) => `${status[e.code]}: ${e.details}`,
  );

/** Blocks this thread (the server's event loop) for `ms`, as a GC pause or a descheduled process does. */
function stall(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    // Busy on purpose.
  }
}

describe('load shedding', () => {
  it('answers a steady low rate with no refusal after the event loop stalled while a batch ran', async () => {
    const batcher = t.pool.find('steady')?.aliases.get('production')?.batcher;
    if (!batcher) throw new Error('steady has no production version');
    // The next batch goes to the real worker, and the event loop stalls right after posting it,
    // before it can read the answer back (the worker answers meanwhile).
    const run = t.executor.run.bind(t.executor);
    let stalled = false;
    t.executor.run = (key, inputs) => {
      const answer = run(key, inputs);
      if (!stalled) {
        stalled = true;
        stall(4_000);
      }
      return answer;
    };
    try {
      expect(await predict()).toBe('OK');
    } finally {
      t.executor.run = run;
    }
    expect(stalled).toBe(true);
    // Then two callers, each calling again when answered: each waits for at most one batch,
    // a small part of what it may wait, so none may be refused.
    const answers: string[] = [];
    await Promise.all(
      [0, 1].map(async () => {
        for (let i = 0; i < 50; i++) answers.push(await predict());
      }),
    );
    expect(answers.filter((a) => a !== 'OK')).toEqual([]);
    expect(batcher.estimatedBatchMs).toBeLessThan(2_000);
  });

  it('still refuses an overload with RESOURCE_EXHAUSTED, and answers every request it accepts', async () => {
    // 600 requests at once, one row per batch: most of them could not start within 100 ms.
    const answers = await Promise.all(Array.from({ length: 600 }, predict));
    const refused = answers.filter((a) => a !== 'OK');
    expect(refused.length).toBeGreaterThan(0);
    expect(answers.length - refused.length).toBeGreaterThan(0);
    for (const answer of refused) expect(answer).toMatch(/^RESOURCE_EXHAUSTED: overloaded: /);
  });
});
