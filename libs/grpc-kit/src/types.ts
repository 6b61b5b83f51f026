import type {
  DescMessage,
  DescMethod,
  DescService,
  MessageInitShape,
  MessageShape,
} from '@bufbuild/protobuf';
import type { Metadata } from '@grpc/grpc-js';
import type { Span } from '@opentelemetry/api';
import type { Encoded } from './encoded.js';

/** A service descriptor as protoc-gen-es generates it: methods keyed by their local name. */
export type ServiceDesc = Omit<DescService, 'method'> & {
  method: Record<string, Pick<DescMethod, 'input' | 'output' | 'methodKind'> & DescMethod>;
};

/** What a handler knows about the call it serves, apart from the request itself. */
export interface HandlerContext {
  /**
   * Aborted when the client cancels, the deadline passes, or the server is forced down. Made
   * on first use: a handler that only checks whether the call is over reads `aborted`.
   */
  readonly signal: AbortSignal;
  /** Whether the call has been aborted, as `signal.aborted`, without making the signal. */
  readonly aborted: boolean;
  /** When the call must be answered by; undefined when neither client nor server set one. */
  readonly deadline: Date | undefined;
  readonly requestMetadata: Metadata;
  /**
   * Headers sent with the first response message (or with the status for unary calls). Made
   * on first use, as `responseTrailers`: most calls send neither.
   */
  readonly responseHeaders: Metadata;
  /** Trailers sent with the status. */
  readonly responseTrailers: Metadata;
  readonly peer: string;
  readonly method: DescMethod;
  /**
   * The call's server span, when the server traces calls: a handler may record on it
   * (attributes, events, links) instead of starting a span of its own. It ends when the call
   * is answered, which for a cancelled or timed-out call can be before the handler's work
   * ends: what is recorded after that is dropped (`isRecording()` tells).
   */
  readonly span?: Span | undefined;
}

type In<M extends { input: DescMessage }> = MessageShape<M['input']>;
/** What a handler answers: a message (or its init shape), or its bytes already encoded. */
type Out<M extends { output: DescMessage }> = MessageInitShape<M['output']> | Encoded<M['output']>;
type OutShape<M extends { output: DescMessage }> = MessageShape<M['output']>;
type Methods<S extends ServiceDesc> = S['method'];

/**
 * Handler signatures inferred from the descriptor: no glue is written per RPC.
 * Unary: request -> response. Server streaming: request -> async iterable of responses.
 * Client streaming: async iterable of requests -> response. Bidi: iterable -> iterable.
 */
export type MethodImpl<M extends { methodKind: string; input: DescMessage; output: DescMessage }> =
  M['methodKind'] extends 'unary'
    ? (request: In<M>, ctx: HandlerContext) => Promise<Out<M>> | Out<M>
    : M['methodKind'] extends 'server_streaming'
      ? (request: In<M>, ctx: HandlerContext) => AsyncIterable<Out<M>>
      : M['methodKind'] extends 'client_streaming'
        ? (requests: AsyncIterable<In<M>>, ctx: HandlerContext) => Promise<Out<M>>
        : (requests: AsyncIterable<In<M>>, ctx: HandlerContext) => AsyncIterable<Out<M>>;

export type ServiceImpl<S extends ServiceDesc> = {
  [K in keyof Methods<S>]: MethodImpl<Methods<S>[K]>;
};

/** Hand-written request decoders for some of a service's methods, by local name. */
export type RequestDecoders<S extends ServiceDesc> = {
  [K in keyof Methods<S>]?: (bytes: Uint8Array) => In<Methods<S>[K]>;
};

export interface CallOptions {
  /** Overrides the client's default deadline for this call (milliseconds from now). */
  timeoutMs?: number | undefined;
  metadata?: Metadata | undefined;
  signal?: AbortSignal | undefined;
}

export type MethodClient<M extends { methodKind: string; input: DescMessage; output: DescMessage }> =
  M['methodKind'] extends 'unary'
    ? (request: MessageInitShape<M['input']>, options?: CallOptions) => Promise<OutShape<M>>
    : M['methodKind'] extends 'server_streaming'
      ? (request: MessageInitShape<M['input']>, options?: CallOptions) => AsyncIterable<OutShape<M>>
      : M['methodKind'] extends 'client_streaming'
        ? (
            requests: AsyncIterable<MessageInitShape<M['input']>>,
            options?: CallOptions,
          ) => Promise<OutShape<M>>
        : (
            requests: AsyncIterable<MessageInitShape<M['input']>>,
            options?: CallOptions,
          ) => AsyncIterable<OutShape<M>>;

export type ServiceClient<S extends ServiceDesc> = {
  [K in keyof Methods<S>]: MethodClient<Methods<S>[K]>;
} & { close(): void };
