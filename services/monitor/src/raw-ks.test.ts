import { FeatureSampleSchema } from '@ballast/contracts/ballast/monitor/v1/monitor_pb.js';
import { create } from '@bufbuild/protobuf';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { featureDrift } from './drift.js';
import { baselineCounts, mergeWindow, numericBaseline } from './histogram.js';
import { buildBaseline, sampleFor } from './model-baseline.js';
import { RESERVOIR_SIZE, reservoirOf } from './reservoir.js';
import { records, startTestMonitor, statistics, T0, type TestMonitor, WINDOW } from './test-monitor.js';
import { normalSample, scipyReference } from './test-support.js';
import { absorb } from './windows.js';

/**
 * KS as users compute it: ks_2samp on raw values. Windows and baselines keep a seeded
 * reservoir of raw values, and KS on those is exactly scipy's on the same samples; the
 * statistic on the bins stays, named as such (ks_binned_*).
 */

type Answer = { statistic: number; pValue: number };

const close = (a: number, b: number) =>
  expect(Math.abs(a - b)).toBeLessThanOrEqual(1e-9 + 1e-7 * Math.abs(b));

describe('reservoirs', () => {
  it('Algorithm R keeps at most the reservoir size, every value while fewer arrived, and repeats itself for the same seed', () => {
    const values = normalSample(1, 5_000);
    expect(reservoirOf(values.slice(0, 700), 'k')).toEqual(values.slice(0, 700));
    const a = reservoirOf(values, 'k');
    expect(a).toHaveLength(RESERVOIR_SIZE);
    expect(reservoirOf(values, 'k')).toEqual(a);
    const pool = new Set(values);
    expect(a.every((v) => pool.has(v))).toBe(true);
    // Late values get in as often as early ones (a uniform sample, not the first 1,000).
    expect(a.filter((v) => values.indexOf(v) >= 2_500).length).toBeGreaterThan(400);
  });
});

describe('KS on raw samples equals scipy.stats.ks_2samp on the same samples', () => {
  const reference = normalSample(11, 800, 50, 10);
  // A shift inside one bin of a 10-bin baseline: the bins hide most of it.
  const current = normalSample(12, 600, 52, 10);
  const stats = [statistics('lag_units', reference), statistics('units', reference, '', true)];
  const samples = [create(FeatureSampleSchema, { feature: 'lag_units', segment: '', values: reference })];
  const model = buildBaseline('m', 1, stats, undefined, { windowMs: WINDOW }, samples);
  const rows = (values: number[], from: number) =>
    records(
      values.map((v, i) => ({
        time: T0 + i,
        values: { lag_units: v },
        prediction: 50,
        entity: `e${from + i}`,
      })),
    );

  it('in windows absorbed from several jobs, under and over the reservoir size', () => {
    const big = normalSample(13, 2_600, 51, 10);
    const cases = [current, big].map((values) => {
      // Three jobs, merged as the store merges them.
      const parts = [values.slice(0, 100), values.slice(100, 350), values.slice(350)];
      const hists = parts.map((p, i) => {
        const w = [...absorb(model, rows(p, i * 1000)).windows.values()].find(
          (e) => e.key.feature === 'lag_units' && e.key.segment === '',
        );
        if (!w) throw new Error('no window');
        return w.hist;
      });
      const [into, ...rest] = hists;
      if (!into) throw new Error('no window');
      for (const h of rest) mergeWindow(into, h);
      return into;
    });
    const [small, large] = cases;
    if (!small || !large) throw new Error('no windows');
    expect(small.sample).toHaveLength(600);
    expect([...(small.sample ?? [])].sort()).toEqual([...current].sort());
    expect(large.sample).toHaveLength(RESERVOIR_SIZE);
    expect(large.count).toBe(2_600);
    const ref = sampleFor(model, 'lag_units', '') ?? [];
    const binned = numericBaseline(reference, 10);
    const answers = scipyReference<Answer>([
      { kind: 'ks_samples', a: ref, b: small.sample, method: 'exact' },
      { kind: 'ks_samples', a: ref, b: large.sample, method: 'exact' },
      { kind: 'ks_bins', reference: baselineCounts(binned), current: small.counts, method: 'exact' },
    ]);
    for (const [i, hist] of [small, large].entries()) {
      const d = featureDrift(binned, hist, {}, ref);
      const theirs = answers[i] as Answer;
      expect(d.ksSamples).toEqual({ reference: 800, current: hist.sample?.length });
      close(d.ks?.statistic ?? Number.NaN, theirs.statistic);
      close(d.ks?.pValue ?? Number.NaN, theirs.pValue);
    }
    const d = featureDrift(binned, small, {}, ref);
    const bins = answers[2] as Answer;
    close(d.ksBinned?.statistic ?? Number.NaN, bins.statistic);
    close(d.ksBinned?.pValue ?? Number.NaN, bins.pValue);
    expect(d.ks?.statistic).toBeGreaterThan(d.ksBinned?.statistic ?? 1);
  });

  describe('through the service', () => {
    let m: TestMonitor;
    beforeAll(async () => {
      m = await startTestMonitor('postgres', { settings: { windowMs: WINDOW, defaultRule: undefined } });
    });
    afterAll(async () => m?.close());

    it('GetDrift answers KS on the raw samples, the binned KS beside it, and the sample sizes', async () => {
      await m.client.setBaseline({ model: 'raw', version: 1, statistics: stats, samples });
      await m.log([
        { model: 'raw', version: '1', rows: 250, records: rows(current.slice(0, 250), 0) },
        { model: 'raw', version: '1', rows: 350, records: rows(current.slice(250), 250) },
      ]);
      const { windows } = await m.client.getDrift({
        model: 'raw',
        version: 1,
        startTime: timestampFromMs(T0),
      });
      const f = windows[0]?.features.find((x) => x.feature === 'lag_units');
      const whole = [...absorb(model, rows(current, 0)).windows.values()].find(
        (e) => e.key.feature === 'lag_units' && e.key.segment === '',
      );
      const [raw, bins] = scipyReference<Answer>([
        { kind: 'ks_samples', a: reference, b: current, method: 'exact' },
        {
          kind: 'ks_bins',
          reference: baselineCounts(numericBaseline(reference, 10)),
          current: whole?.hist.counts,
          method: 'exact',
        },
      ]);
      expect(f?.ksReferenceSamples).toBe(800n);
      expect(f?.ksCurrentSamples).toBe(600n);
      close(f?.ksStatistic ?? Number.NaN, (raw as Answer).statistic);
      close(f?.ksPValue ?? Number.NaN, (raw as Answer).pValue);
      close(f?.ksBinnedStatistic ?? Number.NaN, (bins as Answer).statistic);
      close(f?.ksBinnedPValue ?? Number.NaN, (bins as Answer).pValue);
      // The prediction has no declared sample: its KS is on the bins, and says so.
      const p = windows[0]?.features.find((x) => x.isPrediction);
      expect(p?.ksReferenceSamples).toBe(0n);
      expect(p?.ksStatistic).toBe(p?.ksBinnedStatistic);
    });

    it('refuses samples of a feature or segment without statistics, naming the field', async () => {
      for (const [sample, rule] of [
        [{ feature: 'nope', segment: '', values: [1] }, 'feature "nope" in segment "" has no statistics'],
        [
          { feature: 'lag_units', segment: 'warehouse_id=w9', values: [1] },
          'in segment "warehouse_id=w9" has no statistics',
        ],
      ] satisfies [{ feature: string; segment: string; values: number[] }, string][]) {
        const err = await m.client
          .setBaseline({ model: 'raw', version: 2, statistics: stats, samples: [sample] })
          .then(
            () => undefined,
            (e: { code: number; details: string }) => e,
          );
        expect(err?.code).toBe(status.INVALID_ARGUMENT);
        expect(err?.details).toContain('samples[0]');
        expect(err?.details).toContain(rule);
      }
    });
  });
});
