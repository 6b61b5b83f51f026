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
    // grpc-js has read the call's timeout header by now, and enforces a deadline it was sent:
    // such a call (most are) goes on as it is, without a layer of its own in the chain. (The
    // type asks for the wrapper class; grpc-js calls only the interface on what it gets.)
    if (method.responseStream || Number.isFinite(call.getDeadline())) return call as ServerInterceptingCall;
    let timer: NodeJS.Timeout | undefined;
    const stop = () => clearTimeout(timer);
    const responder = new ResponderBuilder()
      .withStart((next) => {
        timer = setTimeout(() => {
          call.sendStatus({
            code: status.DEADLINE_EXCEEDED,
            details: `deadline exceeded: the call set no deadline and was not answered within the default of ${defaultMs} ms from its first byte`,
          });
        }, defaultMs);
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
