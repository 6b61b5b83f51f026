import { z } from 'zod';

export type EnvSource = Readonly<Record<string, string | undefined>>;

/** The parsed, typed configuration for a shape of fields. */
export type ConfigOf<S extends z.ZodRawShape> = z.output<z.ZodObject<S>>;

export interface ConfigProblem {
  variable: string;
  message: string;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly problems: readonly ConfigProblem[];

  constructor(problems: readonly ConfigProblem[]) {
    const lines = problems.map((p) => `${p.variable}: ${p.message}`);
    super(
      `Invalid configuration (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n${lines.join('\n')}`,
    );
    this.problems = problems;
  }
}

// Values of these are never echoed back in an error: the message ends up in logs.
const SECRET_NAME = /TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|PRIVATE|API_?KEY/i;

function describeValue(variable: string, raw: string): string {
  if (SECRET_NAME.test(variable)) return `<redacted, ${raw.length} characters>`;
  // A malformed database URL can still carry a password; hide whatever sits before the `@`.
  return JSON.stringify(raw.replace(/\/\/[^/@\s]*@/, '//***@'));
}

// `FOO=` (as docker-compose and .env files write an unset value) means unset, not an empty string.
function normalize(raw: string | undefined): string | undefined {
  const trimmed = raw?.trim();
  return trimmed === '' ? undefined : trimmed;
}

/**
 * Parses the variables named in `shape` from `env` and returns them typed. On failure it throws
 * one ConfigError naming every bad variable, so an operator fixes them all in one go.
 */
export function loadConfig<S extends z.ZodRawShape>(shape: S, env: EnvSource = process.env): ConfigOf<S> {
  const input: Record<string, string | undefined> = {};
  for (const variable of Object.keys(shape)) input[variable] = normalize(env[variable]);

  const result = z.object(shape).safeParse(input);
  if (result.success) return result.data;

  const problems = result.error.issues.map((issue): ConfigProblem => {
    const variable = String(issue.path[0] ?? '(config)');
    const raw = input[variable];
    const message =
      raw === undefined ? 'required but not set' : `${issue.message}, got ${describeValue(variable, raw)}`;
    return { variable, message };
  });
  throw new ConfigError(problems);
}
