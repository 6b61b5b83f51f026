import { seededRandom } from '@ballast/sampling';
import { describe, expect, it } from 'vitest';
import { categoricalBaseline, chooseMethod, featureDrift, psiLevel, segmentDrift } from './drift.js';
import { addValue, type Baseline, emptyWindow, numericBaseline, type WindowHistogram } from './histogram.js';
import { normalSample } from './test-support.js';

function windowOf(baseline: Baseline, values: readonly number[]): WindowHistogram {
  const window = emptyWindow(baseline);
  for (const v of values) addValue(baseline, window, v);
  return window;
}

describe('choosing the test (Evidently)', () => {
  it('tests with a small reference, distances with a large one, categorical by distinct values', () => {
    expect(chooseMethod(numericBaseline(normalSample(1, 800)))).toBe('ks');
    expect(chooseMethod(numericBaseline(normalSample(1, 5000)))).toBe('wasserstein');
    expect(chooseMethod(categoricalBaseline([0, 1, 2, 1, 0, 2]))).toBe('chisquare');
    expect(chooseMethod(categoricalBaseline([0, 1, 1, 0]))).toBe('ztest');
    const oneHot = numericBaseline(Array.from({ length: 3000 }, (_, i) => i % 2));
    expect(chooseMethod(oneHot)).toBe('jensenshannon');
    expect(chooseMethod(numericBaseline(normalSample(1, 5000)), { method: 'psi' })).toBe('psi');
  });

  it('grades PSI at 0.1 and 0.2 unless told otherwise', () => {
    expect([0.05, 0.1, 0.2].map((v) => psiLevel(v))).toEqual(['ok', 'warn', 'alert']);
    expect(psiLevel(0.2, { psiAlert: 0.3 })).toBe('warn');
  });
});

describe('drift on a shifted segment', () => {
  // Three warehouses share one baseline (training data); only w3 shifts in serving.
  const features = ['price', 'promo_units', 'lag_7'];
  const baselines = features.map((_, i) => numericBaseline(normalSample(100 + i, 20_000), 20));
  const segmentWindows = (seed: number, shift: number) =>
    baselines.map((b, i) => windowOf(b, normalSample(seed * 10 + i, 500, shift)));

  it('finds the shifted segment and not the stable ones', () => {
    const verdicts = [0, 0, 0.6].map((shift, s) => {
      const drifts = segmentWindows(s + 1, shift).map((w, i) => featureDrift(baselines[i] as Baseline, w));
      return { drifts, segment: segmentDrift(drifts) };
    });
    expect(verdicts.map((v) => v.segment.drifted)).toEqual([false, false, true]);
    const shifted = verdicts[2]?.drifts ?? [];
    expect(shifted.every((d) => d.method === 'ks' && d.drifted && d.psiLevel !== 'ok')).toBe(true);
    expect(shifted.every((d) => (d.ks?.pValue ?? 1) < 1e-6)).toBe(true);
  });

  it('keeps false alarms rare on stable data over many windows', () => {
    let featureAlarms = 0;
    let segmentAlarms = 0;
    let psiAlerts = 0;
    const windows = 200;
    for (let w = 0; w < windows; w++) {
      const drifts = segmentWindows(1000 + w, 0).map((win, i) => featureDrift(baselines[i] as Baseline, win));
      featureAlarms += drifts.filter((d) => d.drifted).length;
      psiAlerts += drifts.filter((d) => d.psiLevel === 'alert').length;
      if (segmentDrift(drifts).drifted) segmentAlarms++;
    }
    // 500-row windows are tested (KS at 95% confidence on the shared bins, see chooseMethod)
    // rather than compared by normalized Wasserstein at 0.1, which sampling alone moves past
    // 0.1 in about 1 window in 20 at this size. The segment rule (at least half of the
    // features) keeps segment alarms rarer still, and PSI never reaches its alert level.
    expect(featureAlarms / (windows * features.length)).toBeLessThan(0.08);
    expect(segmentAlarms / windows).toBeLessThan(0.02);
    expect(segmentAlarms).toBeLessThan(featureAlarms / 4);
    expect(psiAlerts).toBe(0);
  });

  it('with a small reference, KS at 95% confidence finds the shift', () => {
    const small = numericBaseline(normalSample(7, 600), 10);
    const stable = featureDrift(small, windowOf(small, normalSample(8, 400)));
    const moved = featureDrift(small, windowOf(small, normalSample(9, 400, 0.5)));
    expect(stable.method).toBe('ks');
    expect(stable.drifted).toBe(false);
    expect(moved.drifted).toBe(true);
    expect(moved.pValue).toBeLessThan(0.05);
  });
});

describe('categorical and anomalous values', () => {
  it('counts unseen categories and out-of-range values, and tests categories with chi-squared', () => {
    const rand = seededRandom(3);
    const reference = categoricalBaseline(Array.from({ length: 600 }, () => Math.floor(rand() * 3)));
    const same = featureDrift(
      reference,
      windowOf(
        reference,
        Array.from({ length: 300 }, () => Math.floor(rand() * 3)),
      ),
    );
    const skewed = featureDrift(
      reference,
      windowOf(reference, [...Array.from({ length: 250 }, () => 0), 1, 2, 7, 7, Number.NaN]),
    );
    expect(same.method).toBe('chisquare');
    expect(same.drifted).toBe(false);
    expect(skewed.drifted).toBe(true);
    expect(skewed.outOfRange).toBe(2);
    expect(skewed.nulls).toBe(1);
    const numeric = numericBaseline([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    const outside = featureDrift(numeric, windowOf(numeric, [-1, 0, 10, 11, 12]));
    expect(outside.outOfRange).toBe(3);
  });

  it('gives no verdict on too few values', () => {
    const b = numericBaseline(normalSample(1, 5000));
    const d = featureDrift(b, windowOf(b, normalSample(2, 10, 3)));
    expect(d.insufficient).toBe(true);
    expect(d.drifted).toBe(false);
    expect(segmentDrift([d]).drifted).toBe(false);
  });

  it('a segment drifts when at least half of its judged features do', () => {
    const f = (drifted: boolean) => ({ drifted, insufficient: false });
    expect(segmentDrift([f(true), f(false)]).drifted).toBe(true);
    expect(segmentDrift([f(true), f(false), f(false)]).drifted).toBe(false);
    expect(segmentDrift([f(true), f(false), f(false)], 0.3).drifted).toBe(true);
  });
});
