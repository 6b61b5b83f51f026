import type {
  GetOperationsResponseSchema,
  ModelOperationsSchema,
  ServiceResourcesSchema,
} from '@ballast/contracts/ballast/monitor/v1/monitor_pb.js';
import type { Sql } from '@ballast/storage';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { mergeWindow, type WindowHistogram } from './histogram.js';
import { LATENCY_BASELINE } from './model-baseline.js';
import { readCounters } from './store/counters.js';
import { recentLatency } from './store/windows.js';
import { histogramQuantile } from './windows.js';

/**
 * Operations: latency percentiles per model from the logged predictions, request error rates
 * per model from inference's /metrics, and CPU, memory and event-loop lag per service from
 * each service's /metrics (scraped on an interval, a bounded history kept in memory).
 */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** Samples of the Prometheus text format (comments and malformed lines skipped). */
export function parsePrometheus(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = LINE.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = Object.create(null);
    for (const l of (m[2] ?? '').matchAll(LABEL))
      labels[l[1] as string] = (l[2] as string).replace(/\\n/g, '\n').replace(/\\(.)/g, '$1');
    const value = Number(m[3]);
    if (!Number.isNaN(value) || m[3] === 'NaN') out.push({ name: m[1] as string, labels, value });
  }
  return out;
}

/** Names services may export each resource under (prom-client's, then OpenTelemetry's). */
const CPU = ['process_cpu_seconds_total', 'process_cpu_time_seconds_total', 'process_cpu_seconds'];
const MEMORY = ['process_resident_memory_bytes', 'process_memory_usage_bytes', 'process_memory_usage'];
const LAG = [
  'nodejs_eventloop_lag_seconds',
  'nodejs_eventloop_lag_p99_seconds',
  'nodejs_eventloop_delay_p99_seconds',
  'nodejs_eventloop_delay_p99',
];

function first(samples: readonly Sample[], names: readonly string[]): number | undefined {
  for (const name of names) {
    const found = samples.filter((s) => s.name === name);
    if (found.length > 0) return found.reduce((a, s) => a + s.value, 0);
  }
  return undefined;
}

export interface ScrapeTarget {
  service: string;
  url: string;
}

/** DESIGN.md's HTTP ports, on this host. */
export const DEFAULT_TARGETS: ScrapeTarget[] = [
  ['ingest', 9451],
  ['feature', 9452],
  ['registry', 9453],
  ['inference', 9454],
  ['monitor', 9455],
  ['trainer', 9456],
].map(([service, port]) => ({ service: service as string, url: `http://127.0.0.1:${port}/metrics` }));

/** `name=url,...` (BALLAST_MONITOR_SCRAPE_TARGETS); unset: DEFAULT_TARGETS; "none": nothing. */
export function parseTargets(value: string | undefined): ScrapeTarget[] {
  if (value === undefined || value.trim() === '') return DEFAULT_TARGETS;
  if (value.trim() === 'none') return [];
  return value
    .split(',')
    .map((part) => part.trim())
    .filter(Boolean)
    .map((part) => {
      const at = part.indexOf('=');
      if (at <= 0) throw new Error(`BALLAST_MONITOR_SCRAPE_TARGETS: "${part}" is not name=url`);
      const url = new URL(part.slice(at + 1));
      if (url.protocol !== 'http:' && url.protocol !== 'https:')
        throw new Error(`BALLAST_MONITOR_SCRAPE_TARGETS: "${part}" is not an http(s) URL`);
      return { service: part.slice(0, at), url: url.toString() };
    });
}

export interface ResourcePoint {
  at: number;
  up: boolean;
  error?: string;
  cpuPercent: number;
  memoryBytes: number;
  eventLoopLagMs: number;
}

export interface InferenceRequests {
  model: string;
  status: string;
  count: number;
}

export class OperationsScraper {
  readonly #history = new Map<string, ResourcePoint[]>();
  readonly #lastCpu = new Map<string, { at: number; seconds: number }>();
  #requests: InferenceRequests[] = [];
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;

  constructor(
    readonly targets: readonly ScrapeTarget[],
    private readonly options: { intervalMs?: number; timeoutMs?: number; keep?: number } = {},
  ) {}

  start(): void {
    if (this.#timer || this.targets.length === 0) return;
    const tick = () => {
      if (!this.#running) this.#running = this.scrapeOnce().finally(() => (this.#running = undefined));
    };
    tick();
    this.#timer = setInterval(tick, this.options.intervalMs ?? 15_000);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#running;
  }

  async scrapeOnce(): Promise<void> {
    await Promise.all(this.targets.map((t) => this.scrape(t)));
  }

  private async scrape(target: ScrapeTarget): Promise<void> {
    const at = Date.now();
    let point: ResourcePoint;
    try {
      const res = await fetch(target.url, { signal: AbortSignal.timeout(this.options.timeoutMs ?? 2_000) });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      const samples = parsePrometheus(await res.text());
      const cpu = first(samples, CPU);
      const last = this.#lastCpu.get(target.service);
      let cpuPercent = Number.NaN;
      if (cpu !== undefined) {
        if (last && at > last.at && cpu >= last.seconds)
          cpuPercent = ((cpu - last.seconds) / ((at - last.at) / 1000)) * 100;
        this.#lastCpu.set(target.service, { at, seconds: cpu });
      }
      const lag = first(samples, LAG);
      point = {
        at,
        up: true,
        cpuPercent,
        memoryBytes: first(samples, MEMORY) ?? Number.NaN,
        eventLoopLagMs: lag === undefined ? Number.NaN : lag * 1000,
      };
      const requests = samples.filter((s) => s.name === 'ballast_inference_requests_total');
      if (requests.length > 0) {
        const sums = new Map<string, InferenceRequests>();
        for (const s of requests) {
          const model = s.labels.model ?? '';
          const status = s.labels.status ?? '';
          const id = `${model}\u0000${status}`;
          const entry = sums.get(id) ?? { model, status, count: 0 };
          entry.count += s.value;
          sums.set(id, entry);
        }
        this.#requests = [...sums.values()];
      }
    } catch (err) {
      point = {
        at,
        up: false,
        error: err instanceof Error ? err.message : String(err),
        cpuPercent: Number.NaN,
        memoryBytes: Number.NaN,
        eventLoopLagMs: Number.NaN,
      };
    }
    const list = this.#history.get(target.service) ?? [];
    list.push(point);
    if (list.length > (this.options.keep ?? 240)) list.shift();
    this.#history.set(target.service, list);
  }

  history(service: string): readonly ResourcePoint[] {
    return this.#history.get(service) ?? [];
  }

  /** Inference's request counters by model and status, as last scraped. */
  requests(): readonly InferenceRequests[] {
    return this.#requests;
  }
}

function mergedLatency(hists: WindowHistogram[]): WindowHistogram | undefined {
  const [head, ...rest] = hists;
  if (!head) return undefined;
  const total = { ...head, counts: [...head.counts] };
  for (const h of rest) if (h.counts.length === total.counts.length) mergeWindow(total, h);
  return total;
}

/** The GetOperations answer: per model (newest version with windows) and per scraped service. */
export async function operationsReport(
  sql: Sql,
  scraper: OperationsScraper | undefined,
  model: string,
  rangeMs: number,
): Promise<MessageInitShape<typeof GetOperationsResponseSchema>> {
  const byModel = new Map<string, { version: number; hists: WindowHistogram[] }>();
  for (const r of await recentLatency(sql, model, rangeMs)) {
    const entry = byModel.get(r.model) ?? { version: r.version, hists: [] };
    entry.hists.push(r.hist);
    byModel.set(r.model, entry);
  }
  const requests = scraper?.requests() ?? [];
  const names = new Set([
    ...byModel.keys(),
    ...requests.map((r) => r.model).filter((m) => !model || m === model),
  ]);
  const models: MessageInitShape<typeof ModelOperationsSchema>[] = [];
  for (const name of [...names].sort()) {
    const entry = byModel.get(name);
    const h = entry && mergedLatency(entry.hists);
    const q = (p: number) => (h ? histogramQuantile(LATENCY_BASELINE.edges, h, p) : Number.NaN);
    const byStatus: Record<string, bigint> = {};
    let total = 0;
    let failed = 0;
    for (const r of requests.filter((x) => x.model === name)) {
      byStatus[r.status] = BigInt(Math.round(r.count));
      total += r.count;
      if (r.status !== 'OK') failed += r.count;
    }
    models.push({
      model: name,
      version: entry?.version ?? 0,
      loggedRequests: BigInt(h?.count ?? 0),
      latencyP50Ms: q(0.5),
      latencyP95Ms: q(0.95),
      latencyP99Ms: q(0.99),
      requestsByStatus: byStatus,
      errorRate: total > 0 ? failed / total : Number.NaN,
    });
  }
  const services: MessageInitShape<typeof ServiceResourcesSchema>[] = (scraper?.targets ?? []).map((t) => {
    const list = scraper?.history(t.service) ?? [];
    const last = list[list.length - 1];
    return {
      service: t.service,
      target: t.url,
      up: last?.up ?? false,
      error: last?.error ?? (last ? '' : 'not scraped yet'),
      ...(last ? { scrapedAt: timestampFromMs(last.at) } : {}),
      cpuPercent: last?.cpuPercent ?? Number.NaN,
      memoryBytes: last?.memoryBytes ?? Number.NaN,
      eventLoopLagMs: last?.eventLoopLagMs ?? Number.NaN,
    };
  });
  return { models, services };
}

/** The GetMonitorStatus answer: the monitor's own running totals. */
export async function monitorStatus(sql: Sql): Promise<{ counters: Record<string, bigint> }> {
  return { counters: await readCounters(sql) };
}
