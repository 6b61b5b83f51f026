import { appendFileSync, mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { SERVICES, type ServiceName } from '@ballast/config';
import { localEndpoints, probe } from './health.js';
import { chooseRedis } from './local-redis.js';
import { Supervisor } from './supervisor.js';

export interface UpOptions {
  services: readonly ServiceName[];
  env: NodeJS.ProcessEnv;
  /** How long to wait for every service to turn ready before saying which are not. */
  readyTimeoutMs: number;
  print: (line: string) => void;
}

const WARN = 40;
const LOOPBACK = '127.0.0.1';

/**
 * The environment `ballast up` gives its services: gRPC and HTTP ports on loopback unless
 * BALLAST_GRPC_HOST says otherwise, since a laptop's suite has no token by default and every
 * RPC would be open to the network it is on. Containers and k8s set 0.0.0.0 in deploy/.
 */
export function localServiceEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return { ...env, BALLAST_GRPC_HOST: env.BALLAST_GRPC_HOST || LOOPBACK };
}

/** Service logs go to files; warnings and errors are echoed so a crash is never silent. */
function logSink(logDir: string, print: (line: string) => void) {
  mkdirSync(logDir, { recursive: true });
  return (service: ServiceName, line: string) => {
    appendFileSync(resolve(logDir, `${service}.log`), `${line}\n`);
    try {
      const entry = JSON.parse(line) as { level?: number; msg?: string; err?: { message?: string } };
      if ((entry.level ?? 0) >= WARN)
        print(
          `  ${service.padEnd(9)} ${entry.msg ?? ''}${entry.err?.message ? `: ${entry.err.message}` : ''}`,
        );
    } catch {
      print(`  ${service.padEnd(9)} ${line}`);
    }
  };
}

/**
 * `ballast up`: the whole suite on one machine. Resolves when every child has stopped
 * after SIGINT/SIGTERM; rejects (before starting anything) when Redis cannot be had.
 */
export async function up(options: UpOptions): Promise<void> {
  const { print } = options;
  const dataDir = resolve(options.env.BALLAST_DATA_DIR ?? '.ballast');
  const redis = await chooseRedis({ envUrl: options.env.BALLAST_REDIS_URL, dataDir });
  print(
    `redis     ${redis.url}${redis.child ? ` (started here, data in ${resolve(dataDir, 'redis')})` : ''}`,
  );
  print(
    options.env.BALLAST_DATABASE_URL
      ? `database  ${options.env.BALLAST_DATABASE_URL.replace(/\/\/[^@/]*@/, '//***@')}`
      : `database  embedded PGlite under ${resolve(dataDir, 'pglite')}`,
  );

  const serviceEnv = localServiceEnv(options.env);
  const env = { ...serviceEnv, BALLAST_REDIS_URL: redis.url, BALLAST_DATA_DIR: dataDir };
  const host = serviceEnv.BALLAST_GRPC_HOST;
  print(
    `listening ${host}${host === LOOPBACK ? ' (this machine only; BALLAST_GRPC_HOST=0.0.0.0 opens it)' : ''}`,
  );
  const sink = logSink(resolve(dataDir, 'logs'), print);
  const supervisor = new Supervisor(env, {
    started: () => {},
    output: sink,
    exited(service, code, signal, restartInMs) {
      if (restartInMs !== undefined) {
        print(
          `  ${service.padEnd(9)} exited (${signal ?? `code ${code}`}); restarting in ${restartInMs / 1000}s`,
        );
      }
    },
  });

  const started = Date.now();
  for (const service of options.services) supervisor.start(service);

  let stopping = false;
  const stopped = new Promise<void>((resolveStopped) => {
    const stop = async () => {
      if (stopping) return;
      stopping = true;
      print('\nstopping every service...');
      await supervisor.stop();
      redis.child?.kill('SIGTERM');
      print('stopped.');
      resolveStopped();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });

  const pending = new Set(options.services);
  while (pending.size > 0 && !stopping && Date.now() - started < options.readyTimeoutMs) {
    for (const service of [...pending]) {
      if ((await probe(service, localEndpoints(service, options.env))) === 'ready') {
        pending.delete(service);
        const { grpc, http } = localEndpoints(service, options.env);
        const seconds = ((Date.now() - started) / 1000).toFixed(1);
        print(`  ${service.padEnd(9)} ready in ${seconds}s   grpc ${grpc ?? '-'}   metrics ${http}/metrics`);
      }
    }
    if (pending.size > 0) await sleep(200);
  }
  if (!stopping) {
    if (pending.size === 0) {
      print(
        `\nall ${options.services.length} services ready in ${((Date.now() - started) / 1000).toFixed(1)}s. Ctrl-C stops them.`,
      );
    } else {
      print(
        `\nnot ready after ${options.readyTimeoutMs / 1000}s: ${[...pending].join(', ')} (logs in ${resolve(dataDir, 'logs')})`,
      );
    }
  }
  await stopped;
}

export function parseServices(list: string | undefined): ServiceName[] {
  if (!list) return [...SERVICES];
  const names = list.split(',').map((s) => s.trim());
  const unknown = names.filter((n) => !(SERVICES as readonly string[]).includes(n));
  if (unknown.length > 0)
    throw new Error(`unknown service(s): ${unknown.join(', ')}; choose from ${SERVICES.join(', ')}`);
  return names as ServiceName[];
}
