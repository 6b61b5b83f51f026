// The canary process of loop-canary.ts: a 10 ms timer and nothing else.
import { lateTicks } from './late-ticks.js';

const ticks = lateTicks(10);
process.on('message', () => {
  const { ticks: count, max, p99 } = ticks.stop();
  process.send?.({ ticks: count, lateMaxMs: max, lateP99Ms: p99 }, () => process.disconnect());
});
process.send?.('started');
