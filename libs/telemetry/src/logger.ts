import { hostname } from 'node:os';
import { isSpanContextValid, trace } from '@opentelemetry/api';
import pino, { type DestinationStream, type LevelWithSilentOrString, type Logger } from 'pino';

export type { Logger } from 'pino';

export interface LoggerOptions {
  /** Stamped on every line as `service`. */
  service: string;
  level?: LevelWithSilentOrString;
  /** Where lines go; stdout when omitted. */
  destination?: DestinationStream;
}

const SECRET_KEYS = [
  'authorization',
  'Authorization',
  'cookie',
  'token',
  'accessToken',
  'access_token',
  'password',
  'secret',
  'apiKey',
  'api_key',
  'BALLAST_AUTH_TOKEN',
];
// Connection strings carry passwords in their userinfo; the rest of them is worth keeping.
const URL_KEYS = ['BALLAST_DATABASE_URL', 'BALLAST_REDIS_URL', 'databaseUrl', 'redisUrl'];

// pino's paths match at a fixed depth: the key itself, one level down (`config.token`,
// `metadata.authorization`) and request headers.
const atDepths = (keys: string[]) => keys.flatMap((key) => [key, `*.${key}`]);
const REDACT_PATHS = [
  ...atDepths(SECRET_KEYS),
  ...atDepths(URL_KEYS),
  'req.headers.authorization',
  'req.headers.cookie',
  '*.headers.authorization',
];
const REDACTED = '[Redacted]';

function censor(value: unknown, path: string[]): unknown {
  const key = path.at(-1);
  if (key === undefined || !URL_KEYS.includes(key)) return REDACTED;
  if (typeof value !== 'string' || !URL.canParse(value)) return REDACTED;
  const url = new URL(value);
  if (url.password) url.password = '***';
  return url.toString();
}

/**
 * A JSON logger for a service. Every line carries `service` and, inside an active span, its
 * `trace_id`/`span_id`, so a line in the logs leads to its trace in Jaeger and back.
 */
export function createLogger(options: LoggerOptions): Logger {
  const { service, level = 'info', destination } = options;
  return pino(
    {
      level,
      base: { service, pid: process.pid, hostname: hostname() },
      timestamp: pino.stdTimeFunctions.isoTime,
      // Level names, not numbers: what operators grep for and what log stores index.
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: REDACT_PATHS, censor },
      mixin() {
        const context = trace.getActiveSpan()?.spanContext();
        if (!context || !isSpanContextValid(context)) return {};
        return {
          trace_id: context.traceId,
          span_id: context.spanId,
          trace_flags: context.traceFlags.toString(16).padStart(2, '0'),
        };
      },
    },
    destination,
  );
}
