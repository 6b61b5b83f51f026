import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from '@ballast/contracts/grpc/health/v1/health_pb.js';
import type { ChannelCredentials } from '@grpc/grpc-js';
import { createClient } from '../client.js';
import { freePort } from './ports.js';

// A built service started as its own process, the way `ballast up` starts it, for tests and
// benchmarks: telemetry preloaded, loopback ports of its own, and "started" meaning ready
// (grpc.health.v1 SERVING, or an HTTP probe answering), never a fixed sleep.

export { ServingStatus };

/** How long a start, a restart or a waitHealth waits for readiness unless told otherwise. */
export const READY_TIMEOUT_MS = 120_000;
/** How long stop() waits for the process to exit after its signal before it sends SIGKILL. */
export const STOP_TIMEOUT_MS = 30_000;
const POLL_MS = 100;
const OUTPUT_LIMIT = 8 << 20;

/** Readiness: a grpc.health.v1 service name ('' is the server as a whole), or an HTTP path on the HTTP port. */
export type Readiness = string | { http: string };

export interface ServiceProcessOptions {
  /** The service's package, e.g. '@ballast/ingest'; its `entry` is run, no code of it is imported. */
  package: string;
  /** The entry point inside the package (default 'dist/main.js', so the package must be built). */
  entry?: string;
  /** What to wait for before the start resolves; false returns once spawned (wait with ready()). */
  ready: Readiness | false;
  /** Variables over the environment: the parent's, or only PATH and HOME with inheritEnv: false. */
  env?: Record<string, string>;
  inheritEnv?: boolean;
  /** Ports to pass (each one not given is a freePort()). */
  ports?: { grpc?: number; http?: number };
  /** The variables the ports are passed in (default BALLAST_<NAME>_GRPC_PORT and _HTTP_PORT). */
  portEnv?: { grpc: string; http: string };
  /** Preload @ballast/telemetry/register, as the service's image does (default true). */
  telemetry?: boolean;
  /** 'capture' (default) keeps stdout and stderr for output() and error messages; 'inherit' passes them through. */
  stdio?: 'capture' | 'inherit' | 'ignore';
  /** Readiness deadline of the start and of each restart (default READY_TIMEOUT_MS). */
  readyTimeoutMs?: number;
  /** stop(): how long to wait for the exit before SIGKILL (default STOP_TIMEOUT_MS). */
  stopTimeoutMs?: number;
  /** Where the package is resolved from (default the working directory, then this module). */
  resolveFrom?: string;
}

export interface ServiceProcess {
  /** The package's short name: 'ingest' for '@ballast/ingest'. */
  readonly name: string;
  /** The current process (a new one after restart()). */
  readonly child: ChildProcess;
  readonly grpcPort: number;
  readonly httpPort: number;
  /** 127.0.0.1:<grpcPort> */
  readonly address: string;
  /** http://127.0.0.1:<httpPort> */
  readonly httpUrl: string;
  /** The variables set over the inherited environment, ports included. */
  readonly env: Readonly<Record<string, string>>;
  /** What it wrote to stdout and stderr over all its lives (the last 8 MiB), with stdio 'capture'. */
  output(): string;
  alive(): boolean;
  /** Waits until `what` (default the start's readiness) is ready; the milliseconds it took. */
  ready(what?: Readiness, timeoutMs?: number): Promise<number>;
  /** Sends `signal` (default SIGTERM), waits for the exit (SIGKILL after stopTimeoutMs); the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  /** Sends `signal` (default SIGKILL, a crash) and waits for the exit; the exit code. */
  kill(signal?: NodeJS.Signals): Promise<number | null>;
  /** Kills it if alive, starts it again on the same ports and environment, and waits as the start did. */
  restart(): Promise<void>;
}

const here = createRequire(import.meta.url);

/** The absolute path of `entry` inside `pkg`, found through its package.json. */
export function packageEntry(pkg: string, entry = 'dist/main.js', resolveFrom = process.cwd()): string {
  const manifest = `${pkg}/package.json`;
  let path: string;
  try {
    path = createRequire(join(resolveFrom, 'noop.js')).resolve(manifest);
  } catch {
    path = here.resolve(manifest);
  }
  return join(dirname(path), entry);
}

/** Starts a built service (see ServiceProcessOptions) and, unless `ready` is false, waits until it is ready. */
export async function startServiceProcess(options: ServiceProcessOptions): Promise<ServiceProcess> {
  const name = options.package.replace(/^@[^/]+\//, '');
  const main = packageEntry(options.package, options.entry, options.resolveFrom);
  const prefix = `BALLAST_${name.toUpperCase().replace(/[^A-Z0-9]/g, '_')}`;
  const portEnv = options.portEnv ?? { grpc: `${prefix}_GRPC_PORT`, http: `${prefix}_HTTP_PORT` };
  const grpcPort = options.ports?.grpc ?? (await freePort());
  const httpPort = options.ports?.http ?? (await freePort());
  const env: Record<string, string> = {
    BALLAST_GRPC_HOST: '127.0.0.1',
    BALLAST_LOG_LEVEL: 'warn',
    OTEL_SERVICE_NAME: `ballast-${name}`,
    [portEnv.grpc]: String(grpcPort),
    [portEnv.http]: String(httpPort),
    ...options.env,
  };
  const base =
    options.inheritEnv === false
      ? { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp' }
      : process.env;
  const args =
    options.telemetry === false ? [main] : ['--import', here.resolve('@ballast/telemetry/register'), main];
  const stdio = options.stdio ?? 'capture';
  const readyTimeoutMs = options.readyTimeoutMs ?? READY_TIMEOUT_MS;
  const stopTimeoutMs = options.stopTimeoutMs ?? STOP_TIMEOUT_MS;
  let output = '';
  const keep = (b: Buffer) => {
    output += b.toString();
    if (output.length > OUTPUT_LIMIT) output = output.slice(-OUTPUT_LIMIT);
  };
  const launch = () => {
    const child = spawn(process.execPath, args, {
      env: { ...base, ...env },
      stdio: ['ignore', stdio === 'capture' ? 'pipe' : stdio, stdio === 'capture' ? 'pipe' : stdio],
    });
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    return child;
  };
  let child = launch();
  const exited = (c: ChildProcess) => c.exitCode !== null || c.signalCode !== null;
  const end = async (signal: NodeJS.Signals, graceMs: number): Promise<number | null> => {
    const c = child;
    if (!exited(c)) {
      const exit = once(c, 'exit');
      c.kill(signal);
      const timer = setTimeout(() => c.kill('SIGKILL'), graceMs);
      await exit.finally(() => clearTimeout(timer));
    }
    return c.exitCode;
  };
  const proc: ServiceProcess = {
    name,
    get child() {
      return child;
    },
    grpcPort,
    httpPort,
    address: `127.0.0.1:${grpcPort}`,
    httpUrl: `http://127.0.0.1:${httpPort}`,
    env,
    output: () => output,
    alive: () => !exited(child),
    ready(what = options.ready || '', timeoutMs = readyTimeoutMs) {
      return typeof what === 'string'
        ? waitHealth(proc, what, { timeoutMs })
        : waitUntil(
            async () =>
              (await fetch(`${proc.httpUrl}${what.http}`, { signal: AbortSignal.timeout(2_000) })).ok,
            `${name} ${what.http} ok`,
            {
              process: proc,
              timeoutMs,
            },
          );
    },
    stop: (signal = 'SIGTERM') => end(signal, stopTimeoutMs),
    kill: (signal = 'SIGKILL') => end(signal, stopTimeoutMs),
    async restart() {
      await end('SIGKILL', stopTimeoutMs);
      child = launch();
      if (options.ready !== false) await proc.ready();
    },
  };
  if (options.ready !== false)
    await proc.ready().catch(async (err: unknown) => {
      await end('SIGKILL', stopTimeoutMs);
      throw err;
    });
  return proc;
}

/** What waitUntil and waitHealth watch: a process that exits ends the wait at once, with its output. */
export interface Watched {
  readonly name?: string;
  alive?(): boolean;
  output?(): string;
}

function tail(process: Watched | undefined): string {
  const text = process?.output?.().slice(-4_000) ?? '';
  return text ? `\n--- output of ${process?.name ?? 'the process'} (last 4 KB) ---\n${text}` : '';
}

/**
 * Polls `check` until it holds, within an overall deadline (default READY_TIMEOUT_MS); a
 * check that throws counts as not yet. The milliseconds it took.
 */
export async function waitUntil(
  check: () => Promise<boolean>,
  what: string | (() => string),
  options: { timeoutMs?: number; process?: Watched } = {},
): Promise<number> {
  const started = Date.now();
  const deadline = started + (options.timeoutMs ?? READY_TIMEOUT_MS);
  const watched = options.process;
  const describe = () => (typeof what === 'string' ? what : what());
  for (;;) {
    if (watched?.alive && !watched.alive())
      throw new Error(`${watched.name ?? 'the process'} exited before ${describe()}${tail(watched)}`);
    if (await check().catch(() => false)) return Date.now() - started;
    if (Date.now() >= deadline)
      throw new Error(`timed out after ${Date.now() - started} ms waiting for ${describe()}${tail(watched)}`);
    await sleep(POLL_MS);
  }
}

/** grpc.health.v1 Check: the status, or 'unreachable' when the call itself fails. */
export async function healthStatus(
  address: string,
  service: string,
  credentials?: ChannelCredentials,
): Promise<ServingStatus | 'unreachable'> {
  const health = createClient(Health, {
    address,
    deadlineMs: 1_000,
    retry: false,
    ...(credentials ? { credentials } : {}),
  });
  try {
    return (await health.check({ service })).status;
  } catch {
    return 'unreachable';
  } finally {
    health.close();
  }
}

/**
 * Polls grpc.health.v1 at `target.address` until `service` ('' is the server as a whole)
 * reports `status` (default SERVING); the milliseconds it took.
 */
export async function waitHealth(
  target: Watched & { readonly address: string },
  service: string,
  options: { status?: ServingStatus; timeoutMs?: number; credentials?: ChannelCredentials } = {},
): Promise<number> {
  const want = options.status ?? ServingStatus.SERVING;
  let last: ServingStatus | 'unreachable' = 'unreachable';
  const what = () =>
    `${service || '(server)'} ${ServingStatus[want]} at ${target.address} (last: ${typeof last === 'string' ? last : ServingStatus[last]})`;
  return waitUntil(
    async () => {
      last = await healthStatus(target.address, service, options.credentials);
      return last === want;
    },
    what,
    { timeoutMs: options.timeoutMs ?? READY_TIMEOUT_MS, process: target },
  );
}
