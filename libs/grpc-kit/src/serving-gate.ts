import { unavailable } from './errors.js';
import type { ServiceRegistration } from './server.js';
import type { ServiceDesc, ServiceImpl } from './types.js';

/**
 * Every handler of `impl`, refusing with UNAVAILABLE (retry is safe) while `ready()` is
 * false: a service listens from its first second, so that health can say NOT_SERVING,
 * but no call reaches its tables before the migrations that create them have run.
 */
export function refuseUntilReady<S extends ServiceDesc>(
  service: S,
  impl: ServiceImpl<S>,
  ready: () => boolean,
  why: string,
): ServiceImpl<S> {
  const check = () => {
    if (!ready()) throw unavailable(why);
  };
  const gated: Record<string, unknown> = {};
  for (const method of service.methods) {
    const handler = (impl as unknown as Record<string, (...args: unknown[]) => unknown>)[method.localName];
    if (!handler) continue;
    gated[method.localName] =
      method.methodKind === 'server_streaming' || method.methodKind === 'bidi_streaming'
        ? async function* (...args: unknown[]) {
            check();
            yield* handler.apply(impl, args) as AsyncIterable<unknown>;
          }
        : async (...args: unknown[]) => {
            check();
            return handler.apply(impl, args);
          };
  }
  return gated as ServiceImpl<S>;
}

/** The same registration with every handler gated on `ready()` (see refuseUntilReady). */
export function gateRegistration(
  registration: ServiceRegistration,
  ready: () => boolean,
  why: string,
): ServiceRegistration {
  return {
    ...registration,
    impl: refuseUntilReady(
      registration.service,
      registration.impl as ServiceImpl<ServiceDesc>,
      ready,
      why,
    ) as object,
  };
}
