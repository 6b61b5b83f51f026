import { isIP } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { DescMethod } from '@bufbuild/protobuf';
import { MethodOptions_IdempotencyLevel as Idempotency } from '@bufbuild/protobuf/wkt';
import {
  type ChannelCredentials,
  type ChannelOptions,
  Client,
  type ClientDuplexStream,
  type ClientReadableStream,
  type ClientWritableStream,
  type CallOptions as GrpcCallOptions,
  Metadata,
  type ServiceError,
  status,
} from '@grpc/grpc-js';
import { methodDefinition } from './definition.js';
import { FIELD_TRAILER, RULE_TRAILER } from './errors.js';
import { DEFAULT_MAX_MESSAGE_BYTES } from './server.js';
import { channelCredentialsFromEnv } from './tls.js';
import type { CallOptions, ServiceClient, ServiceDesc } from './types.js';

/** A failed call, with the structured parts of an INVALID_ARGUMENT read from the trailers. */
export class RpcError extends Error {
  override name = 'RpcError';
  readonly field: string | undefined;
  readonly rule: string | undefined;
  constructor(
    readonly code: status,
    readonly details: string,
    readonly metadata: Metadata,
  ) {
    super(`${status[code] ?? code}: ${details}`);
    const field = metadata.get(FIELD_TRAILER)[0];
    const rule = metadata.get(RULE_TRAILER)[0];
    this.field = typeof field === 'string' ? field : undefined;
    this.rule = typeof rule === 'string' ? rule : undefined;
  }
}

function toRpcError(err: ServiceError): RpcError {
  return new RpcError(err.code ?? status.UNKNOWN, err.details ?? err.message, err.metadata ?? new Metadata());
}

export interface ClientOptions {
  /** `host:port`, or several IP `host:port`s to balance over round robin. */
  address: string | string[];
  /**
   * Deadline for unary and client-streaming calls (ms; Infinity for none). Streams of
   * responses get none unless a call asks.
   */
  deadlineMs?: number;
  authToken?: string | undefined;
  maxMessageBytes?: number;
  /** Default: from BALLAST_TLS_* (see tls.ts); plaintext when none is set. */
  credentials?: ChannelCredentials;
  /** Methods (by proto name) safe to retry on UNAVAILABLE besides those the proto marks idempotent. */
  idempotentMethods?: string[];
  /** Retry idempotent calls on UNAVAILABLE (default true). */
  retry?: boolean;
  channelOptions?: ChannelOptions;
}

/** The grpc-js target for one or several addresses; several must be IP literals. */
export function channelTarget(address: string | string[]): string {
  const addresses = (Array.isArray(address) ? address : [address]).map((a) => a.trim()).filter(Boolean);
  if (addresses.length === 0) throw new Error('client address: at least one host:port is required');
  if (addresses.length === 1) {
    const only = addresses[0] as string;
    return /^[a-z0-9+]+:/i.test(only) && !/^[^:]+:\d+$/.test(only) ? only : `dns:${only}`;
  }
  const hosts = addresses.map((a) => {
    const match = /^\[?([^\]]+?)\]?:(\d+)$/.exec(a);
    const host = match?.[1] === 'localhost' ? '127.0.0.1' : match?.[1];
    if (!host || !isIP(host)) {
      throw new Error(`client address "${a}": several addresses must each be an IP literal with a port`);
    }
    return {
      family: isIP(host),
      text: isIP(host) === 6 ? `[${host}]:${match?.[2]}` : `${host}:${match?.[2]}`,
    };
  });
  const family = hosts[0]?.family;
  if (hosts.some((h) => h.family !== family)) throw new Error('client addresses: do not mix IPv4 and IPv6');
  return `${family === 6 ? 'ipv6' : 'ipv4'}:${hosts.map((h) => h.text).join(',')}`;
}

function isIdempotent(method: DescMethod, extra: Set<string>): boolean {
  return (
    extra.has(method.name) ||
    method.idempotency === Idempotency.NO_SIDE_EFFECTS ||
    method.idempotency === Idempotency.IDEMPOTENT
  );
}

/** Tries of an idempotent unary call that failed UNAVAILABLE after grpc-js's own retries. */
const COMMITTED_RETRIES = 2;
const COMMITTED_RETRY_BACKOFF_MS = 50;

/** grpc-js service config: round robin over every address, retries for idempotent calls only. */
export function serviceConfig(service: ServiceDesc, options: ClientOptions): string {
  const extra = new Set(options.idempotentMethods ?? []);
  const retryable = service.methods.filter((m) => isIdempotent(m, extra));
  const methodConfig =
    options.retry === false || retryable.length === 0
      ? []
      : [
          {
            name: retryable.map((m) => ({ service: service.typeName, method: m.name })),
            retryPolicy: {
              maxAttempts: 4,
              initialBackoff: '0.1s',
              maxBackoff: '2s',
              backoffMultiplier: 2,
              retryableStatusCodes: ['UNAVAILABLE'],
            },
          },
        ];
  return JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }], methodConfig });
}

/** Adapts a grpc-js readable stream to an async iterable that throws RpcError. */
async function* messages<T>(
  stream: ClientReadableStream<T> | ClientDuplexStream<unknown, T>,
): AsyncGenerator<T> {
  try {
    for await (const message of stream) yield message as T;
  } catch (err) {
    throw toRpcError(err as ServiceError);
  } finally {
    // A consumer that stops early must not leave the call running.
    stream.cancel();
  }
}

/** Restarts of a stream read by {@link readAll} after UNAVAILABLE. */
const STREAM_RESTARTS = 3;

/**
 * An idempotent (NO_SIDE_EFFECTS) server stream read to its end, started again from the
 * beginning when it fails UNAVAILABLE: a replica SIGKILLed mid-stream fails the call after
 * messages arrived, which neither grpc-js (the call is committed) nor the unary retry above
 * can repeat, and only a caller that keeps nothing of a failed read can. `open` starts the
 * call (round robin then picks a live replica); what a failed read delivered is dropped.
 * Any other error, or UNAVAILABLE past `restarts`, is thrown.
 */
export async function readAll<T>(
  open: () => AsyncIterable<T>,
  { restarts = STREAM_RESTARTS, backoffMs = COMMITTED_RETRY_BACKOFF_MS } = {},
): Promise<T[]> {
  for (let attempt = 0; ; attempt++) {
    const read: T[] = [];
    try {
      for await (const message of open()) read.push(message);
      return read;
    } catch (err) {
      if (!(err instanceof RpcError) || err.code !== status.UNAVAILABLE || attempt >= restarts) throw err;
      await sleep(backoffMs * 4 ** attempt);
    }
  }
}

async function pump<T>(
  source: AsyncIterable<T>,
  sink: ClientWritableStream<T> | ClientDuplexStream<T, unknown>,
) {
  try {
    for await (const message of source) {
      if (!sink.write(message)) await new Promise((resolve) => sink.once('drain', resolve));
    }
    sink.end();
  } catch (err) {
    sink.cancel();
    throw err;
  }
}

/**
 * A typed client for a service descriptor: one async method per RPC, named as in the
 * generated code (`client.check(...)`), with a default deadline on every bounded call.
 */
export function createClient<S extends ServiceDesc>(service: S, options: ClientOptions): ServiceClient<S> {
  const maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  const client = new Client(
    channelTarget(options.address),
    options.credentials ?? channelCredentialsFromEnv(),
    {
      'grpc.service_config': serviceConfig(service, options),
      'grpc.max_receive_message_length': maxMessageBytes,
      'grpc.max_send_message_length': maxMessageBytes,
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_timeout_ms': 10_000,
      'grpc.enable_retries': options.retry === false ? 0 : 1,
      ...options.channelOptions,
    },
  );
  const defaultDeadlineMs = options.deadlineMs ?? 10_000;
  const extraIdempotent = new Set(options.idempotentMethods ?? []);

  const prepare = (method: DescMethod, callOptions: CallOptions | undefined) => {
    const metadata = callOptions?.metadata?.clone() ?? new Metadata();
    if (options.authToken) metadata.set('authorization', `Bearer ${options.authToken}`);
    const bounded = method.methodKind === 'unary' || method.methodKind === 'client_streaming';
    const timeoutMs = callOptions?.timeoutMs ?? (bounded ? defaultDeadlineMs : undefined);
    // An infinite timeout means no deadline at all (long watches; the server's own default then applies).
    const grpcOptions: GrpcCallOptions =
      timeoutMs === undefined || !Number.isFinite(timeoutMs) ? {} : { deadline: Date.now() + timeoutMs };
    return { metadata, grpcOptions };
  };

  const cancelOn = (signal: AbortSignal | undefined, call: { cancel(): void }) => {
    if (!signal) return;
    if (signal.aborted) call.cancel();
    else signal.addEventListener('abort', () => call.cancel(), { once: true });
  };

  const methods: Record<string, unknown> = {};
  for (const method of service.methods) {
    const def = methodDefinition(method);
    const path = def.path;
    const ser = def.requestSerialize;
    const de = def.responseDeserialize;
    switch (method.methodKind) {
      case 'unary': {
        const once = (
          request: object,
          metadata: Metadata,
          grpcOptions: GrpcCallOptions,
          signal?: AbortSignal,
        ) =>
          new Promise((resolve, reject) => {
            const call = client.makeUnaryRequest(
              path,
              ser,
              de,
              request,
              metadata,
              grpcOptions,
              (err, response) => (err ? reject(toRpcError(err)) : resolve(response)),
            );
            cancelOn(signal, call);
          });
        // grpc-js retries an idempotent call only until the server has sent response
        // headers; a server that dies after that (kill -9 mid-answer) fails the call. For
        // idempotent methods the kit tries again, within the same deadline.
        const retryCommitted = options.retry !== false && isIdempotent(method, extraIdempotent);
        methods[method.localName] = async (request: object, callOptions?: CallOptions) => {
          const { metadata, grpcOptions } = prepare(method, callOptions);
          for (let attempt = 0; ; attempt++) {
            try {
              return await once(request, metadata.clone(), grpcOptions, callOptions?.signal);
            } catch (err) {
              const wait = COMMITTED_RETRY_BACKOFF_MS * 4 ** attempt;
              const deadline =
                grpcOptions.deadline === undefined ? Number.POSITIVE_INFINITY : Number(grpcOptions.deadline);
              if (
                !retryCommitted ||
                attempt >= COMMITTED_RETRIES ||
                !(err instanceof RpcError) ||
                err.code !== status.UNAVAILABLE ||
                callOptions?.signal?.aborted ||
                Date.now() + wait >= deadline
              )
                throw err;
              await sleep(wait);
            }
          }
        };
        break;
      }
      case 'server_streaming':
        methods[method.localName] = (request: object, callOptions?: CallOptions) => {
          const { metadata, grpcOptions } = prepare(method, callOptions);
          const call = client.makeServerStreamRequest(path, ser, de, request, metadata, grpcOptions);
          cancelOn(callOptions?.signal, call);
          return messages(call);
        };
        break;
      case 'client_streaming':
        methods[method.localName] = (requests: AsyncIterable<object>, callOptions?: CallOptions) => {
          const { metadata, grpcOptions } = prepare(method, callOptions);
          return new Promise((resolve, reject) => {
            const call = client.makeClientStreamRequest(
              path,
              ser,
              de,
              metadata,
              grpcOptions,
              (err, response) => (err ? reject(toRpcError(err)) : resolve(response)),
            );
            cancelOn(callOptions?.signal, call);
            pump(requests, call).catch(reject);
          });
        };
        break;
      case 'bidi_streaming':
        methods[method.localName] = (requests: AsyncIterable<object>, callOptions?: CallOptions) => {
          const { metadata, grpcOptions } = prepare(method, callOptions);
          const call = client.makeBidiStreamRequest(path, ser, de, metadata, grpcOptions);
          cancelOn(callOptions?.signal, call);
          pump(requests, call).catch(() => call.cancel());
          return messages(call);
        };
        break;
    }
  }
  methods.close = () => client.close();
  return methods as ServiceClient<S>;
}
