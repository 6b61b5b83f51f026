import { monitorEventLoopDelay } from 'node:perf_hooks';
import { getMeter } from './metrics.js';

/**
 * CPU, resident memory and event-loop delay of this process, under the names Prometheus'
 * own client libraries use, so monitor (and any dashboard) reads every service the same way.
 * Several services in one process (tests) share one registration; the returned function
 * stops the event-loop sampler when the last of them stops.
 */
let users = 0;
let sampler: ReturnType<typeof monitorEventLoopDelay> | undefined;

export function registerProcessMetrics(): () => void {
  users++;
  sampler ??= register();
  sampler.enable();
  let stopped = false;
  // The instruments stay registered with the meter; a later service re-enables the sampler.
  return () => {
    if (stopped) return;
    stopped = true;
    if (--users === 0) sampler?.disable();
  };
}

function register(): ReturnType<typeof monitorEventLoopDelay> {
  const meter = getMeter('@ballast/telemetry/process');
  const delay = monitorEventLoopDelay({ resolution: 10 });
  meter
    .createObservableCounter('process_cpu_seconds', {
      description: 'User and system CPU time spent, in seconds.',
    })
    .addCallback((r) => {
      const u = process.cpuUsage();
      r.observe((u.user + u.system) / 1e6);
    });
  meter
    .createObservableGauge('process_resident_memory_bytes', { description: 'Resident memory size in bytes.' })
    .addCallback((r) => r.observe(process.memoryUsage.rss()));
  meter
    .createObservableGauge('nodejs_eventloop_lag_seconds', {
      description: 'Event-loop delay p99 since the last scrape, in seconds.',
    })
    .addCallback((r) => {
      r.observe(delay.percentile(99) / 1e9);
      delay.reset();
    });
  return delay;
}
