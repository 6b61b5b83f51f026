// Test and benchmark helpers for packages that build on the kit: the echo service, a
// reflection client, raw HTTP/2 gRPC calls, perf_analyzer-style load measurement, and built services started as
// processes (with storage of a test's own).

export { BENCH_WINDOW_MS, type LoadPoint, measureLoad, quantile, writeBenchResult } from './bench.js';
export {
  createTestDatabase,
  type PostgresTestDatabase,
  TEST_DATABASE_URL,
  type TestDatabase,
} from './database.js';
export { EchoService, echoService } from './echo.js';
export { lateTicks } from './late-ticks.js';
export { type CanaryReport, startLoopCanary } from './loop-canary.js';
export { freePort } from './ports.js';
export {
  healthStatus,
  packageEntry,
  READY_TIMEOUT_MS,
  type Readiness,
  type ServiceProcess,
  type ServiceProcessOptions,
  ServingStatus,
  STOP_TIMEOUT_MS,
  startServiceProcess,
  type Watched,
  waitHealth,
  waitUntil,
} from './process.js';
export { grpcFrame, grpcHeaders, grpcStatus, rawSession } from './raw-http2.js';
export { reflectionClient } from './reflection-client.js';
export { type Replicas, startReplicas } from './replicas.js';
