import type { BatcherOptions } from './batcher.js';

/** How one model is served: its batcher and its traffic policy. */
export interface ServingConfig {
  batcher: BatcherOptions;
  /** Percent (0-100) of `production` traffic answered by `candidate` (canary). */
  canaryPercent: number;
  /** Mirror `production` traffic to `candidate`; its answers are logged, never returned. */
  shadow: boolean;
  /** Accept NaN and ±Inf in inputs (refused by default). */
  allowNonFinite: boolean;
  /**
   * The most rows (or entities) one request may carry; past it RESOURCE_EXHAUSTED. Requests
   * of more than max_batch_size rows run as several batches and are answered as one.
   */
  maxRowsPerRequest: number;
  /**
   * A model that is a chain of dense layers runs inline on the event loop (dense-chain.ts) when
   * a batch of max_batch_size rows takes at most this many microseconds there; 0: always on
   * the model worker.
   */
  inlineMaxUs: number;
}

/** The default bound for inline execution (BALLAST_INFERENCE_INLINE_MAX_US): 0.5 ms per full batch. */
export const DEFAULT_INLINE_MAX_US = 500;

/** The default row cap per request (BALLAST_INFERENCE_MAX_ROWS_PER_REQUEST). */
export const DEFAULT_MAX_ROWS_PER_REQUEST = 100_000;

/** What a request's rows are checked against while they are turned into model inputs. */
export type InputLimits = Pick<ServingConfig, 'allowNonFinite' | 'maxRowsPerRequest'>;

/** Registry model tags that override the defaults, e.g. `inference.canary_percent=10`. */
export const TAG_PREFIX = 'inference.';

function number(value: string | undefined, fallback: number, min: number, max: number): number {
  if (value === undefined || value.trim() === '') return fallback;
  const parsed = Number(value);
  return Number.isFinite(parsed) && parsed >= min && parsed <= max ? parsed : fallback;
}

export function parseSizes(value: string | undefined, fallback: number[]): number[] {
  if (value === undefined || value.trim() === '') return fallback;
  const sizes = value.split(',').map((s) => Number(s.trim()));
  return sizes.every((n) => Number.isInteger(n) && n > 0)
    ? [...new Set(sizes)].sort((a, b) => a - b)
    : fallback;
}

/**
 * The model's serving config: the registry model's `inference.*` tags over the service's
 * defaults. A tag that does not parse keeps the default (and is reported in the log by the caller).
 */
export function servingConfig(tags: Record<string, string>, defaults: ServingConfig): ServingConfig {
  const tag = (name: string) => tags[`${TAG_PREFIX}${name}`];
  const max = Math.floor(number(tag('max_batch_size'), defaults.batcher.max_batch_size, 1, 65_536));
  return {
    batcher: {
      max_batch_size: max,
      max_queue_delay_microseconds: number(
        tag('max_queue_delay_microseconds'),
        defaults.batcher.max_queue_delay_microseconds,
        0,
        10_000_000,
      ),
      preferred_batch_size: parseSizes(
        tag('preferred_batch_size'),
        defaults.batcher.preferred_batch_size,
      ).filter((size) => size <= max),
      max_queue_size: Math.floor(
        number(tag('max_queue_size'), defaults.batcher.max_queue_size, 1, 10_000_000),
      ),
      default_timeout_microseconds: number(
        tag('default_timeout_microseconds'),
        defaults.batcher.default_timeout_microseconds,
        0,
        3_600_000_000,
      ),
      // A p99 objective (ms) makes the batcher tune its own queue delay (queue-tuner.ts); 0: off.
      latency_objective_ms: number(
        tag('latency_objective_ms'),
        defaults.batcher.latency_objective_ms ?? 0,
        0,
        3_600_000,
      ),
    },
    canaryPercent: number(tag('canary_percent'), defaults.canaryPercent, 0, 100),
    shadow: (tag('shadow') ?? String(defaults.shadow)).trim().toLowerCase() === 'true',
    allowNonFinite:
      (tag('allow_non_finite') ?? String(defaults.allowNonFinite)).trim().toLowerCase() === 'true',
    maxRowsPerRequest: Math.floor(
      number(tag('max_rows_per_request'), defaults.maxRowsPerRequest, 1, 10_000_000),
    ),
    inlineMaxUs: number(tag('inline_max_us'), defaults.inlineMaxUs, 0, 1_000_000),
  };
}
