import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { seededNormal } from '@ballast/sampling';

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
