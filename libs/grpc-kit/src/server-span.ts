import { GRPC_SERVER_ERROR_CODES } from '@ballast/telemetry';
import type { DescMethod } from '@bufbuild/protobuf';
import type { Metadata, status } from '@grpc/grpc-js';
import {
  type Attributes,
  type Context,
  context,
  propagation,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type TextMapGetter,
  type Tracer,
  type TracerProvider,
  trace,
} from '@opentelemetry/api';

/** Reads the W3C trace context (and baggage) a client put in the call's metadata. */
const metadataGetter: TextMapGetter<Metadata> = {
  get(carrier, key) {
    const values = carrier.get(key);
    return values.length === 0 ? undefined : values.map(String);
  },
  keys: (carrier) => Object.keys(carrier.getMap()),
};

interface MethodSpan {
  readonly name: string;
  readonly attributes: Attributes;
}

/** A call's server span and the context its handler runs in (the span as active). */
export interface ServerCall {
  readonly span: Span;
  readonly context: Context;
}

/**
 * Server spans, one per call, as @opentelemetry/instrumentation-grpc names them
 * (`grpc.<package.Service>/<Method>`, kind SERVER, rpc.system/service/method, then
 * rpc.grpc.status_code), children of the caller's span when its metadata carries one. The
 * adapter starts and ends them because it knows the call's method and status without
 * patching grpc-js; its status follows OpenTelemetry's gRPC conventions: ERROR only for the
 * server's own failures (GRPC_SERVER_ERROR_CODES), a caller's error leaves it unset.
 */
export class ServerSpans {
  readonly #tracer: Tracer;
  readonly #methods = new Map<DescMethod, MethodSpan>();

  /** `provider` defaults to the global one (the telemetry preload registers it). */
  constructor(provider: TracerProvider = trace.getTracerProvider()) {
    this.#tracer = provider.getTracer('@ballast/grpc-kit');
  }

  start(method: DescMethod, metadata: Metadata): ServerCall {
    let known = this.#methods.get(method);
    if (!known) {
      known = {
        name: `grpc.${method.parent.typeName}/${method.name}`,
        attributes: {
          'rpc.system': 'grpc',
          'rpc.service': method.parent.typeName,
          'rpc.method': method.name,
        },
      };
      this.#methods.set(method, known);
    }
    const parent = propagation.extract(ROOT_CONTEXT, metadata, metadataGetter);
    const span = this.#tracer.startSpan(
      known.name,
      { kind: SpanKind.SERVER, attributes: known.attributes },
      parent,
    );
    return { span, context: trace.setSpan(parent, span) };
  }

  /** Ends the call's span with its status code (and, for the server's failures, the message). */
  end(call: ServerCall, code: status, details?: string): void {
    const { span } = call;
    span.setAttribute('rpc.grpc.status_code', code);
    if (GRPC_SERVER_ERROR_CODES.has(code)) {
      span.setStatus({ code: SpanStatusCode.ERROR, ...(details ? { message: details } : {}) });
    }
    span.end();
  }

  /** Runs `fn` with the call's span active, so the handler's own spans and calls are its children. */
  run<T>(call: ServerCall, fn: () => T): T {
    return context.with(call.context, fn);
  }
}
