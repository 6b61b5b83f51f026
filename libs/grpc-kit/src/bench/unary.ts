import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createClient } from '../client.js';
import { serve, startGrpcServer } from '../server.js';
import { EchoService, echoService } from '../testing/echo.js';

/**
 * What the kit costs per call: unary Echo round trips over loopback, client and server in
 * this one process. Measured like perf_analyzer: a warm-up, then 5-second windows until
 * three in a row agree within 10% on throughput (at most 6 windows per level).
 */
const WINDOW_MS = Number(process.env.BENCH_WINDOW_MS ?? 5_000);
const CONCURRENCY = (process.env.BENCH_CONCURRENCY ?? '1,8,32').split(',').map(Number);
const MAX_WINDOWS = 6;

interface Window {
  calls: number;
  seconds: number;
  latenciesUs: number[];
}

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
}

async function measure(call: () => Promise<unknown>, concurrency: number, ms: number): Promise<Window> {
  const latenciesUs: number[] = [];
  const end = performance.now() + ms;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        const t0 = performance.now();
        await call();
        latenciesUs.push((performance.now() - t0) * 1000);
      }
    }),
  );
  return { calls: latenciesUs.length, seconds: (performance.now() - started) / 1000, latenciesUs };
}

const log = { info: () => {}, warn: () => {}, error: () => {} };
const server = await startGrpcServer({
  services: [serve(EchoService, echoService)],
  host: '127.0.0.1',
  port: 0,
  log,
});
server.setReady(true);
const client = createClient(EchoService, { address: `127.0.0.1:${server.port}` });
const request = { message: 'x'.repeat(64) };
const call = () => client.echo(request);

const cpuStart = process.cpuUsage();
const rows = [];
for (const concurrency of CONCURRENCY) {
  await measure(call, concurrency, Math.min(2_000, WINDOW_MS));
  const windows: Window[] = [];
  let stable = false;
  while (windows.length < MAX_WINDOWS && !stable) {
    windows.push(await measure(call, concurrency, WINDOW_MS));
    const last = windows.slice(-3).map((w) => w.calls / w.seconds);
    stable = last.length === 3 && Math.max(...last) <= Math.min(...last) * 1.1;
  }
  const kept = windows.slice(-3);
  const latencies = kept.flatMap((w) => w.latenciesUs).sort((a, b) => a - b);
  const throughput = kept.reduce((sum, w) => sum + w.calls, 0) / kept.reduce((sum, w) => sum + w.seconds, 0);
  rows.push({
    concurrency,
    throughput_per_s: Math.round(throughput),
    p50_us: Math.round(quantile(latencies, 0.5)),
    p90_us: Math.round(quantile(latencies, 0.9)),
    p95_us: Math.round(quantile(latencies, 0.95)),
    p99_us: Math.round(quantile(latencies, 0.99)),
    windows: windows.length,
    stable,
  });
}
const cpu = process.cpuUsage(cpuStart);
client.close();
await server.shutdown();

console.log('grpc-kit unary Echo over loopback (client and server in one process)');
console.table(rows);
console.log(
  `process CPU (client + server): user ${(cpu.user / 1e6).toFixed(1)}s, system ${(cpu.system / 1e6).toFixed(1)}s`,
);
const out = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  '..',
  '..',
  'test',
  'bench',
  'results',
  'grpc-kit-unary.json',
);
mkdirSync(dirname(out), { recursive: true });
writeFileSync(
  out,
  `${JSON.stringify({ benchmark: 'grpc-kit-unary', date: new Date().toISOString(), node: process.version, windowMs: WINDOW_MS, cpu, rows }, null, 2)}\n`,
);
console.log(`wrote ${out}`);
