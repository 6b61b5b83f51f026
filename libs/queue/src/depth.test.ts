import type { Meter } from 'bullmq';
import { afterAll, describe, expect, it } from 'vitest';
import { closeAll } from './close.js';
import { connectRedis } from './connection.js';
import { QueueNames } from './names.js';
import { createQueue } from './queue.js';
import { createQueueTelemetry } from './telemetry.js';
import { testPrefix } from './test-support.js';
import { waitFor } from './testing/index.js';
import { createWorker } from './worker.js';

// BullMQ records queue depth through its telemetry's meter; this meter keeps what it is given
// so the test can read it. Redis, the queue and the worker are real.
function recordingMeter() {
  const gauges: Array<{ name: string; value: number; attributes: Record<string, unknown> }> = [];
  const none = { add() {}, record() {} };
  const meter: Meter = {
    createCounter: () => none,
    createHistogram: () => none,
    createGauge: (name) => ({
      record: (value: number, attributes?: Record<string, unknown>) => {
        gauges.push({ name, value, attributes: attributes ?? {} });
      },
    }),
  };
  return { meter, gauges };
}

describe('queue depth', () => {
  const prefix = testPrefix();
  const connection = connectRedis();
  afterAll(async () => closeAll([connection]));

  it('is recorded by state while a worker runs, and no more once it closes', async () => {
    const { meter, gauges } = recordingMeter();
    const queue = createQueue(QueueNames.trainingRun, { connection, prefix });
    for (const model of ['a', 'b', 'c']) {
      await queue.add(
        'run',
        { model, reason: 'depth test' },
        {
          delay: 60_000,
          jobId: `depth-${model}`,
        },
      );
    }
    const worker = createWorker(QueueNames.trainingRun, async () => undefined, {
      connection,
      prefix,
      telemetry: { ...createQueueTelemetry(), meter },
      depthMetricMs: 50,
    });
    try {
      const delayed = () =>
        gauges.filter(
          (g) =>
            g.name === 'bullmq.queue.jobs' &&
            g.attributes['bullmq.queue.name'] === QueueNames.trainingRun &&
            g.attributes['bullmq.queue.jobs.state'] === 'delayed',
        );
      // Waits on the gauge itself (a first count on a loaded machine can take a while).
      await waitFor('a delayed gauge of 3', async () => delayed().some((g) => g.value === 3));
      expect(delayed().at(-1)?.value).toBe(3);
      const states = new Set(gauges.map((g) => g.attributes['bullmq.queue.jobs.state']));
      expect([...states].sort()).toEqual(
        ['active', 'delayed', 'failed', 'prioritized', 'waiting', 'waiting-children'].sort(),
      );
    } finally {
      await worker.close();
    }
    const after = gauges.length;
    await new Promise((r) => setTimeout(r, 200));
    expect(gauges.length).toBe(after);
    await queue.obliterate({ force: true });
    await queue.close();
  });
});
