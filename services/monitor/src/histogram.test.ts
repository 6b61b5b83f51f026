import { describe, expect, it } from 'vitest';
import { addValue, baselineCounts, emptyWindow, type NumericBaseline, numericBin } from './histogram.js';
import { psi } from './stats-tests.js';

describe('numeric bins', () => {
  it('puts the last edge in the closed last bin', () => {
    const edges = [0, 0.25, 0.5, 0.75, 1];
    expect(numericBin(edges, -1)).toBe(0);
    expect(numericBin(edges, 0)).toBe(1);
    expect(numericBin(edges, 0.3)).toBe(2);
    expect(numericBin(edges, 1)).toBe(4);
    expect(numericBin(edges, 1.1)).toBe(5);
  });

  it('bins a constant feature (every edge equal) where feature statistics counted it: no drift for the same constant', () => {
    // A one-hot column within its own segment: always 1 (or always 0); feature's statistics
    // give 21 equal edges and every row in the first bin.
    for (const value of [0, 1]) {
      const baseline: NumericBaseline = {
        kind: 'numeric',
        edges: new Array(21).fill(value),
        counts: [640, ...new Array(19).fill(0)],
        nulls: 0,
        mean: value,
        std: 0,
      };
      expect(numericBin(baseline.edges, value)).toBe(1);
      const window = emptyWindow(baseline);
      for (let i = 0; i < 72; i++) addValue(baseline, window, value);
      expect(psi(baselineCounts(baseline), window.counts)).toBeCloseTo(0, 9);
      // A different value is out of the baseline's range, and drifts.
      const other = emptyWindow(baseline);
      for (let i = 0; i < 72; i++) addValue(baseline, other, 1 - value);
      expect(psi(baselineCounts(baseline), other.counts)).toBeGreaterThan(1);
    }
  });
});
