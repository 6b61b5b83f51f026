import { setTimeout as sleep } from 'node:timers/promises';
import { registerProcessMetrics, shutdownTelemetry, startHttpServer } from '@ballast/telemetry';
import { metrics } from '@opentelemetry/api';
import { exposureWarning, metricsAuthorizer } from './exposure.js';
import { exitOnSignals } from './lifecycle.js';
import { type GrpcServer, type KitLogger, type ServiceRegistration, startGrpcServer } from './server.js';
import { gateRegistration } from './serving-gate.js';

/** Something the service cannot serve without (its database, Redis); checked for readiness. */
export interface Dependency {
  name: string;
  check: () => Promise<unknown>;
}

export interface RunServiceOptions {
  name: string;
  log: KitLogger;
  /** Omit for a service with no gRPC API (the trainer). */
  grpc?: {
    host: string;
    port: number;
    services: ServiceRegistration[];
    authToken?: string | undefined;
    maxMessageBytes?: number;
  };
  http: { host: string; port: number; routes?: Parameters<typeof startHttpServer>[0]['routes'] };
  dependencies: Dependency[];
  /**
   * One-time work before the service may turn ready (migrations). Retried with the
   * readiness checks until it succeeds, so a database that is down at start delays
   * readiness instead of crashing the process. Until it has succeeded, health says
   * NOT_SERVING and every RPC of `grpc.services` answers UNAVAILABLE (retry is safe):
   * no call reaches tables the migrations have not created yet.
   */
  prepare?: () => Promise<unknown>;
  /** Closed after the server has drained, in this order (queues before the database). */
  close: Array<() => Promise<unknown> | unknown>;
  shutdownGraceMs: number;
  readinessIntervalMs?: number;
  /** Exit the process on SIGTERM/SIGINT after draining (default true; tests pass false). */
  handleSignals?: boolean;
}

export interface RunningService {
  readonly grpcPort: number | undefined;
  readonly httpPort: number;
  readonly grpc: GrpcServer | undefined;
  isReady(): boolean;
  shutdown(): Promise<void>;
}

async function failedDependencies(dependencies: Dependency[], timeoutMs: number): Promise<string[]> {
  const results = await Promise.all(
    dependencies.map(async ({ name, check }) => {
      try {
        await Promise.race([
          check(),
          sleep(timeoutMs).then(() => Promise.reject(new Error(`no answer in ${timeoutMs} ms`))),
        ]);
        return undefined;
      } catch (err) {
        return `${name}: ${err instanceof Error ? err.message : String(err)}`;
      }
    }),
  );
  return results.filter((r): r is string => r !== undefined);
}

/**
 * The shape every Ballast service runs in: gRPC (health, reflection, interceptors) and
 * HTTP (/metrics, /healthz, /readyz) ports, readiness that follows the dependencies
 * (so a service reports NOT_SERVING while its database is down and recovers by itself),
 * and a graceful shutdown that drains calls before closing queues and stores.
 */
export async function runService(options: RunServiceOptions): Promise<RunningService> {
  const { log } = options;
  let ready = false;
  let stopping = false;
  // The trainer has no gRPC port but the same token, for its /metrics.
  const authToken = options.grpc ? options.grpc.authToken : process.env.BALLAST_AUTH_TOKEN || undefined;
  const authorize = metricsAuthorizer(process.env, authToken);
  let prepared = options.prepare === undefined;
  const notPrepared = `the ${options.name} is starting: its database schema is not migrated yet; retry`;

  const grpc = options.grpc
    ? await startGrpcServer({
        services: options.prepare
          ? options.grpc.services.map((s) => gateRegistration(s, () => prepared, notPrepared))
          : options.grpc.services,
        host: options.grpc.host,
        port: options.grpc.port,
        log,
        authToken: options.grpc.authToken,
        ...(options.grpc.maxMessageBytes ? { maxMessageBytes: options.grpc.maxMessageBytes } : {}),
        shutdownGraceMs: options.shutdownGraceMs,
      })
    : undefined;
  const http = await startHttpServer({
    host: options.http.host,
    port: options.http.port,
    ready: () => ready,
    ...(options.http.routes ? { routes: options.http.routes } : {}),
    ...(authorize ? { authorize } : {}),
  });
  const exposed = exposureWarning(
    [...(options.grpc ? [options.grpc.host] : []), options.http.host],
    authToken,
  );
  if (exposed) log.warn({ service: options.name }, exposed);

  const interval = options.readinessIntervalMs ?? 2_000;
  // Signals are handled from here on: a SIGTERM while the first readiness check waits on
  // an unreachable dependency still drains and exits cleanly.
  if (options.handleSignals !== false) exitOnSignals(() => shutdown(), log);
  const checkReadiness = async () => {
    const failed = await failedDependencies(options.dependencies, Math.min(interval, 2_000));
    if (!prepared && failed.length === 0 && options.prepare) {
      try {
        await options.prepare();
        prepared = true;
      } catch (err) {
        failed.push(`preparing: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    const nowReady = failed.length === 0;
    if (stopping) return;
    if (nowReady !== ready) {
      if (nowReady) log.info({ service: options.name }, 'ready');
      else log.warn({ service: options.name, failed }, `not ready: ${failed.join('; ')}`);
    }
    ready = nowReady;
    grpc?.setReady(ready);
  };
  // Every service's CPU, memory and event-loop lag, read by monitor's operations view.
  const stopProcessMetrics = registerProcessMetrics();
  // Readiness as a metric too, so dashboards and alerts see what the probes see.
  metrics
    .getMeter('@ballast/grpc-kit')
    .createObservableGauge('ballast_service_ready', {
      description: '1 while the service is ready to serve (its dependencies answer), else 0.',
    })
    .addCallback((result) => result.observe(ready ? 1 : 0, { service: options.name }));

  const stopWatching = new AbortController();
  const watcher = (async () => {
    while (!stopping) {
      await checkReadiness();
      await sleep(interval, undefined, { signal: stopWatching.signal }).catch(() => {});
    }
  })();

  let shutdownPromise: Promise<void> | undefined;
  const shutdown = () => {
    shutdownPromise ??= (async () => {
      stopping = true;
      ready = false;
      stopWatching.abort();
      await grpc?.shutdown();
      await watcher.catch(() => {});
      await http.close();
      for (const close of options.close) {
        try {
          await close();
        } catch (err) {
          log.error({ err }, 'closing a dependency failed');
        }
      }
      stopProcessMetrics();
      await shutdownTelemetry();
      log.info({ service: options.name }, 'stopped');
    })();
    return shutdownPromise;
  };

  log.info(
    { service: options.name, grpcPort: grpc?.port, httpPort: http.port, ready },
    `${options.name} listening${grpc ? ` on gRPC ${options.grpc?.host}:${grpc.port}` : ''}, HTTP ${options.http.host}:${http.port}`,
  );
  return {
    grpcPort: grpc?.port,
    httpPort: http.port,
    grpc,
    isReady: () => ready,
    shutdown,
  };
}
