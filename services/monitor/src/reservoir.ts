/**
 * Bounded uniform samples of raw values (a window's, a baseline's), for statistics bins
 * cannot give exactly (two-sample KS on raw values). Seeded, so the same records absorbed in
 * the same order keep the same sample on every replica and after a restart.
 */

/** Values kept per window, feature and segment, and per baseline feature and segment. */
export const RESERVOIR_SIZE = 1_000;

/** A 32-bit seed from a key (FNV-1a). */
export function seedOf(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** A seeded uniform generator in [0, 1) (mulberry32). */
export function seededUniform(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Algorithm R: offers the `seen`-th value (0-based) of a stream; afterwards `sample` is a
 * uniform sample of min(seen + 1, size) of the values offered so far.
 */
export function offer(
  sample: number[],
  seen: number,
  value: number,
  random: () => number,
  size = RESERVOIR_SIZE,
): void {
  if (sample.length < size) {
    sample.push(value);
    return;
  }
  const j = Math.floor(random() * (seen + 1));
  if (j < size) sample[j] = value;
}

/**
 * A uniform sample of two streams together from a uniform sample of each (`a` of `na`
 * values, `b` of `nb`): each draw takes from a stream with the chance that the union's next
 * value comes from it (a hypergeometric split), so the merge is as if one reservoir had seen
 * both.
 */
export function mergeSamples(
  a: readonly number[],
  na: number,
  b: readonly number[],
  nb: number,
  random: () => number,
  size = RESERVOIR_SIZE,
): number[] {
  if (na + nb <= size) return [...a, ...b];
  const pools: [number[], number[]] = [[...a], [...b]];
  const left = [na, nb];
  const out: number[] = [];
  while (out.length < size) {
    const from = random() * ((left[0] as number) + (left[1] as number)) < (left[0] as number) ? 0 : 1;
    const pool = pools[from];
    const i = Math.floor(random() * pool.length);
    out.push(pool[i] as number);
    pool[i] = pool[pool.length - 1] as number;
    pool.pop();
    left[from] = (left[from] as number) - 1;
  }
  return out;
}

/** A reservoir of `values` (non-finite ones left out), seeded by `key`. */
export function reservoirOf(values: readonly number[], key: string, size = RESERVOIR_SIZE): number[] {
  const random = seededUniform(seedOf(key));
  const sample: number[] = [];
  let seen = 0;
  for (const v of values) {
    if (!Number.isFinite(v)) continue;
    offer(sample, seen++, v, random, size);
  }
  return sample;
}
