import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

// What the cluster and Sentinel helpers share: real redis-server processes on loopback, in a
// temporary directory, each started on a free port and waited for, never slept on.

const run = promisify(execFile);

/** Runs redis-cli against a local port and returns its output (throws on a non-zero exit). */
export async function redisCli(port: number, ...args: string[]): Promise<string> {
  const { stdout } = await run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args]);
  return stdout;
}

/** INFO or CLUSTER INFO text as a map of its `name:value` lines. */
export function infoFields(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon > 0) fields.set(line.slice(0, colon), line.slice(colon + 1));
  }
  return fields;
}

/**
 * Polls `check` until it answers true, every 50 ms, for at most `timeoutMs`: how these
 * helpers wait for a server to come up or a cluster to settle (never a fixed sleep).
 */
export async function waitFor(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch (err) {
      last = err;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
}

function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', () => resolve(false));
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)));
  });
}

/**
 * `count` loopback ports that are free now, each with port + 10000 free too (a cluster node's
 * bus port). Drawn at random from 11000-19999 (bus ports 21000-29999): below Linux's
 * ephemeral range (32768+), where an outgoing connection could take one meanwhile, and away
 * from the ports the services (50051+, 9451+), Jaeger (16686) and other tests use.
 */
export async function freePorts(count: number): Promise<number[]> {
  const ports: number[] = [];
  while (ports.length < count) {
    const port = 11_000 + Math.floor(Math.random() * 9_000);
    if (ports.includes(port)) continue;
    if ((await portIsFree(port)) && (await portIsFree(port + 10_000))) ports.push(port);
  }
  return ports;
}

export interface RedisProcess {
  readonly port: number;
  readonly child: ChildProcess;
  readonly exited: Promise<void>;
}

/** A directory for the servers' files, removed by `removeDir`. */
export function makeDir(label: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `ballast-${label}-`));
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

/**
 * Starts `redis-server <args>` on `port` in `dir` (nothing saved to disk) and resolves once
 * it answers PING.
 */
export async function startRedisServer(
  port: number,
  dir: string,
  args: readonly string[],
): Promise<RedisProcess> {
  const child = spawn(
    'redis-server',
    [
      ...args,
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--dir',
      dir,
      '--save',
      '',
      '--appendonly',
      'no',
      '--loglevel',
      'warning',
      '--logfile',
      `redis-${port}.log`,
    ],
    { stdio: 'ignore' },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let gone = false;
  void exited.then(() => {
    gone = true;
  });
  await waitFor(`redis-server on port ${port}`, async () => {
    if (gone) throw new Error(`redis-server on port ${port} exited; see ${join(dir, `redis-${port}.log`)}`);
    return (await redisCli(port, 'ping')).trim() === 'PONG';
  });
  return { port, child, exited };
}

/** Kills a server at once (SIGKILL: no shutdown, no last words) and waits for it to be gone. */
export async function killRedisServer(server: RedisProcess): Promise<void> {
  if (server.child.exitCode === null && server.child.signalCode === null) server.child.kill('SIGKILL');
  await server.exited;
}
