#!/usr/bin/env node
// The `ballast` CLI's entry. Telemetry comes first: grpc-js must be patched before anything
// loads it, so the table of commands (which loads nothing heavy) is read here, telemetry is
// started for a traced command, and the command's code is imported only after that.
import { instrumentProcess, shutdownTelemetry } from '@ballast/telemetry';
import { isTracedRun } from './cli-commands.js';

const argv = process.argv.slice(2);
// Spans are exported where OTEL_EXPORTER_OTLP_ENDPOINT says; without one they still get trace
// ids (the links the CLI prints) and their context still reaches the services.
const traced = isTracedRun(argv);
if (traced) instrumentProcess({ serviceName: 'ballast-cli' });
const { endOpenSpans, runCli } = await import('./cli-run.js');

/** Every way out goes through here: the command's span is ended and spans are flushed first. */
let exiting = false;
async function exit(code: number): Promise<void> {
  if (exiting) return;
  exiting = true;
  await shutdownTelemetry();
  process.exitCode = code;
}

// Only a traced command has spans to end and flush on a signal. An untraced one keeps its own
// signal handling: `ballast up` stops its services on Ctrl-C and exits 0.
if (traced)
  for (const [signal, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const)
    process.once(signal, () => {
      endOpenSpans(`interrupted (${signal})`);
      void exit(code).then(() => process.exit(code));
    });

try {
  await exit(
    await runCli(argv, {
      env: process.env,
      print: (line) => console.log(line),
      error: (line) => console.error(line),
      stdout: process.stdout,
    }),
  );
} catch (err) {
  console.error(`ballast: ${err instanceof Error ? err.message : String(err)}`);
  await exit(1);
}
