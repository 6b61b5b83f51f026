import type { ChannelOptions } from '@grpc/grpc-js';
import { DEFAULT_STREAM_BUFFER_BYTES } from './stream-writer.js';
import { DEFAULT_MAX_WATCHERS } from './watchers.js';

/** What bounds a server's connections, streams and calls; each has a BALLAST_GRPC_* override. */
export interface TransportLimits {
  /** Deadline, from a call's first byte, for unary and client-streaming calls that set none. */
  defaultDeadlineMs: number;
  /** HTTP/2 PING after this long without traffic, so dead peers are noticed. */
  keepaliveTimeMs: number;
  /** A PING unanswered this long closes the connection. */
  keepaliveTimeoutMs: number;
  /** A connection with no open stream for this long gets GOAWAY. */
  maxConnectionIdleMs: number;
  /** Every connection gets GOAWAY at this age, so no client holds one (or its streams) forever... */
  maxConnectionAgeMs: number;
  /** ...and its streams are cancelled this long after that GOAWAY. */
  maxConnectionAgeGraceMs: number;
  /** Concurrent streams one connection may open (SETTINGS_MAX_CONCURRENT_STREAMS). */
  maxConcurrentStreams: number;
  /** Open watch streams per service. */
  maxWatchers: number;
  /** Bytes a response stream may have waiting on a slow reader. */
  streamBufferBytes: number;
}

export const TRANSPORT_DEFAULTS: TransportLimits = {
  defaultDeadlineMs: 30_000,
  keepaliveTimeMs: 60_000,
  keepaliveTimeoutMs: 20_000,
  maxConnectionIdleMs: 300_000,
  maxConnectionAgeMs: 1_800_000,
  maxConnectionAgeGraceMs: 300_000,
  maxConcurrentStreams: 1000,
  maxWatchers: DEFAULT_MAX_WATCHERS,
  streamBufferBytes: DEFAULT_STREAM_BUFFER_BYTES,
};

const ENV_NAMES: Record<keyof TransportLimits, string> = {
  defaultDeadlineMs: 'BALLAST_GRPC_DEFAULT_DEADLINE_MS',
  keepaliveTimeMs: 'BALLAST_GRPC_KEEPALIVE_TIME_MS',
  keepaliveTimeoutMs: 'BALLAST_GRPC_KEEPALIVE_TIMEOUT_MS',
  maxConnectionIdleMs: 'BALLAST_GRPC_MAX_CONNECTION_IDLE_MS',
  maxConnectionAgeMs: 'BALLAST_GRPC_MAX_CONNECTION_AGE_MS',
  maxConnectionAgeGraceMs: 'BALLAST_GRPC_MAX_CONNECTION_AGE_GRACE_MS',
  maxConcurrentStreams: 'BALLAST_GRPC_MAX_CONCURRENT_STREAMS',
  maxWatchers: 'BALLAST_GRPC_MAX_WATCHERS',
  streamBufferBytes: 'BALLAST_GRPC_STREAM_BUFFER_BYTES',
};

/** The defaults with the environment's overrides; every bad value is reported at once. */
export function transportLimitsFromEnv(env: NodeJS.ProcessEnv = process.env): TransportLimits {
  const limits = { ...TRANSPORT_DEFAULTS };
  const problems: string[] = [];
  for (const key of Object.keys(ENV_NAMES) as Array<keyof TransportLimits>) {
    const raw = env[ENV_NAMES[key]];
    if (raw === undefined || raw === '') continue;
    const value = Number(raw);
    if (!Number.isSafeInteger(value) || value < 1) {
      problems.push(`${ENV_NAMES[key]}: expected a positive integer, got "${raw}"`);
    } else {
      limits[key] = value;
    }
  }
  if (problems.length > 0) throw new Error(`invalid gRPC transport settings: ${problems.join('; ')}`);
  return limits;
}

export function grpcServerChannelOptions(limits: TransportLimits): ChannelOptions {
  return {
    'grpc.keepalive_time_ms': limits.keepaliveTimeMs,
    'grpc.keepalive_timeout_ms': limits.keepaliveTimeoutMs,
    'grpc.max_connection_idle_ms': limits.maxConnectionIdleMs,
    'grpc.max_connection_age_ms': limits.maxConnectionAgeMs,
    'grpc.max_connection_age_grace_ms': limits.maxConnectionAgeGraceMs,
    'grpc.max_concurrent_streams': limits.maxConcurrentStreams,
  };
}
