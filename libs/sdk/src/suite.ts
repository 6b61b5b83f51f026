import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, openSync } from 'node:fs';
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { SERVICES, type ServiceName } from '@ballast/config';
import { localEndpoints, probe, type Readiness } from './health.js';

/** The suite a command works against: already running, or started for it (and stopped after). */
export interface Suite {
  startedHere: boolean;
  /** Where the started suite writes its output (`ballast up`'s log), when started here. */
  log?: string;
  /** The `ballast up` process, when started here. */
  pid?: number;
  stop(): Promise<void>;
  /** Lets this process exit while the started suite keeps running. */
  detach(): void;
}

export async function readiness(env: NodeJS.ProcessEnv): Promise<Map<ServiceName, Readiness>> {
  const states = await Promise.all(SERVICES.map((s) => probe(s, localEndpoints(s, env))));
  return new Map(SERVICES.map((s, i) => [s, states[i] ?? 'down']));
}

/**
 * Uses the suite that answers on this machine's ports; when nothing answers, starts one
 * with `ballast up` as a child process and waits for every service to be ready. A suite
 * that answers only in part is an error: something is half-running and should be looked at.
 */
export async function ensureSuite(
  env: NodeJS.ProcessEnv,
  print: (line: string) => void,
  readyTimeoutMs = 180_000,
): Promise<Suite> {
  const states = await readiness(env);
  const notReady = [...states].filter(([, s]) => s !== 'ready').map(([name, s]) => `${name} (${s})`);
  if (notReady.length === 0) return { startedHere: false, stop: async () => {}, detach: () => {} };
  if (notReady.length < SERVICES.length && [...states.values()].some((s) => s !== 'down'))
    throw new Error(
      `the suite is only partly up: ${notReady.join(', ')}. Start it with \`npm start\` in another terminal, or stop what is running.`,
    );

  const dataDir = resolve(env.BALLAST_DATA_DIR ?? '.ballast');
  mkdirSync(dataDir, { recursive: true });
  const log = resolve(dataDir, 'demo-suite.log');
  const out = openSync(log, 'a');
  const cli = fileURLToPath(new URL('./cli.js', import.meta.url));
  const child: ChildProcess = spawn(process.execPath, [cli, 'up', '--wait', String(readyTimeoutMs / 1000)], {
    env,
    stdio: ['ignore', out, out],
  });
  print(`no suite answers: starting one (ballast up, pid ${child.pid}; its output goes to ${log})`);
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    await once(child, 'exit');
  };
  const started = Date.now();
  while (Date.now() - started < readyTimeoutMs) {
    if (child.exitCode !== null) throw new Error(`ballast up exited with code ${child.exitCode}; see ${log}`);
    const now = await readiness(env);
    if ([...now.values()].every((s) => s === 'ready'))
      return {
        startedHere: true,
        log,
        stop,
        detach: () => child.unref(),
        ...(child.pid ? { pid: child.pid } : {}),
      };
    await sleep(500);
  }
  await stop();
  throw new Error(`the suite was not ready after ${readyTimeoutMs / 1000}s; see ${log}`);
}
