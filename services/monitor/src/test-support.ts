import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** A seeded uniform generator in [0, 1) (mulberry32), so every test draws the same samples. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Standard normal draws (Box–Muller) from a seeded generator. */
export function seededNormal(seed: number): () => number {
  const uniform = seededRandom(seed);
  return () => {
    const u = 1 - uniform();
    const v = uniform();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  };
}

export function normalSample(seed: number, n: number, mean = 0, std = 1): number[] {
  const draw = seededNormal(seed);
  return Array.from({ length: n }, () => mean + std * draw());
}

const SCIPY_SCRIPT = fileURLToPath(new URL('../src/scipy_reference.py', import.meta.url));

/** Runs Debian's python3 with scipy on `cases` (see scipy_reference.py) and returns its answers. */
export function scipyReference<T>(cases: readonly unknown[]): T[] {
  const out = execFileSync('/usr/bin/python3', [SCIPY_SCRIPT], {
    input: JSON.stringify(cases),
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  return JSON.parse(out) as T[];
}
