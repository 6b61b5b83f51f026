export interface LifecycleLogger {
  info(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/**
 * Runs `shutdown` once on SIGTERM or SIGINT, then exits. A second signal exits at once,
 * for the operator who does not want to wait for the drain.
 */
export function exitOnSignals(shutdown: () => Promise<void>, log: LifecycleLogger): void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      log.info({ signal }, 'second signal: exiting without waiting');
      process.exit(1);
    }
    stopping = true;
    log.info({ signal }, 'shutting down');
    shutdown().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

/**
 * Runs a service's main and turns a failure to start (bad configuration, a port in use)
 * into one clear message and a non-zero exit instead of an unhandled rejection.
 */
export function runMain(main: () => Promise<unknown>): void {
  main().catch((err: unknown) => {
    const message =
      err instanceof Error
        ? err.name === 'ConfigError'
          ? err.message
          : (err.stack ?? err.message)
        : String(err);
    process.stderr.write(`failed to start: ${message}\n`);
    process.exit(1);
  });
}
