import { GrpcInstrumentation, type GrpcInstrumentationConfig } from '@opentelemetry/instrumentation-grpc';

/** grpc-js's `Server.prototype.register`, where the instrumentation hooks every server handler. */
function isServerRegister(nodule: object, name: PropertyKey): boolean {
  return name === 'register' && typeof (nodule as { bindAsync?: unknown }).bindAsync === 'function';
}

/**
 * @opentelemetry/instrumentation-grpc on the client side only. Server spans are started by
 * @ballast/grpc-kit's adapter (server-span.ts), which knows each call's method and status and
 * adds one span and one context switch per call. The instrumentation's server patch cost
 * more than the rest of tracing together (a JSON.stringify for a debug line, a wrap of the
 * call's sendMetadata, the call's emitter bound to the context, two context switches: README,
 * "Traces and metrics"), and it has no switch of its own: `ignoreGrpcMethods` matches a
 * method's name on both sides. So its wrap (and unwrap) of `Server.prototype.register` is
 * passed over, and every client patch is applied as usual.
 */
export class GrpcClientInstrumentation extends GrpcInstrumentation {
  constructor(config?: GrpcInstrumentationConfig) {
    super(config);
    const wrap = this._wrap;
    const unwrap = this._unwrap;
    this._wrap = ((nodule, name, wrapper) =>
      isServerRegister(nodule, name) ? undefined : wrap(nodule, name, wrapper)) as typeof wrap;
    this._unwrap = ((nodule, name) => {
      if (!isServerRegister(nodule, name)) unwrap(nodule, name);
    }) as typeof unwrap;
  }
}
