// Test and benchmark helpers for packages that build on the kit: the echo service, a
// reflection client, and perf_analyzer-style load measurement.

export { BENCH_WINDOW_MS, type LoadPoint, measureLoad, quantile, writeBenchResult } from './bench.js';
export { EchoService, echoService } from './echo.js';
export { freePort } from './ports.js';
export { reflectionClient } from './reflection-client.js';
