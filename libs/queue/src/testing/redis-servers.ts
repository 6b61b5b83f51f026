import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
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

// Ports this process has handed out. Servers started at once (a cluster's six) would
// otherwise be able to draw the same port, both seeing it free before either binds it. Never
// given back: a test run starts a few dozen servers out of 9,000 ports.
const handedOut = new Set<number>();

/**
 * A loopback port that is free now, with port + 10000 free too (a cluster node's bus port).
 * Drawn at random from 11000-19999 (bus ports 21000-29999): below Linux's ephemeral range
 * (32768+), where an outgoing connection could take one meanwhile, and away from the ports
 * the services (50051+, 9451+), Jaeger (16686) and other tests use. Free now is not free
 * later: another process may bind it first, which startRedisServerOnFreePort answers.
 */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = 11_000 + Math.floor(Math.random() * 9_000);
    if (handedOut.has(port)) continue;
    handedOut.add(port);
    if ((await portIsFree(port)) && (await portIsFree(port + 10_000))) return port;
  }
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

/** Thrown by startRedisServer when the server could not bind its port (or bus port). */
export class PortTakenError extends Error {
  constructor(readonly port: number) {
    super(`port ${port} (or its cluster bus port) was taken before redis-server could bind it`);
    this.name = 'PortTakenError';
  }
}

/**
 * Starts `redis-server <args>` on `port` in `dir` (nothing saved to disk) and resolves once
 * it answers, and answers as itself: INFO's process_id is the child's pid. A PONG alone
 * could come from another process's server that took the port between the check and the
 * bind (another test's cluster); ours then exits, and this throws PortTakenError.
 */
export async function startRedisServer(
  port: number,
  dir: string,
  args: readonly string[],
): Promise<RedisProcess> {
  const logfile = join(dir, `redis-${port}.log`);
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
      logfile,
    ],
    { stdio: 'ignore' },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let gone = false;
  void exited.then(() => {
    gone = true;
  });
  try {
    // Ends when ours answers, or when it has exited (reported below, not waited out).
    await waitFor(`redis-server on port ${port}`, async () => {
      if (gone) return true;
      const info = infoFields(await redisCli(port, 'info', 'server'));
      return info.get('process_id') === String(child.pid);
    });
  } catch (err) {
    child.kill('SIGKILL');
    await exited;
    throw err;
  }
  if (gone) {
    const log = await readFile(logfile, 'utf8').catch(() => '');
    if (/address already in use/i.test(log)) throw new PortTakenError(port);
    throw new Error(`redis-server on port ${port} exited; see ${logfile}`);
  }
  return { port, child, exited };
}

/**
 * Starts a server on a port from freePort, drawing another while the one drawn turns out
 * taken (PortTakenError). `args` gets the port, for options that name it (a node's
 * nodes.conf, a sentinel's own configuration file).
 */
export async function startRedisServerOnFreePort(
  dir: string,
  args: (port: number) => readonly string[] | Promise<readonly string[]>,
  tries = 5,
): Promise<RedisProcess> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    try {
      return await startRedisServer(port, dir, await args(port));
    } catch (err) {
      if (!(err instanceof PortTakenError) || attempt >= tries) throw err;
    }
  }
}

/** Kills a server at once (SIGKILL: no shutdown, no last words) and waits for it to be gone. */
export async function killRedisServer(server: RedisProcess): Promise<void> {
  if (server.child.exitCode === null && server.child.signalCode === null) server.child.kill('SIGKILL');
  await server.exited;
}
