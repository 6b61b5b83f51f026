import { durationMs, int, oneOf, redisUrl, str, url } from './fields.js';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** grpc-js's own receive limit; raising it (for tensors) is a deliberate per-deployment choice. */
export const DEFAULT_GRPC_MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

/** Variables every service reads. Spread it into a service's own shape. */
export const commonConfig = {
  BALLAST_ENV: str().default('development'),
  /** One server, a cluster or sentinels: the forms are in redis-url.ts. */
  BALLAST_REDIS_URL: redisUrl().default('redis://127.0.0.1:6379'),
  /** Unset: embedded PGlite under BALLAST_DATA_DIR. */
  BALLAST_DATABASE_URL: url({ protocols: ['postgres:', 'postgresql:'] }).optional(),
  BALLAST_DATA_DIR: str().default('.ballast'),
  BALLAST_AUTH_TOKEN: str().optional(),
  BALLAST_LOG_LEVEL: oneOf(LOG_LEVELS).default('info'),
  BALLAST_SHUTDOWN_GRACE_MS: durationMs().default(10_000),
  BALLAST_GRPC_MAX_MESSAGE_BYTES: int({ min: 1 }).default(DEFAULT_GRPC_MAX_MESSAGE_BYTES),
  BALLAST_GRPC_HOST: str().default('0.0.0.0'),
  // gRPC TLS, read by @ballast/grpc-kit for every server and client (PEM file paths or PEM text).
  /** This process's certificate chain; with BALLAST_TLS_KEY, its gRPC server serves TLS only. */
  BALLAST_TLS_CERT: str().optional(),
  BALLAST_TLS_KEY: str().optional(),
  /** CA bundle that signs peers: clients verify servers with it; set on a server, client certificates are required (mTLS). */
  BALLAST_TLS_CA: str().optional(),
  /** Identity a client presents under mTLS; default BALLAST_TLS_CERT / BALLAST_TLS_KEY. */
  BALLAST_TLS_CLIENT_CERT: str().optional(),
  BALLAST_TLS_CLIENT_KEY: str().optional(),
};
