import { type ChildProcess, fork } from 'node:child_process';
import { once } from 'node:events';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { InferenceService } from '@ballast/contracts/ballast/inference/v1/inference_pb.js';
import { createClient, RpcError } from '@ballast/grpc-kit';
import {
  BENCH_WINDOW_MS,
  type LoadPoint,
  measureLoad,
  quantile,
  writeBenchResult,
} from '@ballast/grpc-kit/testing';
import { selectBackend } from '@ballast/ml';
import { status } from '@grpc/grpc-js';
import * as tf from '@tensorflow/tfjs';
import { benchModel, FEATURES, HIDDEN, ROW } from './model.js';

/**
 * `npm run bench`: Ballast Predict (a) with dynamic batching, (b) with batching off
 * (max_batch_size 1), (c) the transport limit: a bare grpc-js server answering Predict with a
 * response of the same size, (d) the compute limit: batched model.predict in process.
 * Closed loop at each concurrency, then open loop at fixed rates (latency measured from each
 * request's scheduled start, so a slow server cannot hide queueing) and a 3x spike. The
 * servers run as child processes; this process is the load generator; all share the cores.
 */
const here = dirname(fileURLToPath(import.meta.url));
const CONCURRENCY = (process.env.BENCH_CONCURRENCY ?? '1,4,16,64,256').split(',').map(Number);
const BACKEND = process.env.BALLAST_TF_BACKEND ?? 'wasm';

async function startServer(
  mode: string,
  env: Record<string, string> = {},
): Promise<{ child: ChildProcess; port: number }> {
  const child = fork(join(here, 'server-process.js'), [mode], {
    stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
    env: { ...process.env, BALLAST_TF_BACKEND: BACKEND, ...env },
  });
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  for await (const line of lines) {
    if (line.startsWith('{')) return { child, port: (JSON.parse(line) as { port: number }).port };
  }
  throw new Error(`${mode} server exited before listening`);
}

async function stop(child: ChildProcess) {
  const exited = once(child, 'exit');
  child.kill('SIGKILL');
  await exited;
}

const request = { model: 'bench', rows: [{ inputs: { features: { values: ROW } } }] };

async function closedLoop(
  label: string,
  port: number,
  model: string,
): Promise<(LoadPoint & { errors: number })[]> {
  const client = createClient(InferenceService, {
    address: `127.0.0.1:${port}`,
    deadlineMs: 30_000,
    retry: false,
  });
  const rows: (LoadPoint & { errors: number })[] = [];
  let errors = 0;
  const call = () =>
    client.predict({ ...request, model }).catch(() => {
      errors++;
    });
  for (const concurrency of CONCURRENCY) {
    errors = 0;
    const point = await measureLoad(call, concurrency);
    rows.push({ ...point, errors });
    console.error(`${label} c=${concurrency}: ${point.throughput_per_s}/s p99 ${point.p99_us} us`);
  }
  client.close();
  return rows;
}

interface OpenPoint {
  rate_per_s: number;
  sent: number;
  ok: number;
  shed: number;
  other_errors: number;
  p50_us: number;
  p90_us: number;
  p99_us: number;
}

/** Open loop: requests start on a fixed schedule whatever the server does (bounded to 4096 in flight). */
async function openLoop(port: number, rate: number, seconds: number, timeoutMs = 1_000): Promise<OpenPoint> {
  const client = createClient(InferenceService, {
    address: `127.0.0.1:${port}`,
    deadlineMs: timeoutMs,
    retry: false,
  });
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
      client
        .predict(request)
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
  client.close();
  latencies.sort((a, b) => a - b);
  return {
    rate_per_s: rate,
    sent: total,
    ok,
    shed,
    other_errors: other,
    p50_us: Math.round(quantile(latencies, 0.5)),
    p90_us: Math.round(quantile(latencies, 0.9)),
    p99_us: Math.round(quantile(latencies, 0.99)),
  };
}

/** In-process batched model.predict on the same backend: rows per second at each batch size. */
async function computeLimit() {
  await selectBackend(BACKEND === 'auto' ? 'wasm' : (BACKEND as 'wasm'));
  const model = benchModel();
  const rows = [];
  for (const batch of [1, 16, 64]) {
    const data = new Float32Array(batch * FEATURES).fill(0.5);
    const run = () =>
      tf.tidy(() => (model.predict(tf.tensor2d(data, [batch, FEATURES])) as tf.Tensor).dataSync());
    for (let i = 0; i < 50; i++) run();
    const started = performance.now();
    let calls = 0;
    while (performance.now() - started < Math.min(BENCH_WINDOW_MS, 3_000)) {
      run();
      calls++;
    }
    const seconds = (performance.now() - started) / 1000;
    rows.push({
      batch_size: batch,
      calls_per_s: Math.round(calls / seconds),
      rows_per_s: Math.round((calls * batch) / seconds),
    });
  }
  model.dispose();
  return rows;
}

const at = (rows: LoadPoint[], c: number) => rows.find((r) => r.concurrency === c);
const cpuStart = process.cpuUsage();
const loadBefore = loadavg();
const compute = await computeLimit();
console.error('compute limit', compute);

const bare = await startServer('bare');
const transport = await closedLoop('bare grpc-js', bare.port, 'bench');
await stop(bare.child);

const ballast = await startServer('ballast');
const batched = await closedLoop('ballast batched', ballast.port, 'bench');
const unbatched = await closedLoop('ballast batching off', ballast.port, 'bench-nobatch');
// How long the server's gRPC event loop stalled over the whole run (models run on its worker thread).
ballast.child.send('stats');
const [serverLoop] = (await once(ballast.child, 'message')) as [{ p99Ms: number; maxMs: number }];
await stop(ballast.child);

// Open loop and a 3x spike on a server that sheds what it cannot serve in time.
const shedding = await startServer('ballast', {
  BENCH_DEFAULT_TIMEOUT_US: process.env.BENCH_DEFAULT_TIMEOUT_US ?? '5000',
});
const openSeconds = Math.max(2, BENCH_WINDOW_MS / 1000);
const baseRate = Number(
  process.env.BENCH_BASE_RATE ?? Math.round((at(batched, 64)?.throughput_per_s ?? 2000) / 2),
);
const open: OpenPoint[] = [];
for (const rate of [baseRate / 2, baseRate, baseRate * 2]) {
  open.push(await openLoop(shedding.port, rate, openSeconds));
  console.error('open loop', open.at(-1));
}
const unloaded = await openLoop(shedding.port, baseRate, openSeconds);
const spike = await openLoop(shedding.port, baseRate * 3, openSeconds);
await stop(shedding.child);
const cpu = process.cpuUsage(cpuStart);

const ratio = (a: number | undefined, b: number | undefined) =>
  a && b ? Math.round((a / b) * 100) / 100 : null;
const table = CONCURRENCY.map((c) => ({
  concurrency: c,
  batched_per_s: at(batched, c)?.throughput_per_s,
  batched_p99_us: at(batched, c)?.p99_us,
  off_per_s: at(unbatched, c)?.throughput_per_s,
  off_p99_us: at(unbatched, c)?.p99_us,
  bare_per_s: at(transport, c)?.throughput_per_s,
  bare_p99_us: at(transport, c)?.p99_us,
  batched_vs_bare: ratio(at(batched, c)?.throughput_per_s, at(transport, c)?.throughput_per_s),
}));
const targets = {
  batching_vs_off_at_64: ratio(at(batched, 64)?.throughput_per_s, at(unbatched, 64)?.throughput_per_s),
  min_batched_vs_bare: Math.min(...table.map((r) => r.batched_vs_bare ?? 0)),
  p99_at_16_vs_bare: ratio(at(batched, 16)?.p99_us, at(transport, 16)?.p99_us),
  spike_p99_vs_unloaded: ratio(spike.p99_us, unloaded.p99_us),
};
console.log(
  `Ballast inference benchmark (${BACKEND}, model ${FEATURES} -> ${HIDDEN.join(' -> ')} -> 1, one row per request)`,
);
console.table(table);
console.table(open);
console.log('3x spike', { unloaded, spike });
console.log('targets', targets);
console.log('server event loop delay (ms)', serverLoop);
console.log(
  `load generator CPU: user ${(cpu.user / 1e6).toFixed(1)}s, system ${(cpu.system / 1e6).toFixed(1)}s`,
);
const out = writeBenchResult(here, 'inference', {
  backend: BACKEND,
  model: { features: FEATURES, hidden: HIDDEN },
  windowMs: BENCH_WINDOW_MS,
  compute,
  closedLoop: { batched, unbatched, transport },
  table,
  openLoop: open,
  spike: { unloaded, spike },
  targets,
  loadGeneratorCpu: cpu,
  // The machine's load average (1, 5, 15 min) before and after: other work on the cores skews everything.
  loadAverage: { before: loadBefore, after: loadavg() },
  serverEventLoopDelayMs: serverLoop,
});
console.log(`wrote ${out}`);
