import { z } from 'zod';
import { parseRedisUrl, REDIS_URL_FORMS } from './redis-url.js';

// Every field reads one environment string. A parse function answers `undefined` for a value it
// cannot accept, and `expected` becomes the message, so that errors read the same for every field.
function envField<T>(expected: string, parse: (raw: string) => T | undefined) {
  return z.string().transform((raw, ctx): T => {
    const value = parse(raw);
    if (value === undefined) {
      ctx.addIssue({ code: 'custom', message: `expected ${expected}` });
      return z.NEVER;
    }
    return value;
  });
}

/** Any non-empty string (empty values are treated as unset before parsing). */
export function str() {
  return envField('a non-empty string', (raw) => (raw.length > 0 ? raw : undefined));
}

export interface IntOptions {
  min?: number;
  max?: number;
}

function describeRange({ min, max }: IntOptions): string {
  if (min !== undefined && max !== undefined) return `an integer ${min}-${max}`;
  if (min !== undefined) return `an integer >= ${min}`;
  if (max !== undefined) return `an integer <= ${max}`;
  return 'an integer';
}

export function int(options: IntOptions = {}) {
  const { min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER } = options;
  return envField(describeRange(options), (raw) => {
    // Number('') is 0 and Number('1e3') is 1000: accept plain decimal digits only.
    if (!/^-?\d+$/.test(raw)) return undefined;
    const value = Number(raw);
    return Number.isSafeInteger(value) && value >= min && value <= max ? value : undefined;
  });
}

export function port() {
  return int({ min: 1, max: 65535 });
}

export interface UrlOptions {
  /** Accepted schemes with their colon, e.g. `['redis:', 'rediss:']`; any scheme when omitted. */
  protocols?: readonly string[];
}

/** A URL, returned as the string given (not normalised, so credentials and paths stay as written). */
export function url(options: UrlOptions = {}) {
  const { protocols } = options;
  const expected = protocols ? `a URL (${protocols.join(' or ')})` : 'a URL';
  return envField(expected, (raw) => {
    if (!URL.canParse(raw)) return undefined;
    const { protocol } = new URL(raw);
    return !protocols || protocols.includes(protocol) ? raw : undefined;
  });
}

/**
 * A Redis URL in any form redis-url.ts reads (one server, a cluster, or sentinels), returned
 * as the string given: the service hands it to connectRedis (@ballast/queue) as it is.
 */
export function redisUrl() {
  return envField(`a Redis URL: ${REDIS_URL_FORMS}`, (raw) => (parseRedisUrl(raw) ? raw : undefined));
}

const DURATION_UNITS_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };

/** A duration in milliseconds: a bare number of ms, or a number with ms, s, m or h (`1.5s`). */
export function durationMs() {
  return envField('a duration such as 500, 500ms, 10s, 2m or 1h', (raw) => {
    const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(raw);
    if (!match?.[1]) return undefined;
    return Math.round(Number(match[1]) * (DURATION_UNITS_MS[match[2] ?? 'ms'] ?? 1));
  });
}

const BOOLEANS: Record<string, boolean> = { true: true, '1': true, false: false, '0': false };

export function bool() {
  return envField('true, false, 1 or 0', (raw) => BOOLEANS[raw.toLowerCase()]);
}

/** One of a fixed set of strings, e.g. `oneOf(['auto', 'wasm', 'cpu'])`. */
export function oneOf<const T extends readonly [string, ...string[]]>(values: T) {
  return envField(`one of ${values.join(', ')}`, (raw) =>
    (values as readonly string[]).includes(raw) ? (raw as T[number]) : undefined,
  );
}

// grpc-js also takes resolver-prefixed targets (dns:///host:port, unix:/path); those pass as given.
const GRPC_TARGET_SCHEME = /^(dns|unix|unix-abstract|ipv4|ipv6|xds):/;
const HOST_PORT = /^(\[[0-9a-fA-F:.]+\]|[^\s:[\]/]+):(\d{1,5})$/;

/** Where to reach a gRPC server: `host:port`, `[::1]:port`, or a grpc-js target such as `dns:///h:p`. */
export function hostPort() {
  return envField('host:port (e.g. 127.0.0.1:50051)', (raw) => {
    if (GRPC_TARGET_SCHEME.test(raw)) return raw;
    const portText = HOST_PORT.exec(raw)?.[2];
    if (portText === undefined) return undefined;
    const value = Number(portText);
    return value >= 1 && value <= 65535 ? raw : undefined;
  });
}
