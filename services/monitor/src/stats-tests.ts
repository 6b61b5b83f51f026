/**
 * Two-sample statistics on counts over shared bins (a window's histogram against the
 * baseline's) and on raw samples: PSI, Jensen–Shannon distance, Kolmogorov–Smirnov with its
 * p-value, chi-squared goodness of fit, Wasserstein distance and the two-proportion z-test.
 * Exact statistics agree with scipy.stats on the same samples (stats-tests.test.ts runs
 * Debian's python3-scipy beside them).
 */

/** Proportions floor for PSI, as Evidently replaces empty bins (0 would make ln infinite). */
export const PSI_EPSILON = 1e-4;

function sum(values: ArrayLike<number>): number {
  let total = 0;
  for (let i = 0; i < values.length; i++) total += values[i] as number;
  return total;
}

function assertSameLength(a: ArrayLike<number>, b: ArrayLike<number>): void {
  if (a.length !== b.length) throw new RangeError(`bins differ: ${a.length} vs ${b.length}`);
}

/**
 * Population stability index of `current` against `reference` (counts over the same bins):
 * Σ (c - r) ln(c / r) over the bins' proportions, each floored at PSI_EPSILON.
 */
export function psi(reference: ArrayLike<number>, current: ArrayLike<number>): number {
  assertSameLength(reference, current);
  const rt = sum(reference);
  const ct = sum(current);
  if (rt === 0 || ct === 0) return 0;
  let total = 0;
  for (let i = 0; i < reference.length; i++) {
    const r = Math.max((reference[i] as number) / rt, PSI_EPSILON);
    const c = Math.max((current[i] as number) / ct, PSI_EPSILON);
    total += (c - r) * Math.log(c / r);
  }
  return total;
}

/**
 * Jensen–Shannon distance (natural log; the square root of the divergence), as
 * scipy.spatial.distance.jensenshannon: 0 for equal distributions, at most sqrt(ln 2).
 */
export function jensenShannon(reference: ArrayLike<number>, current: ArrayLike<number>): number {
  assertSameLength(reference, current);
  const rt = sum(reference);
  const ct = sum(current);
  if (rt === 0 || ct === 0) return 0;
  let divergence = 0;
  for (let i = 0; i < reference.length; i++) {
    const p = (reference[i] as number) / rt;
    const q = (current[i] as number) / ct;
    const m = (p + q) / 2;
    if (p > 0) divergence += p * Math.log(p / m);
    if (q > 0) divergence += q * Math.log(q / m);
  }
  return Math.sqrt(Math.max(divergence / 2, 0));
}

/**
 * 1-Wasserstein distance between two weighted distributions on the same sorted support
 * `positions` (e.g. bin midpoints), as scipy.stats.wasserstein_distance with weights.
 */
export function wasserstein(
  positions: ArrayLike<number>,
  reference: ArrayLike<number>,
  current: ArrayLike<number>,
): number {
  assertSameLength(positions, reference);
  assertSameLength(positions, current);
  const rt = sum(reference);
  const ct = sum(current);
  if (rt === 0 || ct === 0) return 0;
  let rc = 0;
  let cc = 0;
  let distance = 0;
  for (let i = 0; i < positions.length - 1; i++) {
    rc += (reference[i] as number) / rt;
    cc += (current[i] as number) / ct;
    distance += Math.abs(rc - cc) * ((positions[i + 1] as number) - (positions[i] as number));
  }
  return distance;
}

export interface TestResult {
  statistic: number;
  pValue: number;
}

export interface KsResult extends TestResult {
  /** How the p-value was found: exact lattice-path count, or the asymptotic distribution. */
  method: 'exact' | 'asymp';
}

/** Above this many lattice cells (n1 × n2) the KS p-value is asymptotic. */
export const KS_EXACT_MAX_CELLS = 4_000_000;

/**
 * Two-sample Kolmogorov–Smirnov on counts over the same ordered bins: the statistic is the
 * largest gap between the two empirical CDFs at the bins' edges, which is exactly scipy's
 * ks_2samp on samples that take the bins' values (ties included).
 */
export function ksBinned(reference: ArrayLike<number>, current: ArrayLike<number>): KsResult {
  assertSameLength(reference, current);
  const n1 = Math.round(sum(reference));
  const n2 = Math.round(sum(current));
  if (n1 === 0 || n2 === 0) return { statistic: 0, pValue: 1, method: 'exact' };
  let rc = 0;
  let cc = 0;
  let d = 0;
  for (let i = 0; i < reference.length; i++) {
    rc += reference[i] as number;
    cc += current[i] as number;
    d = Math.max(d, Math.abs(rc / n1 - cc / n2));
  }
  return ksPValue(d, n1, n2);
}

/** Two-sample Kolmogorov–Smirnov on raw samples (NaN are left out), as scipy.stats.ks_2samp. */
export function ksSamples(a: ArrayLike<number>, b: ArrayLike<number>): KsResult {
  const x = Float64Array.from(a as ArrayLike<number>)
    .filter((v) => !Number.isNaN(v))
    .sort();
  const y = Float64Array.from(b as ArrayLike<number>)
    .filter((v) => !Number.isNaN(v))
    .sort();
  const n1 = x.length;
  const n2 = y.length;
  if (n1 === 0 || n2 === 0) return { statistic: 0, pValue: 1, method: 'exact' };
  let i = 0;
  let j = 0;
  let d = 0;
  while (i < n1 && j < n2) {
    const v = Math.min(x[i] as number, y[j] as number);
    while (i < n1 && x[i] === v) i++;
    while (j < n2 && y[j] === v) j++;
    d = Math.max(d, Math.abs(i / n1 - j / n2));
  }
  return ksPValue(d, n1, n2);
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

/**
 * P(D ≥ d) for the two-sided two-sample statistic. Exact (as scipy's method='exact') while
 * n1 × n2 ≤ KS_EXACT_MAX_CELLS: the share of monotone lattice paths from (0, 0) to (n1, n2)
 * that leave the band |x/n1 − y/n2| < d, found by walking a uniformly random path cell by
 * cell (probabilities, never binomial counts, so nothing overflows). Beyond that, the
 * Kolmogorov limit distribution at sqrt(n1 n2 / (n1 + n2)) · d.
 */
export function ksPValue(d: number, n1: number, n2: number): KsResult {
  if (n1 * n2 > KS_EXACT_MAX_CELLS) {
    const en = (n1 * n2) / (n1 + n2);
    return { statistic: d, pValue: kolmogorovSf(Math.sqrt(en) * d), method: 'asymp' };
  }
  const g = gcd(n1, n2);
  const lcm = (n1 / g) * n2;
  // As scipy: the statistic is a multiple of 1/lcm; round away float noise first.
  const h = Math.round(d * lcm);
  const statistic = h / lcm;
  if (h === 0) return { statistic, pValue: 1, method: 'exact' };
  // Inside the band: |n2·x − n1·y| < h·g (the band in integers).
  const limit = h * g;
  const m = n1;
  const n = n2;
  let column = new Float64Array(n + 1);
  let next = new Float64Array(n + 1);
  column[0] = 1;
  for (let y = 1; y <= n; y++) {
    column[y] = Math.abs(-m * y) < limit ? ((column[y - 1] as number) * (n - y + 1)) / (m + n - y + 1) : 0;
  }
  // Only the cells inside the band can be reached: per column x, y in [lo, hi]. Walking just
  // those makes a small statistic (a narrow band, the common case) cost far less than n1·n2.
  let prevLo = 0;
  let prevHi = n;
  for (let x = 1; x <= m; x++) {
    const lo = Math.max(0, Math.floor((n * x - limit) / m) + 1);
    const hi = Math.min(n, Math.ceil((n * x + limit) / m) - 1);
    for (let y = lo; y <= hi; y++) {
      // Arriving from (x-1, y) by an x-step, or from (x, y-1) by a y-step.
      const before = y >= prevLo && y <= prevHi ? (column[y] as number) : 0;
      const rest = m - x + 1 + (n - y);
      let p = (before * (m - x + 1)) / rest;
      if (y > lo) p += ((next[y - 1] as number) * (n - y + 1)) / (m - x + (n - y + 1));
      next[y] = p;
    }
    [column, next] = [next, column];
    prevLo = lo;
    prevHi = hi;
  }
  const inside = n >= prevLo && n <= prevHi ? (column[n] as number) : 0;
  return { statistic, pValue: Math.min(1, Math.max(0, 1 - inside)), method: 'exact' };
}

/** Survival function of the Kolmogorov distribution (scipy.stats.kstwobign.sf). */
export function kolmogorovSf(x: number): number {
  if (x <= 0) return 1;
  if (x < 1) {
    // cdf = sqrt(2π)/x Σ exp(−(2k−1)²π²/(8x²)), fast for small x.
    let cdf = 0;
    for (let k = 1; k <= 20; k++) {
      cdf += Math.exp((-((2 * k - 1) ** 2) * Math.PI * Math.PI) / (8 * x * x));
    }
    return 1 - (Math.sqrt(2 * Math.PI) / x) * cdf;
  }
  let sf = 0;
  for (let k = 1; k <= 100; k++) {
    const term = Math.exp(-2 * k * k * x * x);
    sf += (k % 2 === 1 ? 2 : -2) * term;
    if (term < 1e-17) break;
  }
  return Math.min(1, Math.max(0, sf));
}

/**
 * Chi-squared goodness of fit of `observed` counts to the proportions of `expected` (scaled
 * to the observed total), as scipy.stats.chisquare. Bins the reference never saw carry no
 * expectation and are left out (they are reported as unseen categories instead).
 */
export function chiSquare(
  expected: ArrayLike<number>,
  observed: ArrayLike<number>,
): TestResult & { df: number } {
  assertSameLength(expected, observed);
  const et = sum(expected);
  let ot = 0;
  for (let i = 0; i < expected.length; i++) if ((expected[i] as number) > 0) ot += observed[i] as number;
  if (et === 0 || ot === 0) return { statistic: 0, pValue: 1, df: 0 };
  let statistic = 0;
  let used = 0;
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i] as number;
    if (e <= 0) continue;
    const scaled = (e / et) * ot;
    const diff = (observed[i] as number) - scaled;
    statistic += (diff * diff) / scaled;
    used++;
  }
  const df = used - 1;
  if (df <= 0) return { statistic, pValue: 1, df: 0 };
  return { statistic, pValue: chiSquareSf(statistic, df), df };
}

/**
 * Two-proportion z-test (pooled), two-sided: do two samples hold a category at the same rate?
 * `k1` of `n1` in the reference, `k2` of `n2` in the current window.
 */
export function twoProportionZ(k1: number, n1: number, k2: number, n2: number): TestResult {
  if (n1 === 0 || n2 === 0) return { statistic: 0, pValue: 1 };
  const pooled = (k1 + k2) / (n1 + n2);
  const se = Math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2));
  if (se === 0) return { statistic: 0, pValue: 1 };
  const z = (k1 / n1 - k2 / n2) / se;
  return { statistic: z, pValue: 2 * normalSf(Math.abs(z)) };
}

// --- special functions -------------------------------------------------------------------

const LANCZOS = [
  0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
  12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
];

/** ln Γ(x) for x > 0 (Lanczos, g = 7), to about 1e-15 relative. */
export function logGamma(x: number): number {
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x);
  const z = x - 1;
  let a = LANCZOS[0] as number;
  const t = z + 7.5;
  for (let i = 1; i < 9; i++) a += (LANCZOS[i] as number) / (z + i);
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(a);
}

/** Regularized upper incomplete gamma Q(a, x) (scipy.special.gammaincc). */
export function gammaQ(a: number, x: number): number {
  if (x <= 0) return 1;
  const lead = -x + a * Math.log(x) - logGamma(a);
  if (x < a + 1) {
    // Series for P(a, x).
    let term = 1 / a;
    let total = term;
    for (let n = 1; n < 1000; n++) {
      term *= x / (a + n);
      total += term;
      if (Math.abs(term) < Math.abs(total) * 1e-16) break;
    }
    return Math.max(0, 1 - total * Math.exp(lead));
  }
  // Continued fraction for Q(a, x) (modified Lentz).
  const tiny = 1e-300;
  let b = x + 1 - a;
  let c = 1 / tiny;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < 1000; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < tiny) d = tiny;
    c = b + an / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const delta = d * c;
    h *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return Math.exp(lead) * h;
}

/** P(X ≥ x) for X ~ χ²(df) (scipy.stats.chi2.sf). */
export function chiSquareSf(x: number, df: number): number {
  return gammaQ(df / 2, x / 2);
}

/** The x with P(X ≥ x) = q for X ~ χ²(df) (scipy.stats.chi2.isf), by bisection on the sf. */
export function chiSquareIsf(q: number, df: number): number {
  let lo = 0;
  let hi = Math.max(1, df);
  while (chiSquareSf(hi, df) > q) hi *= 2;
  for (let i = 0; i < 100 && hi - lo > 1e-12 * hi; i++) {
    const mid = (lo + hi) / 2;
    if (chiSquareSf(mid, df) > q) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

/**
 * The PSI two samples of `n1` and `n2` values from one distribution over `bins` occupied bins
 * stay below with probability 1 - q. PSI is a symmetric divergence: times n1·n2/(n1 + n2) it
 * tends to χ²(bins - 1), so its sampling noise alone averages (bins - 1)·(1/n1 + 1/n2), and a
 * fixed threshold (0.2, 0.25) is crossed by unchanged data in windows of a hundred rows.
 */
export function psiNoise(bins: number, n1: number, n2: number, q = 0.01): number {
  if (bins < 2 || n1 <= 0 || n2 <= 0) return 0;
  return chiSquareIsf(q, bins - 1) * (1 / n1 + 1 / n2);
}

/** P(Z ≥ z) for a standard normal (scipy.stats.norm.sf). */
export function normalSf(z: number): number {
  const erfc = (v: number) => (v >= 0 ? gammaQ(0.5, v * v) : 2 - gammaQ(0.5, v * v));
  return 0.5 * erfc(z / Math.SQRT2);
}
