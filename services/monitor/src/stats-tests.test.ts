import { seededRandom } from '@ballast/sampling';
import { describe, expect, it } from 'vitest';
import { binPositions, numericBaseline } from './histogram.js';
import {
  chiSquare,
  chiSquareSf,
  jensenShannon,
  kolmogorovSf,
  ksBinned,
  ksSamples,
  normalSf,
  psi,
  twoProportionZ,
  wasserstein,
} from './stats-tests.js';
import { normalSample, scipyReference } from './test-support.js';

interface Answer {
  statistic?: number;
  pValue?: number;
  value?: number;
}

const TOLERANCE = 1e-6;

function expectClose(actual: number, expected: number | undefined, tolerance = TOLERANCE): void {
  expect(expected).toBeTypeOf('number');
  expect(Math.abs(actual - (expected as number))).toBeLessThanOrEqual(tolerance);
}

/** Counts of `values` over the baseline's window bins (below, each bin, above). */
function countsOver(edges: number[], values: number[]): number[] {
  const counts = new Array<number>(edges.length + 1).fill(0);
  for (const v of values) {
    let bin = 0;
    if (v > (edges[edges.length - 1] as number)) bin = edges.length;
    else if (v >= (edges[0] as number)) {
      bin = edges.findIndex((e, i) => i > 0 && (v < e || (i === edges.length - 1 && v === e)));
    }
    counts[bin] = (counts[bin] as number) + 1;
  }
  return counts;
}

describe('statistics agree with scipy.stats on the same samples', () => {
  const rounded = (xs: number[]) => xs.map((x) => Math.round(x * 4) / 4);
  const samplePairs: [string, number[], number[]][] = [
    ['unequal sizes, same distribution', normalSample(1, 40), normalSample(2, 55)],
    ['unequal sizes, shifted', normalSample(3, 200), normalSample(4, 300, 0.3)],
    ['equal sizes', normalSample(5, 120), normalSample(6, 120, 0.2, 1.3)],
    ['ties', rounded(normalSample(7, 400)), rounded(normalSample(8, 350, 0.1))],
    ['small and very different', normalSample(9, 8), normalSample(10, 13, 2)],
  ];
  const baseline = numericBaseline(normalSample(11, 2000), 12);
  const shifted = countsOver(baseline.edges, normalSample(12, 700, 0.25));
  const stable = countsOver(baseline.edges, normalSample(13, 900));
  const reference = [0, ...baseline.counts, 0];
  const categories = { expected: [50, 120, 0, 30, 300], observed: [70, 100, 5, 40, 260] };
  const gammaPoints: [number, number][] = [
    [0.5, 1],
    [3.2, 2],
    [10, 5],
    [40, 30],
    [120, 99],
    [1e-3, 4],
    [2.5, 7],
  ];
  const kolmogorovPoints = [0.05, 0.3, 0.6, 0.83, 0.99, 1.0, 1.2, 1.7, 2.5, 4];
  const binary = { k1: 340, n1: 900, k2: 210, n2: 500 };

  const cases = [
    ...samplePairs.map(([, a, b]) => ({ kind: 'ks_samples', a, b, method: 'exact' })),
    { kind: 'ks_bins', reference, current: shifted, method: 'exact' },
    { kind: 'ks_bins', reference: stable, current: shifted, method: 'exact' },
    ...kolmogorovPoints.map((x) => ({ kind: 'kstwobign_sf', x })),
    { kind: 'chisquare', ...categories },
    { kind: 'chisquare', expected: reference, observed: shifted },
    { kind: 'jensenshannon', reference, current: shifted },
    { kind: 'jensenshannon', reference, current: stable },
    { kind: 'wasserstein', positions: binPositions(baseline), reference, current: shifted },
    { kind: 'psi', reference, current: shifted },
    { kind: 'ztest', ...binary },
    ...gammaPoints.map(([x, df]) => ({ kind: 'chi2_sf', x, df })),
    ...[-2, -0.3, 0, 0.7, 1.96, 3.5, 6].map((x) => ({ kind: 'norm_sf', x })),
  ];
  const answers = scipyReference<Answer>(cases);
  let next = 0;
  const take = () => answers[next++] as Answer;

  it('two-sample KS on raw samples: statistic and exact p-value', () => {
    for (const [name, a, b] of samplePairs) {
      const mine = ksSamples(a, b);
      const theirs = take();
      expect(mine.method, name).toBe('exact');
      expectClose(mine.statistic, theirs.statistic);
      expectClose(mine.pValue, theirs.pValue);
    }
  });

  it('two-sample KS on fixed-bin counts equals ks_2samp on the binned samples', () => {
    for (const [ref, cur] of [
      [reference, shifted],
      [stable, shifted],
    ] as const) {
      const mine = ksBinned(ref, cur);
      const theirs = take();
      expectClose(mine.statistic, theirs.statistic);
      expectClose(mine.pValue, theirs.pValue);
    }
    // The shifted window is told apart from the baseline.
    expect(ksBinned(reference, shifted).pValue).toBeLessThan(0.05);
  });

  it("the Kolmogorov distribution's survival function (the asymptotic p-value)", () => {
    for (const x of kolmogorovPoints) expectClose(kolmogorovSf(x), take().value);
  });

  it('chi-squared goodness of fit, leaving out categories the reference never saw', () => {
    const one = chiSquare(categories.expected, categories.observed);
    const theirs = take();
    expectClose(one.statistic, theirs.statistic);
    expectClose(one.pValue, theirs.pValue);
    expect(one.df).toBe(3);
    const two = chiSquare(reference, shifted);
    const theirs2 = take();
    expectClose(two.statistic, theirs2.statistic);
    expectClose(two.pValue, theirs2.pValue);
  });

  it('Jensen–Shannon distance, Wasserstein distance and PSI on binned data', () => {
    const js = jensenShannon(reference, shifted);
    expectClose(js, take().value);
    expectClose(jensenShannon(reference, stable), take().value);
    expectClose(wasserstein(binPositions(baseline), reference, shifted), take().value);
    const p = psi(reference, shifted);
    expectClose(p, take().value);
    expect(p).toBeGreaterThan(0.02);
    expect(psi(reference, reference)).toBe(0);
  });

  it('two-proportion z-test', () => {
    const mine = twoProportionZ(binary.k1, binary.n1, binary.k2, binary.n2);
    const theirs = take();
    expectClose(mine.statistic, theirs.statistic);
    expectClose(mine.pValue, theirs.pValue);
  });

  it('the chi-squared and normal survival functions', () => {
    for (const [x, df] of gammaPoints) expectClose(chiSquareSf(x, df), take().value);
    for (const x of [-2, -0.3, 0, 0.7, 1.96, 3.5, 6]) expectClose(normalSf(x), take().value);
    expect(next).toBe(answers.length);
  });
});

describe('KS beyond the exact range', () => {
  it('uses the asymptotic distribution, near scipy method="asymp"', () => {
    const a = normalSample(21, 3000);
    const b = normalSample(22, 2500, 0.05);
    const mine = ksSamples(a, b);
    expect(mine.method).toBe('asymp');
    const [theirs] = scipyReference<Answer>([{ kind: 'ks_samples', a, b, method: 'asymp' }]);
    // The statistic is exact; scipy's asymptotic p-value uses the finite-n Kolmogorov
    // distribution at round(n1 n2 / (n1 + n2)), this one its limit: close, not equal.
    expectClose(mine.statistic, theirs?.statistic);
    expect(Math.abs(mine.pValue - (theirs?.pValue as number))).toBeLessThan(0.01);
  });

  it('is symmetric and ignores NaN', () => {
    const u = seededRandom(5);
    const a = Array.from({ length: 60 }, () => u());
    const b = Array.from({ length: 45 }, () => u() + 0.1);
    const ab = ksSamples(a, b);
    expect(ksSamples(b, a)).toEqual(ab);
    expect(ksSamples([...a, Number.NaN], b)).toEqual(ab);
  });
});
