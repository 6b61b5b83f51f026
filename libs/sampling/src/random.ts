/**
 * A seeded uniform generator in [0, 1) (mulberry32): small, fast and the same everywhere,
 * for samples and synthetic data that must come out the same on every run.
 */
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

/** Seeded standard normal draws (Box–Muller over seededRandom, one draw per pair of uniforms). */
export function seededNormal(seed: number): () => number {
  const uniform = seededRandom(seed);
  return () => {
    // 1 - u: in (0, 1], so the logarithm is finite.
    const u = 1 - uniform();
    const v = uniform();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  };
}
