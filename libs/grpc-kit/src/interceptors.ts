import { createHash, timingSafeEqual } from 'node:crypto';
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
import { metrics } from '@opentelemetry/api';
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
 * from go-grpc-prometheus (grpc_server_handled_total, grpc_server_handling_seconds).
 */
export function metricsInterceptor(): Interceptor {
  const meter = metrics.getMeter('@ballast/grpc-kit');
  const handled = meter.createCounter('grpc_server_handled_total', {
    description: 'RPCs completed on the server, by method and status code.',
  });
  const handling = meter.createHistogram('grpc_server_handling_seconds', {
    description: 'Time from receiving an RPC to sending its status.',
    unit: 's',
    advice: {
      explicitBucketBoundaries: [
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
      ],
    },
  });
  return async ({ method }, next) => {
    const started = process.hrtime.bigint();
    let code = 'OK';
    try {
      await next();
    } catch (err) {
      code = statusNames[toStatus(err).code] ?? 'UNKNOWN';
      throw err;
    } finally {
      const attributes = {
        grpc_service: method.parent.typeName,
        grpc_method: method.name,
        grpc_type: method.methodKind,
      };
      handled.add(1, { ...attributes, grpc_code: code });
      handling.record(Number(process.hrtime.bigint() - started) / 1e9, attributes);
    }
  };
}
