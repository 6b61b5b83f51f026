import { createHash, timingSafeEqual } from 'node:crypto';
import { type CounterSeries, type HistogramSeries, localMetrics } from '@ballast/telemetry';
import type { DescMethod } from '@bufbuild/protobuf';
import {
  type Metadata,
  ResponderBuilder,
  ServerInterceptingCall,
  type ServerInterceptingCallInterface,
  type ServerInterceptor,
  ServerListenerBuilder,
  type ServerMethodDefinition,
  status,
} from '@grpc/grpc-js';
import { toStatus } from './errors.js';
import type { Interceptor } from './server-adapter.js';

/** Paths any caller may reach without a token: orchestrators probe health unauthenticated. */
const OPEN_PREFIXES = ['/grpc.health.v1.Health/'];

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

/** Compares in constant time: hashing first makes the lengths equal, so length leaks nothing. */
export function tokenMatches(presented: string, expected: string): boolean {
  return timingSafeEqual(digest(presented), digest(expected));
}

function bearer(metadata: Metadata): string | undefined {
  const value = metadata.get('authorization')[0];
  if (typeof value !== 'string') return undefined;
  const match = /^Bearer\s+(.+)$/i.exec(value.trim());
  return match?.[1];
}

/**
 * Bearer-token auth as a grpc-js server interceptor, so it covers every service on the
 * server, whether the kit adapts it or not. Health stays open; reflection does not.
 */
export function authInterceptor(expectedToken: string): ServerInterceptor {
  return (method: ServerMethodDefinition<unknown, unknown>, call: ServerInterceptingCallInterface) => {
    if (OPEN_PREFIXES.some((prefix) => method.path.startsWith(prefix)))
      return new ServerInterceptingCall(call);
    const responder = new ResponderBuilder()
      .withStart((next) => {
        const listener = new ServerListenerBuilder()
          .withOnReceiveMetadata((metadata, mdNext) => {
            const token = bearer(metadata);
            if (token === undefined) {
              call.sendStatus({
                code: status.UNAUTHENTICATED,
                details: 'missing credentials: send metadata "authorization: Bearer <token>"',
              });
            } else if (!tokenMatches(token, expectedToken)) {
              call.sendStatus({ code: status.UNAUTHENTICATED, details: 'invalid bearer token' });
            } else {
              mdNext(metadata);
            }
          })
          .build();
        next(listener);
      })
      .build();
    return new ServerInterceptingCall(call, responder);
  };
}

/**
 * The default deadline, counted from a call's headers (its first byte) as grpc-js counts a
 * client's. The adapter's own deadline starts only when a handler runs, which for a unary
 * call is once its message is complete: a client that sends half a message, or opens a
 * client stream and goes quiet, would otherwise hold the call (and its buffers) forever.
 * Response streams are left alone: they are meant to stay open.
 */
export function firstByteDeadline(defaultMs: number): ServerInterceptor {
  return (method: ServerMethodDefinition<unknown, unknown>, call: ServerInterceptingCallInterface) => {
    if (method.responseStream) return new ServerInterceptingCall(call);
    let timer: NodeJS.Timeout | undefined;
    const stop = () => clearTimeout(timer);
    const responder = new ResponderBuilder()
      .withStart((next) => {
        if (!Number.isFinite(call.getDeadline())) {
          timer = setTimeout(() => {
            call.sendStatus({
              code: status.DEADLINE_EXCEEDED,
              details: `deadline exceeded: the call set no deadline and was not answered within the default of ${defaultMs} ms from its first byte`,
            });
          }, defaultMs);
        }
        next(new ServerListenerBuilder().withOnCancel(stop).build());
      })
      .withSendStatus((statusObject, next) => {
        stop();
        next(statusObject);
      })
      .build();
    return new ServerInterceptingCall(call, responder);
  };
}

const statusNames = Object.fromEntries(Object.entries(status).map(([name, code]) => [code, name])) as Record<
  number,
  string
>;

/**
 * Counts calls and times them per method and status, with the names operators know
 * from go-grpc-prometheus (grpc_server_handled_total, grpc_server_handling_seconds). Local
 * instruments (@ballast/telemetry's localMetrics): a call finds its series by its method's
 * descriptor, with no attributes hashed per call.
 */
export function metricsInterceptor(): Interceptor {
  const scope = '@ballast/grpc-kit';
  const handled = localMetrics().counter('grpc_server_handled_total', {
    scope,
    description: 'RPCs completed on the server, by method and status code.',
  });
  const handling = localMetrics().histogram('grpc_server_handling_seconds', {
    scope,
    description: 'Time from receiving an RPC to sending its status.',
    unit: 's',
    boundaries: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  });
  const byMethod = new Map<DescMethod, { handling: HistogramSeries; handled: Map<string, CounterSeries> }>();
  const seriesOf = (method: DescMethod) => {
    let series = byMethod.get(method);
    if (!series) {
      series = {
        handling: handling.series(methodAttributes(method)),
        handled: new Map(),
      };
      byMethod.set(method, series);
    }
    return series;
  };
  return async ({ method }, next) => {
    const started = performance.now();
    let code = 'OK';
    try {
      await next();
    } catch (err) {
      code = statusNames[toStatus(err).code] ?? 'UNKNOWN';
      throw err;
    } finally {
      const series = seriesOf(method);
      let count = series.handled.get(code);
      if (!count) {
        count = handled.series({ ...methodAttributes(method), grpc_code: code });
        series.handled.set(code, count);
      }
      count.add(1);
      series.handling.record((performance.now() - started) / 1000);
    }
  };
}

function methodAttributes(method: DescMethod) {
  return { grpc_service: method.parent.typeName, grpc_method: method.name, grpc_type: method.methodKind };
}
