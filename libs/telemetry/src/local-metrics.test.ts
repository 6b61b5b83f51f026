import { execFileSync } from 'node:child_process';
import { PrometheusExporter, PrometheusSerializer } from '@opentelemetry/exporter-prometheus';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { describe, expect, it } from 'vitest';
import { LocalMetrics } from './local-metrics.js';

const BOUNDS = [0.001, 0.01, 0.1, 1];
// Values on, below, between and above the bounds, a zero, and what both sides drop.
const VALUES = [0, 0.0005, 0.001, 0.0011, 0.01, 0.05, 0.1, 0.5, 1, 1.5, 42, -1, Number.NaN];

/** The scrape of one exporter that serves an SDK meter and the local instruments side by side. */
async function scrape(record: (sdk: MeterProvider, local: LocalMetrics) => void): Promise<string> {
  const local = new LocalMetrics();
  const exporter = new PrometheusExporter({ preventServerStart: true, metricProducers: [local] });
  const provider = new MeterProvider({ readers: [exporter] });
  record(provider, local);
  const { resourceMetrics } = await exporter.collect();
  await provider.shutdown();
  return new PrometheusSerializer().serialize(resourceMetrics);
}

/** A metric's lines, its name replaced, without the timestamps (the two sides read the clock apart). */
function linesOf(text: string, name: string): string[] {
  return text
    .split('\n')
    .filter((line) => line.includes(name))
    .map((line) => line.replaceAll(name, 'm').replace(/ \d{13}$/, ''));
}

describe('local metrics', () => {
  it('serve the same Prometheus lines as the SDK’s histogram and counter for the same records', async () => {
    const text = await scrape((sdk, local) => {
      const meter = sdk.getMeter('test');
      const options = { description: 'd', unit: 's' };
      const sdkHistogram = meter.createHistogram('sdk_seconds', {
        ...options,
        advice: { explicitBucketBoundaries: BOUNDS },
      });
      const sdkCounter = meter.createCounter('sdk_total', { description: 'd' });
      const localHistogram = local.histogram('local_seconds', {
        ...options,
        scope: 'test',
        boundaries: BOUNDS,
      });
      const localCounter = local.counter('local_total', { scope: 'test', description: 'd' });
      for (const [i, value] of VALUES.entries()) {
        // Two series, the attributes given in either key order.
        const attributes = i % 2 ? { a: 'x', b: 'y' } : { b: 'y', a: 'x' };
        const other = { a: 'z' };
        sdkHistogram.record(value, i % 3 ? attributes : other);
        localHistogram.series(i % 3 ? attributes : other).record(value);
        // The SDK's counter takes a NaN and reads NaN from then on; the local one drops it.
        if (!Number.isNaN(value)) sdkCounter.add(value, i % 3 ? attributes : other);
        localCounter.series(i % 3 ? attributes : other).add(value);
      }
    });
    const sdkHistogram = linesOf(text, 'sdk_seconds');
    expect(sdkHistogram.length).toBeGreaterThan(10);
    expect(linesOf(text, 'local_seconds')).toEqual(sdkHistogram);
    const sdkCounter = linesOf(text, 'sdk_total');
    expect(sdkCounter.length).toBeGreaterThan(2);
    expect(linesOf(text, 'local_total')).toEqual(sdkCounter);
    // And the exposition is valid for Prometheus's own checker.
    execFileSync('promtool', ['check', 'metrics'], { input: text });
  });

  it('keeps one series per attribute set, taken once, and one instrument per name', () => {
    const local = new LocalMetrics();
    const histogram = local.histogram('h', { scope: 's', description: 'd', boundaries: [1] });
    const series = histogram.series({ model: 'm', version: '1' });
    expect(histogram.series({ version: '1', model: 'm' })).toBe(series);
    expect(histogram.series({ model: 'm', version: '2' })).not.toBe(series);
    expect(local.histogram('h', { scope: 's', description: 'd', boundaries: [1] })).toBe(histogram);
    expect(() => local.counter('h', { scope: 's', description: 'd' })).toThrow(/another kind/);
  });
});
