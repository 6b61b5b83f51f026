import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { ServiceName } from '@ballast/config';

const require = createRequire(import.meta.url);

/** The built entry point of a service, found through the workspace like any package. */
export function serviceEntry(service: ServiceName): string {
  return join(dirname(require.resolve(`@ballast/${service}/package.json`)), 'dist', 'main.js');
}

const telemetryPreload = () => require.resolve('@ballast/telemetry/register');

export interface SupervisorEvents {
  started(service: ServiceName, pid: number): void;
  exited(
    service: ServiceName,
    code: number | null,
    signal: NodeJS.Signals | null,
    restartInMs: number | undefined,
  ): void;
  output(service: ServiceName, line: string): void;
}

const MAX_BACKOFF_MS = 30_000;
/** A child that stayed up this long is considered healthy again: its backoff resets. */
const STABLE_AFTER_MS = 60_000;

/**
 * Runs one child process per service, restarts one that crashes with exponential
 * backoff, and stops them all (SIGTERM, then SIGKILL after the grace period) so no
 * process outlives the supervisor.
 */
export class Supervisor {
  readonly #children = new Map<ServiceName, ChildProcess>();
  readonly #backoff = new Map<ServiceName, number>();
  readonly #timers = new Set<NodeJS.Timeout>();
  #stopping = false;

  constructor(
    private readonly env: NodeJS.ProcessEnv,
    private readonly events: SupervisorEvents,
    private readonly graceMs = 10_000,
  ) {}

  start(service: ServiceName): void {
    if (this.#stopping) return;
    const child = spawn(process.execPath, ['--import', telemetryPreload(), serviceEntry(service)], {
      env: {
        ...this.env,
        OTEL_SERVICE_NAME: this.env.OTEL_SERVICE_NAME ?? `ballast-${service}`,
        BALLAST_SERVICE: service,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.#children.set(service, child);
    const startedAt = Date.now();
    if (child.pid !== undefined) this.events.started(service, child.pid);
    for (const stream of [child.stdout, child.stderr]) {
      let buffered = '';
      stream?.on('data', (chunk: Buffer) => {
        buffered += chunk.toString();
        let newline = buffered.indexOf('\n');
        while (newline >= 0) {
          this.events.output(service, buffered.slice(0, newline));
          buffered = buffered.slice(newline + 1);
          newline = buffered.indexOf('\n');
        }
      });
    }
    child.on('exit', (code, signal) => {
      if (this.#children.get(service) === child) this.#children.delete(service);
      if (this.#stopping) {
        this.events.exited(service, code, signal, undefined);
        return;
      }
      const previous = Date.now() - startedAt > STABLE_AFTER_MS ? 0 : (this.#backoff.get(service) ?? 0);
      const delay = previous === 0 ? 1_000 : Math.min(previous * 2, MAX_BACKOFF_MS);
      this.#backoff.set(service, delay);
      this.events.exited(service, code, signal, delay);
      const timer = setTimeout(() => {
        this.#timers.delete(timer);
        this.start(service);
      }, delay);
      this.#timers.add(timer);
    });
  }

  pid(service: ServiceName): number | undefined {
    return this.#children.get(service)?.pid;
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    const running = [...this.#children.values()].filter((c) => c.exitCode === null && c.signalCode === null);
    await Promise.all(
      running.map(async (child) => {
        const exited = once(child, 'exit');
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), this.graceMs + 2_000);
        await exited;
        clearTimeout(timer);
      }),
    );
  }
}
