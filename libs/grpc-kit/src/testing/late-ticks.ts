/**
 * How late an interval timer's ticks come while some work runs: what a health check or any
 * other timer in the same process would wait. perf_hooks' delay histogram reads in steps of
 * its resolution; a timer is the plain measure. stop() ends it and gives the max and p99 in
 * milliseconds (one decimal) and the ticks seen.
 */
export function lateTicks(intervalMs: number) {
  const late: number[] = [];
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    late.push(Math.max(0, now - last - intervalMs));
    last = now;
  }, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      late.sort((a, b) => a - b);
      const at = (q: number) =>
        Math.round((late[Math.min(late.length - 1, Math.floor(q * late.length))] ?? 0) * 10) / 10;
      return { ticks: late.length, max: at(1), p99: at(0.99) };
    },
  };
}
