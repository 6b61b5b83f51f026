import { type Span, SpanStatusCode, trace } from '@opentelemetry/api';
import { COMMANDS, commandHelp, overview, wantsHelp } from './cli-commands.js';
import type { CommandIo } from './output.js';

/**
 * Runs `ballast <argv>`: help, or the command in a span of its own, named `ballast <command>`.
 * With telemetry started (the CLI's entry does it) that span is the root of the command's trace:
 * its gRPC client spans are children of it, the services' server spans children of those, and
 * jobs it enqueues carry it. Resolves to the exit code; a failure rejects, after the span has
 * recorded it.
 */
export async function runCli(argv: readonly string[], io: CommandIo & { error: (line: string) => void }) {
  const [name = 'help', ...args] = argv;
  if (name === '--help' || name === '-h') return COMMANDS.help?.run([], io) ?? 0;
  const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!command) {
    io.error(`ballast: unknown command "${name}"\n\n${overview()}`);
    return 2;
  }
  if (wantsHelp(args)) {
    io.print(commandHelp(name) ?? overview());
    return 0;
  }
  if (command.traced === false) return command.run(args, io);
  return trace
    .getTracer('@ballast/sdk')
    .startActiveSpan(`ballast ${name}`, { attributes: { 'ballast.cli.command': name } }, async (span) => {
      openSpans.add(span);
      try {
        const code = await command.run(args, io);
        span.setAttribute('process.exit.code', code);
        if (code !== 0) span.setStatus({ code: SpanStatusCode.ERROR, message: `exit code ${code}` });
        return code;
      } catch (err) {
        span.recordException(err instanceof Error ? err : String(err));
        span.setStatus({
          code: SpanStatusCode.ERROR,
          message: err instanceof Error ? err.message : String(err),
        });
        span.setAttribute('process.exit.code', 1);
        throw err;
      } finally {
        openSpans.delete(span);
        span.end();
      }
    });
}

const openSpans = new Set<Span>();

/** Ends the command spans still open (a signal arrived mid-command), so a flush exports them. */
export function endOpenSpans(reason: string): void {
  for (const span of openSpans) {
    span.setStatus({ code: SpanStatusCode.ERROR, message: reason });
    span.end();
  }
  openSpans.clear();
}
