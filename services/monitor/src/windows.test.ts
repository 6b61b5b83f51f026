import type { PredictionRecord } from '@ballast/queue';
import { describe, expect, it } from 'vitest';
import { buildBaseline } from './model-baseline.js';
import { statistics, T0, WINDOW } from './test-monitor.js';
import { absorb } from './windows.js';

// A replay of history: one request sent now whose rows happened in earlier windows.
describe('absorb by event time', () => {
  const reference = Array.from({ length: 100 }, (_, i) => i);
  const model = buildBaseline('m', 1, [statistics('price', reference)], undefined, { windowMs: WINDOW });
  const record: PredictionRecord = {
    requestId: 'r1',
    time: T0 + 10 * WINDOW,
    latencyUs: 1_000,
    inputs: { price: [1, 2, 3] },
    outputs: {},
    entityKeys: ['a', 'b', 'c'],
  };
  const counts = (out: ReturnType<typeof absorb>) =>
    Object.fromEntries(
      [...out.windows.values()]
        .filter((w) => w.key.feature === 'price')
        .map((w) => [(w.key.windowStart - T0) / WINDOW, w.hist.count]),
    );

  it('files each row in the window of its own time, and every row at the record time without rowTimes', () => {
    const replayed = absorb(model, [{ ...record, rowTimes: [T0, T0 + 1, T0 + WINDOW] }]);
    expect(counts(replayed)).toEqual({ 0: 2, 1: 1 });
    expect(counts(absorb(model, [record]))).toEqual({ 10: 3 });
  });

  it('refuses a record whose times do not match its rows', () => {
    const out = absorb(model, [{ ...record, rowTimes: [T0] }]);
    expect(out).toMatchObject({ records: 0, malformed: 1 });
  });
});
