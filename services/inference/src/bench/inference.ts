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
import { status } from '@grpc/grpc-js';
import * as tf from '@tensorflow/tfjs';
import { benchModel, FEATURES, ROW } from './model.js';
import { otlpSink, tracingEnv } from './otlp-sink.js';
import { mainThreadCpuMs } from './thread-cpu.js';

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
 * Every row is printed as it is measured, with the 1-minute load average, and the whole run is
 * written as JSON (test/bench/results/<BENCH_RESULT>.json).
 *
 * Knobs, for short forms on a shared machine:
 * - BENCH_SHORT=1: 600 ms windows (a smoke run, not figures); BENCH_WINDOW_MS sets the window;
 * - BENCH_CONCURRENCY: the closed-loop concurrency list (1,4,16,64,256);
 * - BENCH_SECTIONS: which sections run, of small,large,tuner,spike (all); without `small`, the
 *   tuner's and the spike's rates come from a short capacity probe;
 * - BENCH_OPEN_SECONDS: each open-loop run (2 windows, at least 1 s);
 * - BENCH_SERVER_WARMUP_MS: traffic each new server gets before it is measured (3000; 300 short);
 * - BENCH_ROUNDS: the small model's variants measured this many times per concurrency, in
 *   alternating order (3; each figure is the median, so one noisy window cannot make a ratio);
 * - BENCH_TRACE_BREAKDOWN=1: one more server in the small section, with the telemetry preload
 *   and OTEL_TRACES_SAMPLER=always_off: what the instrumentation costs before any span is
 *   sampled, recorded or exported (the rest of the traced row's cost is sampling and export);
 * - BENCH_LATENCY_OBJECTIVE_MS (20), BENCH_DEFAULT_TIMEOUT_US (5000), BALLAST_TF_BACKEND (wasm),
 *   BENCH_RESULT (inference).
 * Each Ballast row also has the server's main-thread CPU per call (Linux), steadier than
 * throughput when other processes share the cores.
 */
const here = dirname(fileURLToPath(import.meta.url));
const SHORT = process.env.BENCH_SHORT === '1';
const WINDOW_MS = Number(process.env.BENCH_WINDOW_MS ?? (SHORT ? 600 : 2_000));
const WARMUP_MS = Math.min(500, WINDOW_MS);
/**
 * Traffic a freshly started server gets before anything on it is measured. V8 compiles hot code
 * (grpc-js, the service, TensorFlow.js's kernels in the worker) to machine code only after it
 * has run many times: a new server at concurrency 1 went from 272 to 730 calls/s over its first
 * six seconds (the compute-bound model; the small one from 652 to 1,624), so the large
 * section's concurrency-1 row, measured 500 ms after its server started, measured a cold server.
 */
const SERVER_WARMUP_MS = Number(process.env.BENCH_SERVER_WARMUP_MS ?? (SHORT ? 300 : 3_000));
const CONCURRENCY = (process.env.BENCH_CONCURRENCY ?? '1,4,16,64,256').split(',').map(Number);
const SECTIONS = new Set((process.env.BENCH_SECTIONS ?? 'small,large,tuner,spike').split(','));
const OPEN_SECONDS = Number(process.env.BENCH_OPEN_SECONDS ?? Math.max(1, (WINDOW_MS * 2) / 1000));
const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 3));
const TRACE_BREAKDOWN = process.env.BENCH_TRACE_BREAKDOWN === '1';
const BACKEND = process.env.BALLAST_TF_BACKEND ?? 'wasm';
const RESULT = process.env.BENCH_RESULT ?? 'inference';
const SMALL = [64];
const LARGE = [1024, 1024];
const OBJECTIVE_MS = Number(process.env.BENCH_LATENCY_OBJECTIVE_MS ?? 20);
const FIXED_DELAYS_US = [0, 500, 2_000, 8_000];

const load1 = () => Math.round((loadavg()[0] ?? 0) * 100) / 100;
const median = (values: number[]) => [...values].sort((a, b) => a - b)[values.length >> 1] ?? 0;

async function startServer(mode: string, env: Record<string, string> = {}, execArgv: string[] = []) {
  const child = fork(join(here, 'server-process.js'), [mode], {
    stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
    env: { ...process.env, BALLAST_TF_BACKEND: BACKEND, ...env },
    execArgv,
  });
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  for await (const line of lines) {
    if (!line.startsWith('{"port"')) continue;
    const { port, engines = {} } = JSON.parse(line) as { port: number; engines?: Record<string, string> };
    if (mode !== 'bare') console.error(`server pid ${child.pid}: models ran by ${JSON.stringify(engines)}`);
    return { child, port, engines };
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
  /** The server's main-thread CPU per call answered, µs (Linux; null when unknown). */
  server_cpu_us_per_call: number | null;
}

/**
 * Closed loop: a warm-up, then one window of `concurrency` callers each calling again as soon
 * as answered. `serverPid`: the server whose main-thread CPU is read around the window.
 */
async function closedLoop(
  call: () => Promise<unknown>,
  concurrency: number,
  serverPid?: number,
): Promise<Point> {
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
  const cpuBefore = mainThreadCpuMs(serverPid);
  const { latencies, seconds } = await run(WINDOW_MS);
  const cpuAfter = mainThreadCpuMs(serverPid);
  latencies.sort((a, b) => a - b);
  return {
    concurrency,
    throughput_per_s: Math.round(latencies.length / seconds),
    p50_us: Math.round(quantile(latencies, 0.5)),
    p99_us: Math.round(quantile(latencies, 0.99)),
    errors,
    load_average: loadAverage,
    server_cpu_us_per_call:
      cpuBefore === undefined || cpuAfter === undefined || latencies.length === 0
        ? null
        : Math.round(((cpuAfter - cpuBefore) * 1000) / latencies.length),
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

/** Closed-loop traffic at concurrency 8 through each of a new server's ways in, SERVER_WARMUP_MS in all. */
async function warmUp(calls: (() => Promise<unknown>)[]) {
  const each = SERVER_WARMUP_MS / calls.length;
  for (const call of calls) {
    const end = performance.now() + each;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (performance.now() < end) await call().catch(() => {});
      }),
    );
  }
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

const ratio = (a: number | undefined | null, b: number | undefined | null) =>
  a && b ? Math.round((a / b) * 100) / 100 : null;
const startedAt = new Date().toISOString();
const loadBefore = loadavg();
const cpuStart = process.cpuUsage();
const small = { BENCH_HIDDEN: SMALL.join(',') };

/**
 * 1. Small model: every variant at each concurrency, ROUNDS times over, the order reversed every
 * other round (so that a trend in the machine's load favours none); each figure is the median of
 * its ROUNDS windows. One 3 s window per variant gave ratios that moved by 0.2 between runs.
 */
async function smallSection() {
  const sink = await otlpSink();
  const bare = await startServer('bare');
  const ballast = await startServer('ballast', small);
  const telemetryRegister = fileURLToPath(import.meta.resolve('@ballast/telemetry/register'));
  const traced = await startServer('ballast', { ...small, ...tracingEnv(sink.port) }, [
    '--import',
    telemetryRegister,
  ]);
  const unsampled = TRACE_BREAKDOWN
    ? await startServer(
        'ballast',
        { ...small, ...tracingEnv(sink.port), OTEL_TRACES_SAMPLER: 'always_off' },
        ['--import', telemetryRegister],
      )
    : undefined;
  const unsampledCalls = unsampled ? callers(unsampled.port, 'bench') : undefined;
  const bareCalls = callers(bare.port, 'bench');
  const batchedCalls = callers(ballast.port, 'bench');
  const offCalls = callers(ballast.port, 'bench-nobatch');
  const tracedCalls = callers(traced.port, 'bench');
  await warmUp([bareCalls.predict, bareCalls.typed, bareCalls.raw]);
  await warmUp([batchedCalls.predict, offCalls.predict, batchedCalls.typed, batchedCalls.raw]);
  await warmUp([tracedCalls.predict]);
  if (unsampledCalls) await warmUp([unsampledCalls.predict]);
  const variants: [string, () => Promise<unknown>, number | undefined][] = [
    ['bare_predict', bareCalls.predict, bare.child.pid],
    ['batched_predict', batchedCalls.predict, ballast.child.pid],
    ['off_predict', offCalls.predict, ballast.child.pid],
    ['traced_predict', tracedCalls.predict, traced.child.pid],
    ['bare_infer_typed', bareCalls.typed, bare.child.pid],
    ['batched_infer_typed', batchedCalls.typed, ballast.child.pid],
    ['bare_infer_raw', bareCalls.raw, bare.child.pid],
    ['batched_infer_raw', batchedCalls.raw, ballast.child.pid],
    ...(unsampled && unsampledCalls
      ? [
          ['unsampled_predict', unsampledCalls.predict, unsampled.child.pid] as [
            string,
            () => Promise<unknown>,
            number,
          ],
        ]
      : []),
  ];
  const rows: Record<string, Point[]>[] = [];
  for (const concurrency of CONCURRENCY) {
    const row: Record<string, Point[]> = Object.fromEntries(variants.map(([name]) => [name, []]));
    for (let round = 0; round < ROUNDS; round++) {
      for (const [name, call, pid] of round % 2 === 1 ? [...variants].reverse() : variants) {
        const point = await closedLoop(call, concurrency, pid);
        row[name]?.push(point);
        console.error(
          `small ${name} c=${concurrency} (round ${round + 1}): ${point.throughput_per_s}/s p99 ${point.p99_us} us` +
            `${point.server_cpu_us_per_call === null ? '' : `, server ${point.server_cpu_us_per_call} us CPU/call`} (load ${point.load_average})`,
        );
      }
    }
    rows.push(row);
  }
  for (const c of [bareCalls, batchedCalls, offCalls, tracedCalls, unsampledCalls]) c?.close();
  const spansExported = sink.exports();
  await Promise.all([bare, ballast, traced, unsampled].map((s) => (s ? stop(s.child) : undefined)));
  sink.close();
  const table = rows.map((row) => {
    const rate = (name: string) => median((row[name] ?? []).map((p) => p.throughput_per_s));
    const cpu = (name: string) => median((row[name] ?? []).map((p) => p.server_cpu_us_per_call ?? 0)) || null;
    const p99 = (name: string) => median((row[name] ?? []).map((p) => p.p99_us));
    const first = row.bare_predict?.[0];
    return {
      c: first?.concurrency,
      load: first?.load_average,
      bare: rate('bare_predict'),
      batched: rate('batched_predict'),
      'batched/bare': ratio(rate('batched_predict'), rate('bare_predict')),
      'off/bare': ratio(rate('off_predict'), rate('bare_predict')),
      'typed/bare': ratio(rate('batched_infer_typed'), rate('bare_infer_typed')),
      'raw/bare': ratio(rate('batched_infer_raw'), rate('bare_infer_raw')),
      'traced/batched': ratio(rate('traced_predict'), rate('batched_predict')),
      'cpu/call bare|batched|traced us': `${cpu('bare_predict')}|${cpu('batched_predict')}|${cpu('traced_predict')}`,
      'cpu traced/batched': ratio(cpu('traced_predict'), cpu('batched_predict')),
      ...(unsampled
        ? {
            'unsampled/batched': ratio(rate('unsampled_predict'), rate('batched_predict')),
            'cpu unsampled/batched': ratio(cpu('unsampled_predict'), cpu('batched_predict')),
          }
        : {}),
      'batched p99 us': p99('batched_predict'),
      'bare p99 us': p99('bare_predict'),
    };
  });
  // What ran the small model in each server: js (inline) or the worker's backend.
  const engines = {
    batched: ballast.engines.bench,
    off: ballast.engines['bench-nobatch'],
    traced: traced.engines.bench,
    ...(unsampled ? { unsampled: unsampled.engines.bench } : {}),
  };
  return { rows, table, spansExported, engines };
}

/** 2. Compute-bound model: batched against bare and against the compute limit. */
async function largeSection() {
  const compute = await computeLimit(LARGE);
  const largeBare = await startServer('bare');
  const large = await startServer('ballast', { BENCH_HIDDEN: LARGE.join(',') });
  const largeBareCalls = callers(largeBare.port, 'bench');
  const largeCalls = callers(large.port, 'bench');
  await warmUp([largeBareCalls.predict]);
  await warmUp([largeCalls.predict]);
  const rows = [];
  for (const concurrency of [1, 64, 256].filter((c) => CONCURRENCY.includes(c))) {
    const b = await closedLoop(largeBareCalls.predict, concurrency);
    const batched = await closedLoop(largeCalls.predict, concurrency, large.child.pid);
    const at64 = compute.find((r) => r.batch_size === 64)?.rows_per_s ?? 0;
    const at1 = compute.find((r) => r.batch_size === 1)?.predict_us ?? 0;
    // At concurrency 1: one bare round trip plus one batch-1 predict per call.
    const limit = concurrency === 1 ? 1e6 / (b.p50_us + at1) : Math.min(b.throughput_per_s, at64);
    rows.push({
      c: concurrency,
      load: batched.load_average,
      bare: b.throughput_per_s,
      batched: batched.throughput_per_s,
      limit: Math.round(limit),
      'batched/limit': ratio(batched.throughput_per_s, limit),
      'batched p50 us': batched.p50_us,
      errors: batched.errors,
    });
    console.error(
      `large c=${concurrency}: ${batched.throughput_per_s}/s, limit ${Math.round(limit)} (load ${batched.load_average})`,
    );
  }
  largeBareCalls.close();
  largeCalls.close();
  await Promise.all([stop(largeBare.child), stop(large.child)]);
  return { compute, table: rows, engine: large.engines.bench };
}

/** The batched server's best closed-loop rate: the small section's, or a short probe of its own. */
async function capacityOf(smallTable: { batched?: number | undefined }[] | undefined) {
  if (smallTable && smallTable.length > 0) return Math.max(...smallTable.map((r) => r.batched ?? 0));
  const server = await startServer('ballast', small);
  const calls = callers(server.port, 'bench');
  await warmUp([calls.predict]);
  const point = await closedLoop(calls.predict, Math.max(...CONCURRENCY));
  calls.close();
  await stop(server.child);
  console.error(
    `capacity probe c=${point.concurrency}: ${point.throughput_per_s}/s (load ${point.load_average})`,
  );
  return point.throughput_per_s;
}

/** 3. The tuner: fixed delays swept against the tuned one, at three offered loads. */
async function tunerSection(capacity: number) {
  const tuning = await startServer('ballast', {
    ...small,
    BENCH_FIXED_DELAYS_US: FIXED_DELAYS_US.join(','),
    BENCH_LATENCY_OBJECTIVE_MS: String(OBJECTIVE_MS),
  });
  const settings = [...FIXED_DELAYS_US.map((us) => `bench-d${us}`), 'bench-tuned'];
  // Through 'bench', a model of the same server that is not measured here: the tuned model's
  // tuner then starts from the traffic it is measured under.
  const warming = callers(tuning.port, 'bench');
  await warmUp([warming.predict]);
  warming.close();
  const rows = [];
  for (const [level, share] of [
    ['low', 0.2],
    ['medium', 0.6],
    ['high', 1.0],
  ] as const) {
    const rate = Math.max(50, Math.round(capacity * share));
    const points: Record<string, OpenPoint> = {};
    for (const model of settings) {
      const calls = callers(tuning.port, model);
      await openLoop(calls.predict, rate, Math.min(0.5, OPEN_SECONDS / 2));
      points[model] = await openLoop(calls.predict, rate, OPEN_SECONDS);
      calls.close();
    }
    const fixed = FIXED_DELAYS_US.map((us) => points[`bench-d${us}`] as OpenPoint);
    const within = fixed.filter((p) => p.p99_us <= OBJECTIVE_MS * 1000 && p.other_errors === 0);
    const best = Math.max(...(within.length > 0 ? within : fixed).map((p) => p.ok_per_s));
    const tuned = points['bench-tuned'] as OpenPoint;
    rows.push({
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
      `tuner ${level} (${rate}/s): tuned ${tuned.ok_per_s}/s p99 ${tuned.p99_us} us; best fixed ${best}/s (load ${tuned.load_average})`,
    );
  }
  await stop(tuning.child);
  return { objectiveMs: OBJECTIVE_MS, fixedDelaysUs: FIXED_DELAYS_US, table: rows };
}

/** 4. A 3x spike on a server that sheds what it cannot serve in time. */
async function spikeSection(capacity: number) {
  const shedding = await startServer('ballast', {
    ...small,
    BENCH_DEFAULT_TIMEOUT_US: process.env.BENCH_DEFAULT_TIMEOUT_US ?? '5000',
  });
  const spikeCalls = callers(shedding.port, 'bench');
  await warmUp([spikeCalls.predict]);
  const baseRate = Math.max(50, Math.round(capacity / 3));
  // A warm-up at the base rate first: the channel's first calls otherwise reach the server as
  // one burst when it connects, and the unloaded phase would start with a spike of its own.
  await openLoop(spikeCalls.predict, baseRate, Math.min(0.5, OPEN_SECONDS / 2));
  const unloaded = await openLoop(spikeCalls.predict, baseRate, OPEN_SECONDS);
  const spike = await openLoop(spikeCalls.predict, baseRate * 3, OPEN_SECONDS);
  for (const [phase, p] of [
    ['unloaded', unloaded],
    ['spike', spike],
  ] as const) {
    console.error(
      `spike ${phase} (${p.rate_per_s}/s): ${p.ok} ok, ${p.shed} shed, ${p.other_errors} other, p99 ${p.p99_us} us (load ${p.load_average})`,
    );
  }
  spikeCalls.close();
  await stop(shedding.child);
  return { unloaded, spike };
}

const smallResult = SECTIONS.has('small') ? await smallSection() : undefined;
const largeResult = SECTIONS.has('large') ? await largeSection() : undefined;
const needCapacity = SECTIONS.has('tuner') || SECTIONS.has('spike');
const capacity = needCapacity ? await capacityOf(smallResult?.table) : 0;
const tunerResult = SECTIONS.has('tuner') ? await tunerSection(capacity) : undefined;
const spikeResult = SECTIONS.has('spike') ? await spikeSection(capacity) : undefined;
const cpu = process.cpuUsage(cpuStart);

const minOf = (values: (number | null | undefined)[] | undefined) =>
  values && values.length > 0 ? Math.min(...values.map((v) => v ?? 0)) : null;
const smallTable = smallResult?.table;
const targets = {
  min_small_batched_vs_bare: minOf(smallTable?.map((r) => r['batched/bare'])),
  min_small_typed_vs_bare: minOf(smallTable?.map((r) => r['typed/bare'])),
  min_small_raw_vs_bare: minOf(smallTable?.map((r) => r['raw/bare'])),
  min_traced_vs_untraced: minOf(smallTable?.map((r) => r['traced/batched'])),
  max_traced_cpu_cost: smallTable ? Math.max(...smallTable.map((r) => r['cpu traced/batched'] ?? 0)) : null,
  min_large_vs_limit: minOf(largeResult?.table.map((r) => r['batched/limit'])),
  min_tuned_vs_best_fixed: minOf(tunerResult?.table.map((r) => r['tuned/best fixed'])),
  tuned_objective_met: tunerResult ? tunerResult.table.every((r) => r.objective_met) : null,
  spike_p99_vs_unloaded: spikeResult ? ratio(spikeResult.spike.p99_us, spikeResult.unloaded.p99_us) : null,
  spike_unloaded_refused: spikeResult ? spikeResult.unloaded.shed + spikeResult.unloaded.other_errors : null,
  spike_refusals_only_resource_exhausted: spikeResult ? spikeResult.spike.other_errors === 0 : null,
};
console.log(
  `Ballast inference benchmark (${BACKEND}; ${SHORT ? 'SHORT smoke run' : 'full'}, ${WINDOW_MS} ms windows, sections ${[...SECTIONS].join(',')}; started ${startedAt}, load average ${loadBefore.map((l) => l.toFixed(2)).join(' ')})`,
);
if (smallResult) {
  console.log(
    `1. small model ${FEATURES} -> ${SMALL.join(' -> ')} -> 1, calls/s (run by ${JSON.stringify(smallResult.engines)}; tracing: ${smallResult.spansExported} OTLP exports; every figure the median of ${ROUNDS} windows in alternating order)`,
  );
  console.table(smallResult.table);
}
if (largeResult) {
  console.log(
    `2. compute-bound model ${FEATURES} -> ${LARGE.join(' -> ')} -> 1 (run by ${largeResult.engine})`,
    largeResult.compute,
  );
  console.table(largeResult.table);
}
if (tunerResult) {
  console.log(
    `3. queue delay tuned from a p99 objective of ${OBJECTIVE_MS} ms against fixed delays (open loop, capacity ${capacity}/s)`,
  );
  console.table(tunerResult.table);
}
if (spikeResult) console.log(`4. 3x spike (base rate capacity/3, capacity ${capacity}/s)`, spikeResult);
console.log('targets', targets);
console.log(
  `load generator CPU: user ${(cpu.user / 1e6).toFixed(1)}s, system ${(cpu.system / 1e6).toFixed(1)}s; load average now ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}`,
);
const out = writeBenchResult(here, RESULT, {
  backend: BACKEND,
  short: SHORT,
  windowMs: WINDOW_MS,
  serverWarmupMs: SERVER_WARMUP_MS,
  openSeconds: OPEN_SECONDS,
  rounds: ROUNDS,
  concurrency: CONCURRENCY,
  sections: [...SECTIONS],
  startedAt,
  // The machine's load average (1, 5, 15 min) before and after; each row has its own 1-minute one.
  loadAverage: { before: loadBefore, after: loadavg() },
  small: smallResult && {
    model: { features: FEATURES, hidden: SMALL },
    rows: smallResult.rows,
    table: smallResult.table,
    spansExported: smallResult.spansExported,
    engines: smallResult.engines,
  },
  large: largeResult && { model: { features: FEATURES, hidden: LARGE }, ...largeResult },
  tuner: tunerResult,
  spike: spikeResult,
  capacity,
  targets,
  loadGeneratorCpu: cpu,
});
console.log(`wrote ${out}`);
