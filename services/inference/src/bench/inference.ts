import { type ChildProcess, fork } from 'node:child_process';
import { once } from 'node:events';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { InferenceService } from '@ballast/contracts/ballast/inference/v1/inference_pb.js';
import { GRPCInferenceService } from '@ballast/contracts/inference/grpc_predict_v2_pb.js';
import { createClient, RpcError } from '@ballast/grpc-kit';
import { quantile, writeBenchResult } from '@ballast/grpc-kit/testing';
import { selectBackend } from '@ballast/ml';
import { Server, ServerCredentials, status } from '@grpc/grpc-js';
import * as tf from '@tensorflow/tfjs';
import { benchModel, FEATURES, ROW } from './model.js';

/**
 * `npm run bench`: Ballast's inference server against a bare grpc-js server answering the
 * same RPCs with responses of the same size at once (the transport limit on this machine),
 * in one run, every row with the machine's load average:
 * 1. small model (MLP 32 -> 64 -> 1): closed loop at each concurrency, Predict batched and
 *    with batching off, ModelInfer typed and raw, and Predict with tracing on (100% sampling,
 *    batch span processor exporting OTLP/gRPC to a local sink), each against bare grpc-js;
 * 2. compute-bound model (32 -> 1024 -> 1024 -> 1): batched against bare and against the
 *    in-process compute limit (model.predict at batch 1 and 64);
 * 3. the queue-delay tuner: open loop at low, medium and high offered load, fixed queue
 *    delays swept against the delay tuned from a p99 objective;
 * 4. a 3x spike on a server that sheds what it cannot serve in time.
 * Servers are child processes; this process generates the load; all share the cores.
 * BENCH_SHORT=1: sub-second windows (a smoke run, not figures); BENCH_WINDOW_MS sets the window.
 */
const here = dirname(fileURLToPath(import.meta.url));
const SHORT = process.env.BENCH_SHORT === '1';
const WINDOW_MS = Number(process.env.BENCH_WINDOW_MS ?? (SHORT ? 600 : 3_000));
const WARMUP_MS = Math.min(500, WINDOW_MS);
const CONCURRENCY = (process.env.BENCH_CONCURRENCY ?? '1,4,16,64,256').split(',').map(Number);
const BACKEND = process.env.BALLAST_TF_BACKEND ?? 'wasm';
const SMALL = [64];
const LARGE = [1024, 1024];
const OBJECTIVE_MS = Number(process.env.BENCH_LATENCY_OBJECTIVE_MS ?? 20);
const FIXED_DELAYS_US = [0, 500, 2_000, 8_000];

const load1 = () => Math.round((loadavg()[0] ?? 0) * 100) / 100;

async function startServer(mode: string, env: Record<string, string> = {}, execArgv: string[] = []) {
  const child = fork(join(here, 'server-process.js'), [mode], {
    stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
    env: { ...process.env, BALLAST_TF_BACKEND: BACKEND, ...env },
    execArgv,
  });
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  for await (const line of lines) {
    if (line.startsWith('{"port"')) return { child, port: (JSON.parse(line) as { port: number }).port };
  }
  throw new Error(`${mode} server exited before listening`);
}

async function stop(child: ChildProcess) {
  const exited = once(child, 'exit');
  child.kill('SIGKILL');
  await exited;
}

interface Point {
  concurrency: number;
  throughput_per_s: number;
  p50_us: number;
  p99_us: number;
  errors: number;
  load_average: number;
}

/** Closed loop: a warm-up, then one window of `concurrency` callers each calling again as soon as answered. */
async function closedLoop(call: () => Promise<unknown>, concurrency: number): Promise<Point> {
  const loadAverage = load1();
  let errors = 0;
  const run = async (ms: number) => {
    const latencies: number[] = [];
    const started = performance.now();
    const end = started + ms;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (performance.now() < end) {
          const t0 = performance.now();
          try {
            await call();
            latencies.push((performance.now() - t0) * 1000);
          } catch {
            errors++;
          }
        }
      }),
    );
    return { latencies, seconds: (performance.now() - started) / 1000 };
  };
  await run(WARMUP_MS);
  errors = 0;
  const { latencies, seconds } = await run(WINDOW_MS);
  latencies.sort((a, b) => a - b);
  return {
    concurrency,
    throughput_per_s: Math.round(latencies.length / seconds),
    p50_us: Math.round(quantile(latencies, 0.5)),
    p99_us: Math.round(quantile(latencies, 0.99)),
    errors,
    load_average: loadAverage,
  };
}

interface OpenPoint {
  rate_per_s: number;
  sent: number;
  ok: number;
  ok_per_s: number;
  shed: number;
  other_errors: number;
  p50_us: number;
  p99_us: number;
  load_average: number;
}

/** Open loop: requests start on a fixed schedule whatever the server does (bounded to 4096 in flight). */
async function openLoop(call: () => Promise<unknown>, rate: number, seconds: number): Promise<OpenPoint> {
  const loadAverage = load1();
  const latencies: number[] = [];
  let ok = 0;
  let shed = 0;
  let other = 0;
  let inFlight = 0;
  const pending: Promise<void>[] = [];
  const start = performance.now();
  const total = Math.round(rate * seconds);
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    if (inFlight >= 4096) {
      other++;
      continue;
    }
    inFlight++;
    pending.push(
      call()
        .then(
          () => {
            ok++;
            latencies.push((performance.now() - due) * 1000);
          },
          (error: unknown) => {
            if (error instanceof RpcError && error.code === status.RESOURCE_EXHAUSTED) shed++;
            else other++;
          },
        )
        .finally(() => {
          inFlight--;
        }),
    );
  }
  await Promise.all(pending);
  const elapsed = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  return {
    rate_per_s: Math.round(rate),
    sent: total,
    ok,
    ok_per_s: Math.round(ok / elapsed),
    shed,
    other_errors: other,
    p50_us: Math.round(quantile(latencies, 0.5)),
    p99_us: Math.round(quantile(latencies, 0.99)),
    load_average: loadAverage,
  };
}

/** In-process model.predict on the same backend: calls and rows per second at each batch size. */
async function computeLimit(hidden: number[]) {
  await selectBackend(BACKEND === 'auto' ? 'wasm' : (BACKEND as 'wasm'));
  const model = benchModel(hidden);
  const rows = [];
  for (const batch of [1, 64]) {
    const data = new Float32Array(batch * FEATURES).fill(0.5);
    const run = () =>
      tf.tidy(() => (model.predict(tf.tensor2d(data, [batch, FEATURES])) as tf.Tensor).dataSync());
    for (let i = 0; i < 20; i++) run();
    const started = performance.now();
    let calls = 0;
    while (performance.now() - started < WINDOW_MS) {
      run();
      calls++;
    }
    const seconds = (performance.now() - started) / 1000;
    rows.push({
      batch_size: batch,
      calls_per_s: Math.round(calls / seconds),
      rows_per_s: Math.round((calls * batch) / seconds),
      predict_us: Math.round((seconds * 1e6) / calls),
    });
  }
  model.dispose();
  return rows;
}

/** The three ways in: Predict, ModelInfer with typed contents, ModelInfer with raw contents. */
function callers(port: number, model: string) {
  const options = { address: `127.0.0.1:${port}`, deadlineMs: 30_000, retry: false };
  const predict = createClient(InferenceService, options);
  const oip = createClient(GRPCInferenceService, options);
  const shape = [1n, BigInt(FEATURES)];
  const raw = new Uint8Array(Float32Array.from(ROW).buffer);
  return {
    predict: () => predict.predict({ model, rows: [{ inputs: { features: { values: ROW } } }] }),
    typed: () =>
      oip.modelInfer({
        modelName: model,
        inputs: [{ name: 'features', datatype: 'FP32', shape, contents: { fp32Contents: ROW } }],
      }),
    raw: () =>
      oip.modelInfer({
        modelName: model,
        inputs: [{ name: 'features', datatype: 'FP32', shape }],
        rawInputContents: [raw],
      }),
    close() {
      predict.close();
      oip.close();
    },
  };
}

/** An OTLP/gRPC collector (the SDK's exporter speaks gRPC) that counts the traced server's exports and drops them. */
async function otlpSink() {
  let exports = 0;
  const bytes = (b: Buffer) => b;
  const server = new Server();
  server.addService(
    {
      Export: {
        path: '/opentelemetry.proto.collector.trace.v1.TraceService/Export',
        requestStream: false,
        responseStream: false,
        requestSerialize: bytes,
        requestDeserialize: bytes,
        responseSerialize: bytes,
        responseDeserialize: bytes,
      },
    },
    {
      // An empty ExportTraceServiceResponse: zero bytes.
      Export: (_call: unknown, callback: (e: null, r: Buffer) => void) => {
        exports++;
        callback(null, Buffer.alloc(0));
      },
    },
  );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) =>
      e ? reject(e) : resolve(p),
    ),
  );
  return { port, exports: () => exports, close: () => server.forceShutdown() };
}

const ratio = (a: number | undefined, b: number | undefined) =>
  a && b ? Math.round((a / b) * 100) / 100 : null;
const startedAt = new Date().toISOString();
const loadBefore = loadavg();
const cpuStart = process.cpuUsage();

// 1. Small model: every variant at each concurrency, back to back.
const small = { BENCH_HIDDEN: SMALL.join(',') };
const sink = await otlpSink();
const bare = await startServer('bare');
const ballast = await startServer('ballast', small);
const telemetryRegister = fileURLToPath(import.meta.resolve('@ballast/telemetry/register'));
const traced = await startServer(
  'ballast',
  {
    ...small,
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${sink.port}`,
    OTEL_TRACES_SAMPLER: 'always_on',
    OTEL_SERVICE_NAME: 'ballast-inference-bench',
  },
  ['--import', telemetryRegister],
);
const bareCalls = callers(bare.port, 'bench');
const batchedCalls = callers(ballast.port, 'bench');
const offCalls = callers(ballast.port, 'bench-nobatch');
const tracedCalls = callers(traced.port, 'bench');
const variants = {
  bare_predict: bareCalls.predict,
  batched_predict: batchedCalls.predict,
  off_predict: offCalls.predict,
  traced_predict: tracedCalls.predict,
  bare_infer_typed: bareCalls.typed,
  batched_infer_typed: batchedCalls.typed,
  bare_infer_raw: bareCalls.raw,
  batched_infer_raw: batchedCalls.raw,
};
const smallRows: Record<string, Point>[] = [];
for (const concurrency of CONCURRENCY) {
  const row: Record<string, Point> = {};
  for (const [name, call] of Object.entries(variants)) {
    row[name] = await closedLoop(call, concurrency);
    console.error(
      `small ${name} c=${concurrency}: ${row[name].throughput_per_s}/s (load ${row[name].load_average})`,
    );
  }
  smallRows.push(row);
}
for (const c of [bareCalls, batchedCalls, offCalls, tracedCalls]) c.close();
const spansExported = sink.exports();
await Promise.all([stop(bare.child), stop(ballast.child), stop(traced.child)]);
sink.close();
const per = (row: Record<string, Point>, name: string) => row[name]?.throughput_per_s;
const smallTable = smallRows.map((row) => ({
  c: row.bare_predict?.concurrency,
  load: row.bare_predict?.load_average,
  bare: per(row, 'bare_predict'),
  batched: per(row, 'batched_predict'),
  'batched/bare': ratio(per(row, 'batched_predict'), per(row, 'bare_predict')),
  'off/bare': ratio(per(row, 'off_predict'), per(row, 'bare_predict')),
  'typed/bare': ratio(per(row, 'batched_infer_typed'), per(row, 'bare_infer_typed')),
  'raw/bare': ratio(per(row, 'batched_infer_raw'), per(row, 'bare_infer_raw')),
  'traced/batched': ratio(per(row, 'traced_predict'), per(row, 'batched_predict')),
  'batched p99 us': row.batched_predict?.p99_us,
  'bare p99 us': row.bare_predict?.p99_us,
}));

// 2. Compute-bound model: batched against bare and against the compute limit.
const compute = await computeLimit(LARGE);
const largeBare = await startServer('bare');
const large = await startServer('ballast', { BENCH_HIDDEN: LARGE.join(',') });
const largeBareCalls = callers(largeBare.port, 'bench');
const largeCalls = callers(large.port, 'bench');
const largeRows = [];
for (const concurrency of [1, 64, 256].filter((c) => CONCURRENCY.includes(c))) {
  const b = await closedLoop(largeBareCalls.predict, concurrency);
  const batched = await closedLoop(largeCalls.predict, concurrency);
  const at64 = compute.find((r) => r.batch_size === 64)?.rows_per_s ?? 0;
  const at1 = compute.find((r) => r.batch_size === 1)?.predict_us ?? 0;
  // At concurrency 1: one bare round trip plus one batch-1 predict per call.
  const limit = concurrency === 1 ? 1e6 / (b.p50_us + at1) : Math.min(b.throughput_per_s, at64);
  largeRows.push({
    c: concurrency,
    load: batched.load_average,
    bare: b.throughput_per_s,
    batched: batched.throughput_per_s,
    limit: Math.round(limit),
    'batched/limit': ratio(batched.throughput_per_s, limit),
  });
  console.error(`large c=${concurrency}: ${batched.throughput_per_s}/s, limit ${Math.round(limit)}`);
}
largeBareCalls.close();
largeCalls.close();
await Promise.all([stop(largeBare.child), stop(large.child)]);

// 3. The tuner: fixed delays swept against the tuned one, at three offered loads.
const tuning = await startServer('ballast', {
  ...small,
  BENCH_FIXED_DELAYS_US: FIXED_DELAYS_US.join(','),
  BENCH_LATENCY_OBJECTIVE_MS: String(OBJECTIVE_MS),
});
const capacity = Math.max(...smallRows.map((r) => per(r, 'batched_predict') ?? 0));
const openSeconds = Math.max(1, (WINDOW_MS * 2) / 1000);
const settings = [...FIXED_DELAYS_US.map((us) => `bench-d${us}`), 'bench-tuned'];
const tunerRows = [];
for (const [level, share] of [
  ['low', 0.2],
  ['medium', 0.6],
  ['high', 1.0],
] as const) {
  const rate = Math.max(50, Math.round(capacity * share));
  const points: Record<string, OpenPoint> = {};
  for (const model of settings) {
    const calls = callers(tuning.port, model);
    await openLoop(calls.predict, rate, Math.min(0.5, openSeconds / 2));
    points[model] = await openLoop(calls.predict, rate, openSeconds);
    calls.close();
  }
  const fixed = FIXED_DELAYS_US.map((us) => points[`bench-d${us}`] as OpenPoint);
  const within = fixed.filter((p) => p.p99_us <= OBJECTIVE_MS * 1000 && p.other_errors === 0);
  const best = Math.max(...(within.length > 0 ? within : fixed).map((p) => p.ok_per_s));
  const tuned = points['bench-tuned'] as OpenPoint;
  tunerRows.push({
    load: level,
    rate,
    load_average: tuned.load_average,
    ...Object.fromEntries(
      FIXED_DELAYS_US.map((us, i) => [`d${us}us ok/s|p99`, `${fixed[i]?.ok_per_s}|${fixed[i]?.p99_us}`]),
    ),
    'tuned ok/s|p99': `${tuned.ok_per_s}|${tuned.p99_us}`,
    'tuned/best fixed': ratio(tuned.ok_per_s, best),
    objective_met: tuned.p99_us <= OBJECTIVE_MS * 1000,
  });
  console.error(
    `tuner ${level} (${rate}/s): tuned ${tuned.ok_per_s}/s p99 ${tuned.p99_us} us; best fixed ${best}/s`,
  );
}
await stop(tuning.child);

// 4. A 3x spike on a server that sheds what it cannot serve in time.
const shedding = await startServer('ballast', {
  ...small,
  BENCH_DEFAULT_TIMEOUT_US: process.env.BENCH_DEFAULT_TIMEOUT_US ?? '5000',
});
const spikeCalls = callers(shedding.port, 'bench');
const baseRate = Math.max(50, Math.round(capacity / 3));
const unloaded = await openLoop(spikeCalls.predict, baseRate, openSeconds);
const spike = await openLoop(spikeCalls.predict, baseRate * 3, openSeconds);
spikeCalls.close();
await stop(shedding.child);
const cpu = process.cpuUsage(cpuStart);

const targets = {
  min_small_batched_vs_bare: Math.min(...smallTable.map((r) => r['batched/bare'] ?? 0)),
  min_small_typed_vs_bare: Math.min(...smallTable.map((r) => r['typed/bare'] ?? 0)),
  min_small_raw_vs_bare: Math.min(...smallTable.map((r) => r['raw/bare'] ?? 0)),
  min_traced_vs_untraced: Math.min(...smallTable.map((r) => r['traced/batched'] ?? 0)),
  min_large_vs_limit: Math.min(...largeRows.map((r) => r['batched/limit'] ?? 0)),
  min_tuned_vs_best_fixed: Math.min(...tunerRows.map((r) => r['tuned/best fixed'] ?? 0)),
  tuned_objective_met: tunerRows.every((r) => r.objective_met),
  spike_p99_vs_unloaded: ratio(spike.p99_us, unloaded.p99_us),
  spike_refusals_only_resource_exhausted: spike.other_errors === 0,
};
console.log(
  `Ballast inference benchmark (${BACKEND}; ${SHORT ? 'SHORT smoke run' : 'full'}, ${WINDOW_MS} ms windows; started ${startedAt}, load average ${loadBefore.map((l) => l.toFixed(2)).join(' ')})`,
);
console.log(
  `1. small model ${FEATURES} -> ${SMALL.join(' -> ')} -> 1, calls/s (tracing: ${spansExported} OTLP exports)`,
);
console.table(smallTable);
console.log(`2. compute-bound model ${FEATURES} -> ${LARGE.join(' -> ')} -> 1`, compute);
console.table(largeRows);
console.log(
  `3. queue delay tuned from a p99 objective of ${OBJECTIVE_MS} ms against fixed delays (open loop)`,
);
console.table(tunerRows);
console.log('4. 3x spike', { unloaded, spike });
console.log('targets', targets);
console.log(
  `load generator CPU: user ${(cpu.user / 1e6).toFixed(1)}s, system ${(cpu.system / 1e6).toFixed(1)}s`,
);
const out = writeBenchResult(here, 'inference', {
  backend: BACKEND,
  short: SHORT,
  windowMs: WINDOW_MS,
  startedAt,
  // The machine's load average (1, 5, 15 min) before and after; each row has its own 1-minute one.
  loadAverage: { before: loadBefore, after: loadavg() },
  small: { model: { features: FEATURES, hidden: SMALL }, rows: smallRows, table: smallTable, spansExported },
  large: { model: { features: FEATURES, hidden: LARGE }, compute, table: largeRows },
  tuner: { objectiveMs: OBJECTIVE_MS, fixedDelaysUs: FIXED_DELAYS_US, table: tunerRows },
  spike: { unloaded, spike },
  targets,
  loadGeneratorCpu: cpu,
});
console.log(`wrote ${out}`);
