import { Health } from '@ballast/contracts/grpc/health/v1/health_pb.js';
import { Server, type ServerCredentials, type ServerInterceptor } from '@grpc/grpc-js';
import type { TracerProvider } from '@opentelemetry/api';
import { CallMetrics } from './call-metrics.js';
import { type RequestDecoder, serviceDefinition } from './definition.js';
import type { InternalErrorSink } from './errors.js';
import { HealthState, healthService, ServingStatus } from './health.js';
import { authInterceptor, firstByteDeadline } from './interceptors.js';
import { reflectionService } from './reflection.js';
import { adaptService, type Interceptor } from './server-adapter.js';
import { ServerSpans } from './server-span.js';
import { serverCredentialsFromEnv } from './tls.js';
import {
  grpcServerChannelOptions,
  type TransportLimits,
  transportLimitsFromEnv,
} from './transport-limits.js';
import type { RequestDecoders, ServiceDesc, ServiceImpl } from './types.js';
import { WatcherCounts } from './watchers.js';

export interface KitLogger extends InternalErrorSink {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

/** A service descriptor paired with its implementation; `serve()` keeps the pair typed. */
export interface ServiceRegistration {
  readonly service: ServiceDesc;
  readonly impl: object;
  /** By method name (as on the wire): hand-written decoders used instead of protobuf-es. */
  readonly requestDecoders?: Readonly<Record<string, RequestDecoder | undefined>>;
}

export interface ServeOptions<S extends ServiceDesc> {
  /**
   * Hand-written request decoders for hot methods, by the method's local name. Each must
   * decode exactly what protobuf-es would (test it against fromBinary) and throw on bytes it
   * cannot decode; the caller then gets INVALID_ARGUMENT as usual.
   */
  requestDecoders?: RequestDecoders<S>;
}

export function serve<S extends ServiceDesc>(
  service: S,
  impl: ServiceImpl<S>,
  options: ServeOptions<S> = {},
): ServiceRegistration {
  const byName: Record<string, RequestDecoder | undefined> = {};
  for (const method of service.methods) {
    const decoder = (options.requestDecoders as Record<string, RequestDecoder | undefined> | undefined)?.[
      method.localName
    ];
    if (decoder) byName[method.name] = decoder;
  }
  return { service, impl, requestDecoders: byName };
}

/** Undecodable requests reach the adapter, which answers INVALID_ARGUMENT (grpc-js would say INTERNAL). */
const LENIENT = { lenientRequests: true } as const;

export const DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

export interface GrpcServerOptions {
  services: ServiceRegistration[];
  host?: string;
  /** 0 picks a free port (tests); the bound port is on the result. */
  port: number;
  log: KitLogger;
  /** When set, every RPC but health needs `authorization: Bearer <token>`. */
  authToken?: string | undefined;
  /** Receive and send limit per message. grpc-js defaults to 4 MiB; raise it deliberately. */
  maxMessageBytes?: number;
  /** Deadline for unary and client-streaming calls whose client set none, from their first byte. */
  defaultDeadlineMs?: number;
  /** Keepalive, connection idle/age, stream and watcher caps; default: transportLimitsFromEnv(). */
  limits?: Partial<TransportLimits>;
  /** How long in-flight calls may take to finish on shutdown before they are cancelled. */
  shutdownGraceMs?: number;
  interceptors?: Interceptor[];
  /** Default: from BALLAST_TLS_* (see tls.ts); plaintext when none is set. */
  credentials?: ServerCredentials;
  /** Where the calls' server spans go; default: the global provider (the telemetry preload's). */
  tracerProvider?: TracerProvider;
}

export interface GrpcServer {
  readonly port: number;
  readonly health: HealthState;
  /** Marks every served service SERVING (or NOT_SERVING): call when stores answer and models are warm. */
  setReady(ready: boolean): void;
  /** Runs after the server has drained, in reverse order of registration (close queues, then the DB). */
  onShutdown(hook: () => Promise<void> | void): void;
  /** NOT_SERVING, stop accepting, drain in-flight calls within the grace period, then run the hooks. */
  shutdown(): Promise<void>;
}

function bind(server: Server, address: string, credentials: ServerCredentials): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(address, credentials, (err, port) => (err ? reject(err) : resolve(port)));
  });
}

export async function startGrpcServer(options: GrpcServerOptions): Promise<GrpcServer> {
  const maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  const limits: TransportLimits = {
    ...transportLimitsFromEnv(),
    ...options.limits,
    ...(options.defaultDeadlineMs !== undefined ? { defaultDeadlineMs: options.defaultDeadlineMs } : {}),
  };
  const grpcInterceptors: ServerInterceptor[] = [
    firstByteDeadline(limits.defaultDeadlineMs),
    ...(options.authToken ? [authInterceptor(options.authToken)] : []),
  ];
  const server = new Server({
    // Channelz keeps per-call bookkeeping that no Ballast tool reads (no channelz service is
    // registered): about 5 us of every call's CPU in inference's profile.
    'grpc.enable_channelz': 0,
    'grpc.max_receive_message_length': maxMessageBytes,
    'grpc.max_send_message_length': maxMessageBytes,
    ...grpcServerChannelOptions(limits),
    interceptors: grpcInterceptors,
  });
  const adapterOptions = {
    interceptors: options.interceptors ?? [],
    metrics: new CallMetrics(),
    spans: new ServerSpans(options.tracerProvider),
    defaultDeadlineMs: limits.defaultDeadlineMs,
    log: options.log,
    streamBufferBytes: limits.streamBufferBytes,
    watchers: new WatcherCounts(limits.maxWatchers),
  };

  const health = new HealthState();
  server.addService(
    serviceDefinition(Health, LENIENT),
    adaptService(Health, healthService(health), adapterOptions),
  );
  for (const { service, impl, requestDecoders } of options.services) {
    // grpc-js refuses a service with no methods; one whose RPCs have not landed yet is
    // still named in health and reflection, so probes and tooling can address it.
    if (service.methods.length > 0) {
      server.addService(
        serviceDefinition(service, { ...LENIENT, ...(requestDecoders ? { requestDecoders } : {}) }),
        adaptService(service, impl as ServiceImpl<typeof service>, adapterOptions),
      );
    }
    health.set(service.typeName, ServingStatus.NOT_SERVING);
  }
  reflectionService([Health, ...options.services.map((s) => s.service)]).addToServer(server, adapterOptions);

  const host = options.host ?? '0.0.0.0';
  const port = await bind(
    server,
    `${host}:${options.port}`,
    options.credentials ?? serverCredentialsFromEnv(),
  );
  health.set('', ServingStatus.SERVING);

  const hooks: Array<() => Promise<void> | void> = [];
  let shuttingDown: Promise<void> | undefined;
  const graceMs = options.shutdownGraceMs ?? 10_000;

  const drain = async () => {
    health.setAll(ServingStatus.NOT_SERVING);
    health.close();
    options.log.info({ graceMs }, 'draining gRPC server');
    const drained = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), graceMs);
      server.tryShutdown(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    if (!drained) {
      options.log.warn({ graceMs }, 'grace period over: cancelling the calls still running');
      server.forceShutdown();
    }
    for (const hook of hooks.reverse()) {
      try {
        await hook();
      } catch (err) {
        options.log.error({ err }, 'shutdown hook failed');
      }
    }
  };

  return {
    port,
    health,
    setReady(ready) {
      if (shuttingDown) return;
      const status = ready ? ServingStatus.SERVING : ServingStatus.NOT_SERVING;
      for (const { service } of options.services) health.set(service.typeName, status);
    },
    onShutdown(hook) {
      hooks.push(hook);
    },
    shutdown() {
      shuttingDown ??= drain();
      return shuttingDown;
    },
  };
}
