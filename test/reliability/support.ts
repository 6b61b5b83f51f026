// Real parts for the reliability suite: service processes from their builds, a Redis and a
// Postgres database of the suite's own, TCP proxies that cut or slow a dependency, and
// certificates made with the openssl CLI. Loopback only.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ServiceName } from '@ballast/config';
import * as kit from '@ballast/grpc-kit/testing';
import type { ChannelCredentials } from '@grpc/grpc-js';
import { afterAll, beforeAll } from 'vitest';
import { saveLog } from './report.js';

export { createTestDatabase, freePort, healthStatus, ServingStatus } from '@ballast/grpc-kit/testing';

export const PG_ADMIN_URL = kit.TEST_DATABASE_URL;

export function tempDir(label: string): string {
  return mkdtempSync(join(tmpdir(), `ballast-rel-${label}-`));
}

export type ServiceProcess = kit.ServiceProcess & { readonly service: ServiceName };

/**
 * A built service as its own process (as `ballast up` runs it, in a bare environment, no
 * telemetry preload) on free loopback ports; returns once spawned: wait with waitHealth.
 * kill() defaults to SIGKILL; restart() starts it again on the same ports and environment.
 */
export async function startService(
  service: ServiceName,
  env: Record<string, string>,
): Promise<ServiceProcess> {
  const proc = await kit.startServiceProcess({
    package: `@ballast/${service}`,
    ready: false,
    telemetry: false,
    inheritEnv: false,
    env: {
      BALLAST_LOG_LEVEL: 'info',
      BALLAST_SHUTDOWN_GRACE_MS: '1000',
      OTEL_TRACES_SAMPLER: 'always_off',
      ...env,
    },
  });
  return Object.assign(proc, { service });
}

/** Polls health until `service` reports `want`; returns the milliseconds it took. */
export function waitHealth(
  proc: kit.Watched & { address: string },
  service: string,
  want: kit.ServingStatus = kit.ServingStatus.SERVING,
  timeoutMs = kit.READY_TIMEOUT_MS,
  credentials?: ChannelCredentials,
): Promise<number> {
  return kit.waitHealth(proc, service, { status: want, timeoutMs, ...(credentials ? { credentials } : {}) });
}

/** Resident set size of a process in KiB, from /proc. */
export function rssKiB(pid: number | undefined): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? Number.NaN);
}

export interface TestRedis {
  readonly port: number;
  readonly url: string;
  readonly dir: string;
  stop(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}

/** A redis-server of the test's own: its own port, AOF on, data under a temporary directory. */
export async function startRedis(): Promise<TestRedis> {
  const port = await kit.freePort();
  const dir = tempDir('redis');
  let child: ChildProcess | undefined;
  const ping = () =>
    new Promise<boolean>((resolve) => {
      const socket = tcpConnect(port, '127.0.0.1');
      socket.once('error', () => resolve(false));
      socket.once('connect', () => socket.write('PING\r\n'));
      socket.once('data', (d) => {
        socket.destroy();
        resolve(d.toString().startsWith('+PONG'));
      });
    });
  const redis: TestRedis = {
    port,
    url: `redis://127.0.0.1:${port}`,
    dir,
    async start() {
      child = spawn(
        'redis-server',
        [
          '--port',
          String(port),
          '--bind',
          '127.0.0.1',
          '--appendonly',
          'yes',
          '--appendfsync',
          'always',
          '--dir',
          dir,
          '--save',
          '',
        ],
        { stdio: 'ignore' },
      );
      for (let i = 0; i < 100 && !(await ping()); i++) await sleep(50);
    },
    async stop() {
      if (!child || child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
    },
    async close() {
      await redis.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await redis.start();
  return redis;
}

export interface TcpProxy {
  readonly port: number;
  /** Milliseconds each chunk is held, each way. */
  delayMs: number;
  /** Drops every connection and stops listening (new connections are refused) until restore(). */
  cut(): void;
  restore(): void;
  close(): Promise<void>;
}

/** A TCP proxy to 127.0.0.1:<target> that can delay every chunk or cut the link. */
export async function tcpProxy(targetPort: number): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  let isCut = false;
  const relay = (from: Socket, to: Socket) => {
    // Chunks keep their order: each waits for the one before it.
    let tail = Promise.resolve();
    from.on('data', (chunk) => {
      const delay = proxy.delayMs;
      tail = tail.then(async () => {
        if (delay > 0) await sleep(delay);
        if (!to.destroyed) to.write(chunk);
      });
    });
    from.on('close', () => {
      void tail.then(() => to.destroy());
    });
    from.on('error', () => to.destroy());
  };
  const server: Server = createServer((client) => {
    if (isCut) {
      client.destroy();
      return;
    }
    const upstream = tcpConnect(targetPort, '127.0.0.1');
    sockets.add(client);
    sockets.add(upstream);
    client.on('close', () => sockets.delete(client));
    upstream.on('close', () => sockets.delete(upstream));
    relay(client, upstream);
    relay(upstream, client);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  const proxy: TcpProxy = {
    port: address.port,
    delayMs: 0,
    cut() {
      // Like a stopped server: the port refuses connections (ECONNREFUSED) and open ones drop.
      isCut = true;
      if (server.listening) server.close();
      for (const socket of sockets) socket.destroy();
    },
    restore() {
      isCut = false;
      if (!server.listening) server.listen(address.port, '127.0.0.1');
    },
    async close() {
      isCut = true;
      for (const socket of sockets) socket.destroy();
      if (server.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return proxy;
}

export interface Certificates {
  dir: string;
  file(name: string): string;
}

/**
 * A CA, a server leaf for 127.0.0.1/localhost, a client leaf, and a leaf from another CA
 * (a stranger), as PEM files. EC P-256, one day.
 */
export function makeCertificates(): Certificates {
  const dir = tempDir('certs');
  const file = (name: string) => join(dir, name);
  const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  for (const ca of ['ca', 'other-ca']) {
    openssl(
      'req',
      '-x509',
      ...ec,
      '-days',
      '1',
      '-subj',
      `/CN=ballast test ${ca}`,
      '-keyout',
      file(`${ca}.key`),
      '-out',
      file(`${ca}.pem`),
    );
  }
  const leaf = (name: string, ca: string, san: string) => {
    writeFileSync(file(`${name}.ext`), `subjectAltName=${san}\n`);
    openssl(
      'req',
      ...ec,
      '-subj',
      `/CN=${name}`,
      '-keyout',
      file(`${name}.key`),
      '-out',
      file(`${name}.csr`),
    );
    openssl(
      'x509',
      '-req',
      '-in',
      file(`${name}.csr`),
      '-CA',
      file(`${ca}.pem`),
      '-CAkey',
      file(`${ca}.key`),
      '-CAcreateserial',
      '-days',
      '1',
      '-out',
      file(`${name}.pem`),
      '-extfile',
      file(`${name}.ext`),
    );
  };
  leaf('server', 'ca', 'IP:127.0.0.1,DNS:localhost');
  leaf('client', 'ca', 'DNS:ballast-client');
  leaf('stranger', 'other-ca', 'DNS:ballast-client');
  return { dir, file };
}

/** Percentile (0-100) of a list of numbers, nearest rank. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number;
}

export const round = (n: number, digits = 1) => Math.round(n * 10 ** digits) / 10 ** digits;

/** One value from a query on a test database, through the psql CLI (as createTestDatabase creates it). */
export function psqlValue(url: string, query: string): string {
  return execFileSync('psql', [url, '-At', '-v', 'ON_ERROR_STOP=1', '-c', query], {
    encoding: 'utf8',
  }).trim();
}

/** An UploadArtifact request stream: the manifest (a file's declared size may lie), then 256 KiB chunks. */
export function artifactUploadParts(files: Array<{ path: string; data: Uint8Array; declaredSize?: number }>) {
  return (async function* () {
    yield {
      part: {
        case: 'manifest' as const,
        value: {
          files: files.map((f) => ({
            path: f.path,
            size: BigInt(f.declaredSize ?? f.data.byteLength),
            sha256: createHash('sha256').update(f.data).digest('hex'),
          })),
        },
      },
    };
    for (const f of files) {
      for (let offset = 0; offset < f.data.byteLength; offset += 256 * 1024) {
        yield {
          part: {
            case: 'chunk' as const,
            value: { path: f.path, data: f.data.subarray(offset, offset + 256 * 1024) },
          },
        };
      }
    }
  })();
}

/** A suite's afterAll: kills its processes (saving each one's output as `<label>-<service>`), then closes the rest. */
export async function tearDown(
  label: string,
  procs: Iterable<ServiceProcess>,
  ...closables: Array<{ close(): Promise<unknown> } | undefined>
): Promise<void> {
  for (const proc of procs) {
    await proc.kill('SIGKILL');
    saveLog(`${label}-${proc.service}`, proc.output());
  }
  for (const closable of closables) await closable?.close();
}

export interface SuiteParts {
  /** A redis-server of the suite's own. */
  readonly redis: TestRedis;
  /** A Postgres database of the suite's own. */
  readonly db: kit.PostgresTestDatabase;
  /** Processes the suite started: killed (their output saved) after it. */
  readonly procs: ServiceProcess[];
}

/** Registers a suite's beforeAll (its own Redis and database) and afterAll (tearDown); read the parts in tests. */
export function suiteParts(label: string): SuiteParts {
  const parts = { procs: [] as ServiceProcess[] } as {
    redis: TestRedis;
    db: kit.PostgresTestDatabase;
    procs: ServiceProcess[];
  };
  beforeAll(async () => {
    parts.redis = await startRedis();
    parts.db = await kit.createTestDatabase(label.replace(/-/g, '_'));
  }, 60_000);
  afterAll(() => tearDown(label, parts.procs, parts.redis, parts.db));
  return parts;
}

/** Polls `check` every 50 ms (at most `timeoutMs`), failing early if `proc` died. */
export async function until(
  check: () => boolean | Promise<boolean>,
  what: string,
  proc?: ServiceProcess,
  timeoutMs = 120_000,
) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (proc && !proc.alive()) throw new Error(`${proc.service} exited before ${what}:\n${proc.output()}`);
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}
