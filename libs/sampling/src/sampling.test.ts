import { describe, expect, it } from 'vitest';
import { fnv1a, mergeSamples, offer, reservoirSlot, seededNormal, seededRandom } from './index.js';

describe('seededRandom (mulberry32)', () => {
  it("gives mulberry32's sequence: the samples and data sets seeded before this lib stay the same", () => {
    const next = seededRandom(0x5eed);
    expect([next(), next(), next()]).toEqual([0.7100320369936526, 0.286336648510769, 0.9519026265479624]);
  });

  it('repeats itself for a seed, differs between seeds, and is uniform in [0, 1)', () => {
    const draw = (seed: number, n: number) => Array.from({ length: n }, seededRandom(seed));
    expect(draw(7, 100)).toEqual(draw(7, 100));
    expect(draw(7, 100)).not.toEqual(draw(8, 100));
    const values = draw(42, 100_000);
    expect(values.every((v) => v >= 0 && v < 1)).toBe(true);
    const tenths = new Array<number>(10).fill(0);
    for (const v of values) tenths[Math.floor(v * 10)] = (tenths[Math.floor(v * 10)] ?? 0) + 1;
    // 10,000 expected per tenth (sd about 95).
    for (const count of tenths) expect(Math.abs(count - 10_000)).toBeLessThan(500);
  });
});

describe('seededNormal (Box–Muller)', () => {
  it('repeats itself for a seed and has mean 0 and standard deviation 1', () => {
    const draw = (seed: number, n: number) => Array.from({ length: n }, seededNormal(seed));
    expect(draw(3, 50)).toEqual(draw(3, 50));
    const values = draw(11, 100_000);
    expect(values.every(Number.isFinite)).toBe(true);
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    const sd = Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length);
    // Standard errors: about 0.003 for the mean, 0.002 for the standard deviation.
    expect(Math.abs(mean)).toBeLessThan(0.02);
    expect(Math.abs(sd - 1)).toBeLessThan(0.02);
    // About 95.4% within two standard deviations.
    const within = values.filter((v) => Math.abs(v) < 2).length / values.length;
    expect(Math.abs(within - 0.9545)).toBeLessThan(0.005);
  });
});

describe('fnv1a', () => {
  it("matches FNV-1a's published 32-bit test vectors", () => {
    expect(fnv1a('')).toBe(0x811c9dc5);
    expect(fnv1a('a')).toBe(0xe40c292c);
    expect(fnv1a('foobar')).toBe(0xbf9cf968);
  });
});

describe('reservoirs (Algorithm R)', () => {
  it('keeps the first `size` items in order, then each item with probability size / (seen + 1)', () => {
    const random = seededRandom(1);
    expect([0, 1, 2].map((seen) => reservoirSlot(seen, 3, random))).toEqual([0, 1, 2]);
    // 20,000 streams of 100 items into 10 slots: each item ends up kept in 2,000 of them.
    const kept = new Array<number>(100).fill(0);
    for (let trial = 0; trial < 20_000; trial++) {
      const sample: number[] = [];
      for (let i = 0; i < 100; i++) offer(sample, i, i, random, 10);
      expect(sample).toHaveLength(10);
      for (const i of sample) kept[i] = (kept[i] ?? 0) + 1;
    }
    // sd about 42: the first items are kept no more often than the last ones.
    for (const count of kept) expect(Math.abs(count - 2_000)).toBeLessThan(250);
  });

  it('merges two reservoirs drawing from each in proportion to what each stream saw', () => {
    const random = seededRandom(7);
    const small: number[] = [];
    for (let i = 0; i < 3_000; i++) offer(small, i, 1, random, 1_000);
    const big: number[] = [];
    for (let i = 0; i < 9_000; i++) offer(big, i, 2, random, 1_000);
    const merged = mergeSamples(small, 3_000, big, 9_000, seededRandom(8), 1_000);
    expect(merged).toHaveLength(1_000);
    const fromSmall = merged.filter((v) => v === 1).length;
    // 250 expected (a hypergeometric draw: sd about 12).
    expect(fromSmall).toBeGreaterThan(200);
    expect(fromSmall).toBeLessThan(300);
    // Fewer values than the size in all: every one of them.
    expect(mergeSamples([1, 2], 2, [3], 1, random, 1_000)).toEqual([1, 2, 3]);
  });
});
