import { describe, expect, it } from 'vitest';
import { QueueDelayTuner } from './queue-tuner.js';
import { servingConfig } from './serving-config.js';

/** Replays `count` arrivals `gapMs` apart and batches costing `fixedMs + perRowMs × rows`, on a made-up clock. */
function replay(
  tuner: QueueDelayTuner,
  { gapMs, count, fixedMs, perRowMs }: { gapMs: number; count: number; fixedMs: number; perRowMs: number },
) {
  let now = 0;
  for (let i = 0; i < count; i++) {
    tuner.arrival(now, 1);
    now += gapMs;
  }
  for (const rows of [1, 4, 16, 64, 1, 8, 32]) tuner.executed(rows, fixedMs + perRowMs * rows);
  return now;
}

describe('QueueDelayTuner', () => {
  it('fits execution time as fixed + per-row cost from the batches run', () => {
    const tuner = new QueueDelayTuner(20, 64);
    for (const rows of [1, 2, 8, 32, 64]) tuner.executed(rows, 0.5 + 0.01 * rows);
    expect(tuner.execMs(1)).toBeCloseTo(0.51, 6);
    expect(tuner.execMs(64)).toBeCloseTo(1.14, 6);
  });

  it('does not wait at all before it has seen traffic, or when arrivals are further apart than an execution', () => {
    const fresh = new QueueDelayTuner(20, 64);
    expect(fresh.retune(0)).toEqual({ delayUs: 0, batchSize: 1 });
    const light = new QueueDelayTuner(20, 64);
    const now = replay(light, { gapMs: 5, count: 200, fixedMs: 1, perRowMs: 0.01 });
    expect(light.gapMs).toBeCloseTo(5, 6);
    expect(light.retune(now)).toEqual({ delayUs: 0, batchSize: 1 });
  });

  it('under heavy load waits for the largest batch whose fill time and executions fit the objective', () => {
    const tuner = new QueueDelayTuner(20, 64);
    // One arrival every 0.1 ms against 1 ms + 0.01 ms per row: a batch of 64 fills in 6.3 ms and
    // runs in 1.64 ms; 6.3 + 2 x 1.64 = 9.6 ms fits 70% of 20 ms.
    const now = replay(tuner, { gapMs: 0.1, count: 500, fixedMs: 1, perRowMs: 0.01 });
    const tuning = tuner.retune(now);
    expect(tuning.batchSize).toBe(64);
    expect(tuning.delayUs).toBe(6300);
    expect(tuning.delayUs / 1000 + 2 * tuner.execMs(tuning.batchSize)).toBeLessThanOrEqual(20 * 0.7);
  });

  it('settles for a smaller batch when a full one would not fit a tight objective', () => {
    const tuner = new QueueDelayTuner(6, 64);
    const now = replay(tuner, { gapMs: 0.2, count: 500, fixedMs: 1, perRowMs: 0.01 });
    const tuning = tuner.retune(now);
    // 4.2 ms of budget: 8 rows fill in 1.4 ms and run twice in 2.16 ms; 16 rows would need 5.32.
    expect(tuning).toEqual({ delayUs: 1400, batchSize: 8 });
  });

  it('shrinks its budget while the observed p99 misses the objective, and grows it back once under', () => {
    const tuner = new QueueDelayTuner(20, 64);
    let now = replay(tuner, { gapMs: 0.1, count: 500, fixedMs: 1, perRowMs: 0.01 });
    expect(tuner.retune(now).batchSize).toBe(64);
    for (let i = 0; i < 512; i++) tuner.answered(30);
    const sizes: number[] = [];
    for (let step = 0; step < 6; step++) {
      now += 25;
      sizes.push(tuner.retune(now).batchSize);
    }
    expect(sizes.at(-1)).toBeLessThan(64);
    expect(sizes).toEqual([...sizes].sort((a, b) => b - a));
    for (let i = 0; i < 512; i++) tuner.answered(2);
    for (let step = 0; step < 40; step++) {
      now += 25;
      tuner.retune(now);
    }
    expect(tuner.tuning.batchSize).toBe(64);
  });

  it('under overload waits for the batch that keeps up with arrivals, even past the objective', () => {
    // 0.015 ms between arrivals against 1 ms + 0.01 ms per row: batches below 200 rows cannot
    // keep up (64 rows take 1.64 ms and arrive in 0.96 ms), so the largest is due, although
    // a 1 ms objective fits no batch at all, and although the observed p99 misses it.
    const tuner = new QueueDelayTuner(1, 64);
    const now = replay(tuner, { gapMs: 0.015, count: 2000, fixedMs: 1, perRowMs: 0.01 });
    for (let i = 0; i < 512; i++) tuner.answered(50);
    let tuning = tuner.retune(now);
    for (let step = 1; step <= 10; step++) tuning = tuner.retune(now + step * 25);
    expect(tuning).toEqual({ delayUs: 945, batchSize: 64 });
    // At 0.2 ms between arrivals a batch of 8 keeps up (1.08 ms against 1.6 ms of arrivals).
    const busy = new QueueDelayTuner(1, 64);
    const later = replay(busy, { gapMs: 0.2, count: 2000, fixedMs: 1, perRowMs: 0.01 });
    expect(busy.retune(later)).toEqual({ delayUs: 1400, batchSize: 8 });
  });

  it('retunes at most every 20 ms of its clock', () => {
    const tuner = new QueueDelayTuner(20, 64);
    tuner.retune(0);
    const now = replay(tuner, { gapMs: 0.01, count: 1000, fixedMs: 1, perRowMs: 0.01 });
    expect(tuner.retune(0 + 19)).toEqual({ delayUs: 0, batchSize: 1 });
    expect(tuner.retune(now + 20).batchSize).toBe(64);
  });
});

describe('inference.latency_objective_ms', () => {
  const defaults = {
    batcher: {
      max_batch_size: 64,
      max_queue_delay_microseconds: 0,
      preferred_batch_size: [],
      max_queue_size: 1000,
      default_timeout_microseconds: 0,
    },
    canaryPercent: 0,
    shadow: false,
    allowNonFinite: false,
    maxRowsPerRequest: 1000,
    inlineMaxUs: 0,
  };

  it('comes from the model tag, off (0) by default and for values that do not parse', () => {
    expect(servingConfig({}, defaults).batcher.latency_objective_ms).toBe(0);
    expect(
      servingConfig({ 'inference.latency_objective_ms': '25' }, defaults).batcher.latency_objective_ms,
    ).toBe(25);
    expect(
      servingConfig({ 'inference.latency_objective_ms': '-3' }, defaults).batcher.latency_objective_ms,
    ).toBe(0);
  });
});
