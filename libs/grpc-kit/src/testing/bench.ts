import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

/**
 * Measurement for `npm run bench`, the way perf_analyzer does it: a warm-up, then windows
 * (5 s by default) until three in a row agree within 10% on throughput, at most six. Only
 * the last three windows are reported.
 */

export interface LoadPoint {
  concurrency: number;
  throughput_per_s: number;
  p50_us: number;
  p90_us: number;
  p95_us: number;
  p99_us: number;
  windows: number;
  stable: boolean;
}

export const BENCH_WINDOW_MS = Number(process.env.BENCH_WINDOW_MS ?? 5_000);
const MAX_WINDOWS = 6;

interface Window {
  calls: number;
  seconds: number;
  latenciesUs: number[];
}

export function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
}

/** Closed loop: `concurrency` callers, each starting its next call when the last returns. */
async function window(call: () => Promise<unknown>, concurrency: number, ms: number): Promise<Window> {
  const latenciesUs: number[] = [];
  const started = performance.now();
  const end = started + ms;
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

export async function measureLoad(
  call: () => Promise<unknown>,
  concurrency: number,
  windowMs = BENCH_WINDOW_MS,
): Promise<LoadPoint> {
  await window(call, concurrency, Math.min(2_000, windowMs));
  const windows: Window[] = [];
  let stable = false;
  while (windows.length < MAX_WINDOWS && !stable) {
    windows.push(await window(call, concurrency, windowMs));
    const last = windows.slice(-3).map((w) => w.calls / w.seconds);
    stable = last.length === 3 && Math.max(...last) <= Math.min(...last) * 1.1;
  }
  const kept = windows.slice(-3);
  const latencies = kept.flatMap((w) => w.latenciesUs).sort((a, b) => a - b);
  const throughput = kept.reduce((sum, w) => sum + w.calls, 0) / kept.reduce((sum, w) => sum + w.seconds, 0);
  return {
    concurrency,
    throughput_per_s: Math.round(throughput),
    p50_us: Math.round(quantile(latencies, 0.5)),
    p90_us: Math.round(quantile(latencies, 0.9)),
    p95_us: Math.round(quantile(latencies, 0.95)),
    p99_us: Math.round(quantile(latencies, 0.99)),
    windows: windows.length,
    stable,
  };
}

/** Where results go: test/bench/results/<name>.json at the repository root (gitignored). */
export function writeBenchResult(fromDir: string, name: string, result: object): string {
  let root = resolve(fromDir);
  while (!isRepoRoot(root) && dirname(root) !== root) root = dirname(root);
  const out = join(root, 'test', 'bench', 'results', `${name}.json`);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(
    out,
    `${JSON.stringify({ benchmark: name, date: new Date().toISOString(), node: process.version, ...result }, null, 2)}\n`,
  );
  return out;
}

function isRepoRoot(dir: string): boolean {
  return existsSync(join(dir, 'nx.json'));
}
