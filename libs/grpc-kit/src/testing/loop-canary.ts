import { fork } from 'node:child_process';
import { once } from 'node:events';
import { packageEntry } from './process.js';

/** How late a bare process's 10 ms timer ticks came while a measurement ran. */
export interface CanaryReport {
  ticks: number;
  lateMaxMs: number;
  lateP99Ms: number;
}

/**
 * The machine's own floor for event-loop pauses, measured beside a benchmark: a bare Node
 * process that does nothing but a 10 ms timer. When the service measured shows a pause of
 * 80 ms once in ten minutes, the canary says whether the machine stalled every process then
 * (the scheduler, the kernel writing back pages, another tenant) or the service did it alone.
 * Start it as the measured work starts; stop() returns what it saw and ends it.
 */
export async function startLoopCanary(): Promise<{ pid: number; stop(): Promise<CanaryReport> }> {
  // The built file, also when this module runs from source (tests): the package is built first.
  const child = fork(packageEntry('@ballast/grpc-kit', 'dist/testing/loop-canary-main.js'), [], {
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  await once(child, 'message'); // started
  return {
    pid: child.pid as number,
    async stop() {
      const report = once(child, 'message').then(([m]) => m as CanaryReport);
      child.send('stop');
      const result = await report;
      await once(child, 'exit');
      return result;
    },
  };
}
