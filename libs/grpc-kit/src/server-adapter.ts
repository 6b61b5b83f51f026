import type { DescMethod } from '@bufbuild/protobuf';
import {
  Metadata,
  type ServerDuplexStream,
  type ServerReadableStream,
  type ServerUnaryCall,
  type ServerWritableStream,
  status as Status,
  type sendUnaryData,
  type UntypedHandleCall,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import type { CallMetrics } from './call-metrics.js';
import { UndecodableRequest } from './definition.js';
import { BallastError, type InternalErrorSink, toStatus } from './errors.js';
import type { ServerCall, ServerSpans } from './server-span.js';
import { BoundedStreamWriter, DEFAULT_STREAM_BUFFER_BYTES } from './stream-writer.js';
import type { HandlerContext, ServiceDesc, ServiceImpl } from './types.js';
import { isWatch, type WatcherCounts } from './watchers.js';

/** What an interceptor sees of a call. */
export interface CallInfo {
  readonly method: DescMethod;
  readonly ctx: HandlerContext;
}

/**
 * Server middleware: runs around the whole call (for streams, until the last message).
 * Throw to refuse the call; the thrown error becomes its status.
 */
export type Interceptor = (call: CallInfo, next: () => Promise<void>) => Promise<void>;

export interface AdapterOptions {
  interceptors: Interceptor[];
  /** Deadline applied to unary and client-streaming calls whose client set none. */
  defaultDeadlineMs: number | undefined;
  log: InternalErrorSink;
  /** Bytes a response stream may have waiting on a slow reader (default 256 KiB). */
  streamBufferBytes?: number;
  /** Caps open watch streams per service; absent, watches are not counted. */
  watchers?: WatcherCounts;
  /** Counts and times every call as it is answered; absent, nothing is recorded. */
  metrics?: CallMetrics;
  /** Starts a server span per call and runs the call with it active; absent, no spans. */
  spans?: ServerSpans;
}

type AnyCall =
  | ServerUnaryCall<object, object>
  | ServerReadableStream<object, object>
  | ServerWritableStream<object, object>
  | ServerDuplexStream<object, object>;

function compose(interceptors: Interceptor[], call: CallInfo, handler: () => Promise<void>): Promise<void> {
  const dispatch = (i: number): Promise<void> => {
    const interceptor = interceptors[i];
    return interceptor ? interceptor(call, () => dispatch(i + 1)) : handler();
  };
  return dispatch(0);
}

function clientDeadline(call: AnyCall): number {
  const deadline = call.getDeadline();
  return deadline instanceof Date ? deadline.getTime() : deadline;
}

/**
 * Builds the handler context and its abort signal. The signal fires on client
 * cancellation and at the deadline, so queued or slow work can stop early. `race` settles
 * a handler's work, or rejects as soon as the call aborts, so that a handler that ignores the
 * signal cannot hold the call.
 *
 * The AbortController and the response metadata are made only when something asks for them:
 * at thousands of calls a second, a controller and two Metadata per call were a steady part
 * of what the server allocated (heap profile of inference at c=16), and most calls use none.
 */
function makeContext(call: AnyCall, method: DescMethod, options: AdapterOptions, traced?: ServerCall) {
  let controller: AbortController | undefined;
  let abortedBy: BallastError | undefined;
  // The race's reject, called by the two aborts below: cheaper per call than a listener on
  // the signal (EventTarget's addEventListener validates its options on every call).
  let abortRace: ((reason: unknown) => void) | undefined;
  const abort = (reason: BallastError) => {
    if (abortedBy) return;
    abortedBy = reason;
    controller?.abort(reason);
    abortRace?.(reason);
  };
  const bounded = method.methodKind === 'unary' || method.methodKind === 'client_streaming';
  let deadline = clientDeadline(call);
  if (!Number.isFinite(deadline) && bounded && options.defaultDeadlineMs !== undefined) {
    deadline = Date.now() + options.defaultDeadlineMs;
  }
  const timer = Number.isFinite(deadline)
    ? setTimeout(
        () => abort(new BallastError('deadline_exceeded', 'deadline exceeded')),
        Math.max(0, deadline - Date.now()),
      )
    : undefined;
  const onCancelled = () => abort(new BallastError('cancelled', 'call cancelled by the client'));
  const events = call as unknown as NodeJS.EventEmitter;
  events.on('cancelled', onCancelled);
  let headers: Metadata | undefined;
  let trailers: Metadata | undefined;
  const ctx: HandlerContext = {
    get signal() {
      if (!controller) {
        controller = new AbortController();
        if (abortedBy) controller.abort(abortedBy);
      }
      return controller.signal;
    },
    get aborted() {
      return abortedBy !== undefined;
    },
    deadline: Number.isFinite(deadline) ? new Date(deadline) : undefined,
    requestMetadata: call.metadata,
    get responseHeaders() {
      headers ??= new Metadata();
      return headers;
    },
    get responseTrailers() {
      trailers ??= new Metadata();
      return trailers;
    },
    peer: call.getPeer(),
    method,
    span: traced?.span,
  };
  const dispose = () => {
    clearTimeout(timer);
    events.removeListener('cancelled', onCancelled);
  };
  const race = <T>(work: Promise<T>): Promise<T> => {
    if (abortedBy) {
      work.catch(() => {});
      return Promise.reject(abortedBy);
    }
    return new Promise<T>((resolve, reject) => {
      abortRace = reject;
      work.then(resolve, reject);
    });
  };
  return {
    ctx,
    dispose,
    race,
    /** Why the call was aborted (cancelled, deadline), if it was. */
    abortedBy: () => abortedBy,
    /** Sends the response headers, if a handler or interceptor set any. */
    sendHeaders: () => {
      if (headers && Object.keys(headers.getMap()).length > 0) call.sendMetadata(headers);
    },
    /** The trailers a handler or interceptor asked for, if any. */
    trailers: () => trailers,
    /** Those trailers with a status's own merged in. */
    trailersWith: (status: Metadata): Metadata => {
      if (!trailers) return status;
      trailers.merge(status);
      return trailers;
    },
  };
}

/** A request that did not decode is the caller's fault: INVALID_ARGUMENT, never INTERNAL. */
function decoded(message: unknown): object {
  if (message instanceof UndecodableRequest) {
    throw new BallastError(
      'invalid_argument',
      `request is not a valid ${message.typeName}: ${message.reason}`,
    );
  }
  return message as object;
}

async function* readRequests(
  stream: ServerReadableStream<object, object> | ServerDuplexStream<object, object>,
) {
  // A plain for-await destroys the stream when reading ends, which for a bidi call would
  // also destroy the writable half before the status is sent.
  for await (const message of stream.iterator({ destroyOnReturn: false })) yield decoded(message);
}

type Handler = (...args: never[]) => unknown;

function adaptMethod(method: DescMethod, handler: Handler, options: AdapterOptions): UntypedHandleCall {
  const fail = (err: unknown, context: ReturnType<typeof makeContext>) => {
    // Once the client has cancelled or the deadline has passed, whatever the handler threw
    // (a stream closed under it: "Premature close") follows from that; it is not a bug to log.
    const cause = context.abortedBy() ?? err;
    const status = toStatus(cause, options.log, `${method.parent.typeName}/${method.name}`);
    return { code: status.code, details: status.details, metadata: context.trailersWith(status.metadata) };
  };
  /** What every call does as it is answered: count and time it, end its span. */
  const answered = (started: number, traced: ServerCall | undefined, code: Status, details?: string) => {
    options.metrics?.record(method, code, started);
    if (traced) options.spans?.end(traced, code, details);
  };
  const { spans } = options;
  switch (method.methodKind) {
    case 'unary':
    case 'client_streaming':
      return (
        call: ServerUnaryCall<object, object> | ServerReadableStream<object, object>,
        callback: sendUnaryData<object>,
      ) => {
        const started = performance.now();
        const traced = spans?.start(method, call.metadata);
        const context = makeContext(call, method, options, traced);
        const { ctx, dispose, race } = context;
        const input =
          method.methodKind === 'unary'
            ? (call as ServerUnaryCall<object, object>).request
            : readRequests(call as ServerReadableStream<object, object>);
        let response: object | undefined;
        const handle = (): void => {
          compose(options.interceptors, { method, ctx }, async () => {
            const run = handler as (r: unknown, c: HandlerContext) => Promise<object>;
            // then() turns a synchronous throw into a rejection the chain maps to a status.
            response = await race(
              Promise.resolve().then(() => run(method.methodKind === 'unary' ? decoded(input) : input, ctx)),
            );
          })
            .then(() => {
              context.sendHeaders();
              callback(null, response, context.trailers());
              answered(started, traced, Status.OK);
            })
            .catch((err: unknown) => {
              const failed = fail(err, context);
              callback(failed);
              answered(started, traced, failed.code, failed.details);
            })
            .finally(dispose);
        };
        if (traced && spans) spans.run(traced, handle);
        else handle();
      };
    case 'server_streaming':
    case 'bidi_streaming':
      return (call: ServerWritableStream<object, object> | ServerDuplexStream<object, object>) => {
        const started = performance.now();
        const traced = spans?.start(method, call.metadata);
        const context = makeContext(call, method, options, traced);
        const { ctx, dispose } = context;
        const input =
          method.methodKind === 'server_streaming'
            ? (call as ServerWritableStream<object, object>).request
            : readRequests(call as ServerDuplexStream<object, object>);
        let headersSent = false;
        const writer = new BoundedStreamWriter(
          call,
          method.output,
          options.streamBufferBytes ?? DEFAULT_STREAM_BUFFER_BYTES,
        );
        let leaveWatch: (() => void) | undefined;
        const handle = (): void => {
          compose(options.interceptors, { method, ctx }, async () => {
            if (isWatch(method) && options.watchers) leaveWatch = options.watchers.enter(method);
            const request = method.methodKind === 'server_streaming' ? decoded(input) : input;
            const responses = (handler as (r: unknown, c: HandlerContext) => AsyncIterable<object>)(
              request,
              ctx,
            );
            for await (const message of responses) {
              if (!headersSent) {
                context.sendHeaders();
                headersSent = true;
              }
              await writer.write(message, ctx.signal);
            }
          })
            .then(() => {
              call.end(context.trailers());
              answered(started, traced, Status.OK);
            })
            .catch((err: unknown) => {
              const failed = fail(err, context);
              call.emit('error', failed);
              answered(started, traced, failed.code, failed.details);
            })
            .finally(() => {
              leaveWatch?.();
              dispose();
            });
        };
        if (traced && spans) spans.run(traced, handle);
        else handle();
      };
  }
}

/** Binds a typed implementation to grpc-js handlers, one per method of the descriptor. */
export function adaptService<S extends ServiceDesc>(
  service: S,
  impl: ServiceImpl<S>,
  options: AdapterOptions,
): UntypedServiceImplementation {
  const handlers: UntypedServiceImplementation = {};
  for (const method of service.methods) {
    const handler = (impl as Record<string, Handler | undefined>)[method.localName];
    if (typeof handler !== 'function') {
      throw new Error(
        `${service.typeName}: no handler for ${method.name} (expected impl.${method.localName})`,
      );
    }
    handlers[method.name] = adaptMethod(method, handler.bind(impl) as Handler, options);
  }
  return handlers;
}
