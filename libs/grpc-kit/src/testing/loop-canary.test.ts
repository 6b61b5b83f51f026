import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { startLoopCanary } from './loop-canary.js';

describe('loop canary', () => {
  it('reports a stall of its process as a late tick, and ends', async () => {
    const canary = await startLoopCanary();
    await sleep(100);
    // What a machine-wide stall looks like to the canary: its process not run for 300 ms.
    process.kill(canary.pid, 'SIGSTOP');
    await sleep(300);
    process.kill(canary.pid, 'SIGCONT');
    await sleep(100);
    const report = await canary.stop();
    expect(report.ticks).toBeGreaterThan(5);
    expect(report.lateMaxMs).toBeGreaterThanOrEqual(250);
    expect(report.lateP99Ms).toBeLessThanOrEqual(report.lateMaxMs);
    expect(() => process.kill(canary.pid, 0)).toThrow(); // exited
  });
});
