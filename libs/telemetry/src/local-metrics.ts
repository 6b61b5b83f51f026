import { type Attributes, type HrTime, ValueType } from '@opentelemetry/api';
import { emptyResource } from '@opentelemetry/resources';
import {
  AggregationTemporality,
  type CollectionResult,
  DataPointType,
  type MetricData,
  type MetricProducer,
  type ScopeMetrics,
} from '@opentelemetry/sdk-metrics';

/**
 * Counters and histograms for a hot path, kept outside the SDK's per-call bookkeeping.
 *
 * The SDK hashes a call's attributes on every add and record (Object.keys, a sort and a
 * JSON.stringify) and stamps each with the time: in a heap profile of inference at 16
 * concurrent calls, that was about a fifth of everything the server allocated. Here a caller
 * takes a series for its attributes once (a method, a model version) and keeps it; adding to
 * it or recording into it changes a few numbers in place. At each scrape a MetricProducer
 * hands every series to the Prometheus exporter as the SDK would: cumulative, with the same
 * bucket rule (a value lands in the first bucket whose upper bound is at or above it).
 */

export interface LocalInstrumentOptions {
  /** The instrumentation scope, as a meter's name. */
  scope: string;
  description: string;
  unit?: string;
}

export interface LocalHistogramOptions extends LocalInstrumentOptions {
  /** Bucket upper bounds, ascending. */
  boundaries: readonly number[];
}

function hrTimeNow(): HrTime {
  const ms = performance.timeOrigin + performance.now();
  const seconds = Math.floor(ms / 1000);
  return [seconds, Math.round((ms - seconds * 1000) * 1e6)];
}

/** The same attributes in any key order are one series, as in the SDK. */
function seriesKey(attributes: Attributes): string {
  return JSON.stringify(
    Object.keys(attributes)
      .sort()
      .map((k) => [k, attributes[k]]),
  );
}

export class CounterSeries {
  value = 0;
  constructor(
    readonly attributes: Attributes,
    readonly startTime: HrTime,
  ) {}

  /** Negative and non-finite increments are dropped: a counter only goes up. */
  add(value = 1): void {
    if (value >= 0 && value !== Number.POSITIVE_INFINITY) this.value += value;
  }
}

export class HistogramSeries {
  readonly counts: number[];
  sum = 0;
  count = 0;
  min = Number.POSITIVE_INFINITY;
  max = Number.NEGATIVE_INFINITY;

  constructor(
    readonly attributes: Attributes,
    readonly startTime: HrTime,
    private readonly boundaries: readonly number[],
  ) {
    this.counts = new Array<number>(boundaries.length + 1).fill(0);
  }

  /** Negative and non-finite values are dropped, as the SDK's histograms drop them. */
  record(value: number): void {
    if (!(value >= 0) || value === Number.POSITIVE_INFINITY) return;
    const bounds = this.boundaries;
    let lo = 0;
    let hi = bounds.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((bounds[mid] as number) < value) lo = mid + 1;
      else hi = mid;
    }
    this.counts[lo] = (this.counts[lo] as number) + 1;
    this.sum += value;
    this.count++;
    if (value < this.min) this.min = value;
    if (value > this.max) this.max = value;
  }
}

abstract class LocalInstrument<S extends CounterSeries | HistogramSeries> {
  readonly #series = new Map<string, S>();

  constructor(
    readonly name: string,
    readonly options: LocalInstrumentOptions,
  ) {}

  /** The series for these attributes; take it once and keep it, that is the point. */
  series(attributes: Attributes): S {
    const key = seriesKey(attributes);
    let series = this.#series.get(key);
    if (!series) {
      series = this.create({ ...attributes }, hrTimeNow());
      this.#series.set(key, series);
    }
    return series;
  }

  protected abstract create(attributes: Attributes, start: HrTime): S;

  abstract metricData(end: HrTime): MetricData;

  protected all(): IterableIterator<S> {
    return this.#series.values();
  }

  protected descriptor() {
    return {
      name: this.name,
      description: this.options.description,
      unit: this.options.unit ?? '',
      valueType: ValueType.DOUBLE,
    };
  }
}

export class LocalCounter extends LocalInstrument<CounterSeries> {
  protected create(attributes: Attributes, start: HrTime): CounterSeries {
    return new CounterSeries(attributes, start);
  }

  metricData(endTime: HrTime): MetricData {
    return {
      descriptor: this.descriptor(),
      aggregationTemporality: AggregationTemporality.CUMULATIVE,
      dataPointType: DataPointType.SUM,
      isMonotonic: true,
      dataPoints: [...this.all()].map((s) => ({
        attributes: s.attributes,
        startTime: s.startTime,
        endTime,
        value: s.value,
      })),
    };
  }
}

export class LocalHistogram extends LocalInstrument<HistogramSeries> {
  readonly #boundaries: readonly number[];

  constructor(name: string, options: LocalHistogramOptions) {
    super(name, options);
    this.#boundaries = options.boundaries;
  }

  protected create(attributes: Attributes, start: HrTime): HistogramSeries {
    return new HistogramSeries(attributes, start, this.#boundaries);
  }

  metricData(endTime: HrTime): MetricData {
    const boundaries = [...this.#boundaries];
    return {
      descriptor: this.descriptor(),
      aggregationTemporality: AggregationTemporality.CUMULATIVE,
      dataPointType: DataPointType.HISTOGRAM,
      dataPoints: [...this.all()].map((s) => ({
        attributes: s.attributes,
        startTime: s.startTime,
        endTime,
        value: {
          buckets: { boundaries, counts: [...s.counts] },
          sum: s.sum,
          count: s.count,
          ...(s.count > 0 ? { min: s.min, max: s.max } : {}),
        },
      })),
    };
  }
}

/** Every local instrument of the process, by name: a second request for a name gets the first. */
export class LocalMetrics implements MetricProducer {
  readonly #instruments = new Map<string, LocalCounter | LocalHistogram>();

  counter(name: string, options: LocalInstrumentOptions): LocalCounter {
    return this.#get(name, LocalCounter, () => new LocalCounter(name, options));
  }

  histogram(name: string, options: LocalHistogramOptions): LocalHistogram {
    return this.#get(name, LocalHistogram, () => new LocalHistogram(name, options));
  }

  #get<I extends LocalCounter | LocalHistogram>(
    name: string,
    kind: abstract new (...args: never[]) => I,
    make: () => I,
  ): I {
    const existing = this.#instruments.get(name);
    if (existing) {
      if (!(existing instanceof kind)) throw new Error(`metric ${name} already exists as another kind`);
      return existing;
    }
    const created = make();
    this.#instruments.set(name, created);
    return created;
  }

  async collect(): Promise<CollectionResult> {
    const endTime = hrTimeNow();
    const byScope = new Map<string, MetricData[]>();
    for (const instrument of this.#instruments.values()) {
      const list = byScope.get(instrument.options.scope) ?? [];
      list.push(instrument.metricData(endTime));
      byScope.set(instrument.options.scope, list);
    }
    const scopeMetrics: ScopeMetrics[] = [...byScope].map(([name, metrics]) => ({
      scope: { name },
      metrics,
    }));
    // The reader keeps its own SDK's resource and takes only the scopes from a producer.
    return { resourceMetrics: { resource: emptyResource(), scopeMetrics }, errors: [] };
  }
}
