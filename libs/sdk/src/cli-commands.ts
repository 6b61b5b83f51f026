import { parseArgs } from 'node:util';
import type { CommandIo } from './output.js';

/**
 * The `ballast` CLI's commands: what each says in `--help`, and how it runs. Implementations
 * are imported when a command runs, not with this table: the CLI's entry reads it before
 * telemetry is set up, and nothing that loads grpc-js may come in before that.
 */
export interface Command {
  /** The usage lines, each starting `ballast <name>`. */
  usage: string[];
  /** One line for the overview. */
  summary: string;
  /** Options and what they do, one per line, for `ballast help <command>`. */
  options?: string[];
  /** Whether the command runs in a span of its own, the root of its trace (default true). */
  traced?: boolean;
  run(args: string[], io: CommandIo): Promise<number> | number;
}

const JSON_OPTION = '--json                  machine-readable output (one JSON document)';

export const COMMANDS: Record<string, Command> = {
  up: {
    usage: ['ballast up [--services a,b] [--wait 60]'],
    summary: 'run the whole suite on this machine (npm start)',
    options: [
      '--services a,b          only these services (default: all six)',
      '--wait <s>              how long to wait for every service to be ready (default 60)',
    ],
    // A supervisor that runs for hours is no operation to trace; its services trace themselves.
    traced: false,
    async run(args, { env, print }) {
      const { values } = parseArgs({
        args,
        options: { services: { type: 'string' }, wait: { type: 'string', default: '60' } },
      });
      const wait = Number(values.wait);
      if (!Number.isFinite(wait) || wait <= 0)
        throw new Error(`--wait: expected seconds > 0, got "${values.wait}"`);
      const { parseServices, up } = await import('./up.js');
      await up({ services: parseServices(values.services), env, readyTimeoutMs: wait * 1000, print });
      return 0;
    },
  },
  demo: {
    usage: ['ballast demo [--seed 42] [--keep]'],
    summary: 'the loop on the reference workload, start to finish (npm run demo)',
    options: [
      'ingest, train, serve, a demand shift, drift and error found, retraining, hot swap,',
      'recovery; starts the suite when none answers',
      '--seed <n>              the story to tell (default 42)',
      '--keep                  leave a suite the demo started running',
    ],
    async run(args, { env, print }) {
      const { values } = parseArgs({
        args,
        options: { seed: { type: 'string', default: '42' }, keep: { type: 'boolean', default: false } },
      });
      const seed = Number(values.seed);
      if (!Number.isSafeInteger(seed) || seed < 0)
        throw new Error(`--seed: expected a whole number, got "${values.seed}"`);
      const { demo } = await import('./demo.js');
      const result = await demo({ env, print, seed, keep: values.keep ?? false });
      print(`the loop closed in ${result.seconds.toFixed(0)}s`);
      return 0;
    },
  },
  status: {
    usage: ['ballast status [--timeout 2] [--json]'],
    summary: "every service's health, the models and their aliases, queue depths, failed background work",
    options: [
      '--timeout <s>           how long a service may take to answer its health check (default 2)',
      JSON_OPTION,
      'a service is ready, not ready, busy (took the connection, did not answer within the',
      'timeout) or down (connection refused); exits 1 when a service is not ready',
    ],
    run: async (args, io) => (await import('./commands-data.js')).statusCommand(args, io),
  },
  ingest: {
    usage: ['ballast ingest <dataset> <file.csv|file.jsonl> [--source s] [--batch 2000] [--commit]'],
    summary: 'send a file through schema validation, with a progress bar',
    options: [
      "--source <s>            the records' source (default cli)",
      '--batch <n>             records per IngestBatch call (default 2000)',
      '--commit                commit a dataset version after the file',
    ],
    run: async (args, io) => (await import('./commands-data.js')).ingestCommand(args, io),
  },
  features: {
    usage: [
      'ballast features [list] [--json]',
      'ballast features show <view> [--version v] [--json]',
      'ballast features stats <view> [--dataset-version id] [--segment s | --all-segments] [--bins 10] [--json]',
      'ballast features apply <view.json>',
    ],
    summary: 'feature views, their materializations and statistics; apply one (protobuf JSON)',
    options: [
      '--version <v>           a view version (default: the latest applied)',
      '--dataset-version <id>  statistics of this materialized dataset version (or the start of its',
      '                        id; default: the newest materialized)',
      '--segment <s>           one segment (e.g. warehouse_id=W3); --all-segments: every one',
      '--bins <n>              histogram bins (default 10)',
      JSON_OPTION,
      'views have no list RPC: list finds those named like a dataset or model, in model lineage',
      'or in materialization runs',
    ],
    run: async (args, io) => (await import('./commands-features.js')).featuresCommand(args, io),
  },
  versions: {
    usage: [
      'ballast versions list <dataset> [--json]',
      'ballast versions show <dataset> <version> [--json]',
      'ballast versions diff <dataset> <a> <b> [--json]',
    ],
    summary: "a dataset's committed versions, one version's fields and quality, what two differ in",
    options: [
      'a version is its number (3 or v3), the start of its id (4+ hex digits) or latest',
      'diff: record counts, event times, schema, quality, and each field whose statistics moved',
      JSON_OPTION,
    ],
    run: async (args, io) => (await import('./commands-versions.js')).versionsCommand(args, io),
  },
  apply: {
    usage: ['ballast apply -f ballast.yaml [--dry-run] [--prune] [--json]'],
    summary: 'create or update what a file declares: datasets, feature views, models, schedules',
    options: [
      '-f, --file <path>       a ballast.yaml or .json (schema: libs/sdk/schema/ballast.schema.json)',
      '--dry-run               print the plan (create / update / unchanged per object), write nothing',
      '--prune                 remove schedules the file does not declare (nothing else has a delete RPC)',
      JSON_OPTION,
    ],
    run: async (args, io) => (await import('./commands-declarative.js')).applyCommand(args, io),
  },
  export: {
    usage: ['ballast export [-o ballast.yaml] [--view name]...'],
    summary: 'the current state as a file that `ballast apply` accepts unchanged',
    options: [
      '-o, --output <path>     write there (default: stdout)',
      '--view <name>           export this feature view too (views have no list RPC: by default the',
      '                        ones named like a dataset or model, or named by schedules and versions)',
    ],
    run: async (args, io) => (await import('./commands-declarative.js')).exportCommand(args, io),
  },
  schema: {
    usage: [
      'ballast schema infer <file.csv|file.jsonl> --dataset <name> [--label f --entity f] [-o ballast.yaml]',
    ],
    summary: "guess a dataset's schema from a sample, as a ballast.yaml to edit and apply",
    options: [
      '--dataset <name>        the dataset the file declares',
      '--label <field>         with --entity: a feature view predicting this numeric field, and a model',
      '--entity <field>        the field identifying an entity (the view needs one)',
      "--owner <team>          the model's owner team (default: default)",
      'a file with no unique string or int column gets an event_id column, which `ballast ingest`',
      "fills with each record's content hash (the same record sent twice is a duplicate)",
      '--sample <n>            records read (default 1000)',
      '-o, --output <path>     write there (default: stdout)',
    ],
    traced: false,
    run: async (args, io) => (await import('./commands-declarative.js')).schemaCommand(args, io),
  },
  datasets: {
    usage: [
      'ballast datasets [list] [--json]',
      'ballast datasets show <name> [--json]',
      'ballast datasets create <name> -f ballast.yaml',
    ],
    summary: 'datasets with their schema, records and latest version; create one from a file',
    options: [JSON_OPTION, '-f, --file <path>       the file declaring the dataset (create)'],
    run: async (args, io) => (await import('./commands-declarative.js')).datasetsCommand(args, io),
  },
  drift: {
    usage: ['ballast drift <model> [--segment s | --all-segments] [--window 24h] [--version n] [--json]'],
    summary: "the model's drift per feature against its training baseline",
    options: [
      '--segment <s>           one segment (e.g. warehouse_id=W3); --all-segments: each of them',
      '--window <30m|24h|7d>   from that long ago (default: the latest window)',
      JSON_OPTION,
    ],
    run: async (args, io) => (await import('./commands-declarative.js')).driftCommand(args, io),
  },
  error: {
    usage: ['ballast error <model> [--segment s | --all-segments] [--window 24h] [--json]'],
    summary: "the model's error on the actuals joined so far",
    options: [
      '--segment <s>           one segment; --all-segments: each of them',
      '--window <30m|24h|7d>   from that long ago (default: everything)',
      JSON_OPTION,
    ],
    run: async (args, io) => (await import('./commands-declarative.js')).errorCommand(args, io),
  },
  predict: {
    usage: [
      `ballast predict <model> --features '{"price": 4.2}' [--version n | --alias a] [--entity key]`,
      'ballast predict <model> --keys warehouse_id=W4,sku=S01 [--view name] [--version n | --alias a]',
    ],
    summary: 'one prediction, with the Jaeger link of its trace',
    options: [
      "--features <json>       the row's features",
      '--keys k=v,...          an entity: its features are read from the online store',
      '--view <name>           the feature view the entity is read from',
      '--version <n>, --alias <a>   which version serves (default production)',
    ],
    run: async (args, io) => (await import('./commands-data.js')).predictCommand(args, io),
  },
  alerts: {
    usage: ['ballast alerts [model] [--firing] [--watch] [--json]'],
    summary: "monitor's alerts (--watch follows them)",
    options: [
      '--firing                only alerts that are firing',
      '--watch                 follow changes as they happen',
      `${JSON_OPTION}; with --watch one object per line`,
    ],
    run: async (args, io) => (await import('./commands-data.js')).alertsCommand(args, io),
  },
  trace: {
    usage: ['ballast trace <trace id>'],
    summary: 'the Jaeger link of a trace (BALLAST_JAEGER_URL, default http://localhost:16686)',
    traced: false,
    run: async (args, io) => (await import('./commands-data.js')).traceCommand(args, io),
  },
  train: {
    usage: [
      'ballast train <model> --view <view> [--hidden 16,8] [--epochs 20] [--batch-size 64]',
      '      [--learning-rate 0.01] [--seed 1] [--dataset-version v] [--promote] [--wait]',
      'ballast train --reproduce <model>@<version>',
    ],
    summary: 'queue a training job (asking twice runs once), or reproduce a version',
    options: [
      "--wait                  show the job's progress until it is done",
      '--promote               promote the new version through the gate',
      '--reproduce m@v         re-run a version from its lineage and compare artifact digests;',
      '                        registers nothing and moves no alias (candidate stays)',
    ],
    run: async (args, io) => (await import('./commands.js')).trainCommand(args, io),
  },
  jobs: {
    usage: [
      'ballast jobs [list] [--limit 20] [--json]',
      'ballast jobs watch <id>',
      'ballast jobs cancel <id> [--reason r]',
    ],
    summary: 'training jobs with their state and progress, failed materializations; follow one; stop one',
    options: [
      JSON_OPTION,
      'list also names failed feature materializations (materialize <dataset>@<version> failed: ...)',
    ],
    run: async (args, io) => (await import('./commands.js')).jobsCommand(args, io),
  },
  schedule: {
    usage: [
      'ballast schedule add <model> --cron "0 3 * * *" [--view v] [--promote]',
      'ballast schedule list [--json]',
      'ballast schedule remove <id>',
    ],
    summary: 'retraining schedules',
    options: [JSON_OPTION],
    run: async (args, io) => (await import('./commands.js')).scheduleCommand(args, io),
  },
  models: {
    usage: [
      'ballast models [list] [--json]',
      'ballast models create <name> [--task regression|classification] [--owner team] [--description d]',
      'ballast models create <name> -f ballast.yaml',
      'ballast models show <model> [--version n] [--json]',
    ],
    summary: 'the registered models; create one; one with its gate and versions (lineage, metrics)',
    options: [
      '--task <t>              regression (default) or classification',
      '--owner <team>          the owning team (default: default)',
      '-f, --file <path>       create the model a ballast.yaml declares (its promotion policy too)',
      '--version <n>           show: one version, its lineage and every metric',
      JSON_OPTION,
    ],
    run: async (args, io) => (await import('./commands-models.js')).modelsCommand(args, io),
  },
  promote: {
    usage: ['ballast promote <model> <version> [--reason "..."] [--force]'],
    summary: 'move production through the gate (--force needs a reason)',
    run: async (args, io) => (await import('./commands.js')).promoteCommand(args, io),
  },
  rollback: {
    usage: ['ballast rollback <model> [--reason "..."]'],
    summary: 'production back to the version it replaced',
    run: async (args, io) => (await import('./commands.js')).rollbackCommand(args, io),
  },
  help: {
    usage: ['ballast help [command]'],
    summary: "this overview, or one command's options",
    traced: false,
    run(args, { print }) {
      const [name] = args;
      if (name === undefined) {
        print(overview());
        return 0;
      }
      const help = commandHelp(name);
      if (help === undefined) throw new Error(`help: no command "${name}"\n\n${overview()}`);
      print(help);
      return 0;
    },
  },
};

const ENVIRONMENT = `Environment: BALLAST_<SERVICE>_ADDR (where each service is), BALLAST_AUTH_TOKEN,
BALLAST_REDIS_URL, BALLAST_DATABASE_URL (unset = embedded PGlite), BALLAST_DATA_DIR
(default .ballast), BALLAST_JAEGER_URL (trace links), OTEL_EXPORTER_OTLP_ENDPOINT (the CLI's
and the services' traces, e.g. to Jaeger on http://localhost:4317).`;

export function overview(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((name) => name.length));
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return `ballast — keeps machine-learning models working after they are deployed

Usage: ballast <command> [options]   (ballast help <command>, or ballast <command> --help)

Commands:
${lines.join('\n')}

${ENVIRONMENT}`;
}

/** A command's help: its usage, what it does, its options; undefined for no such command. */
export function commandHelp(name: string): string | undefined {
  const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!command) return undefined;
  const usage = command.usage.map((line, i) => `${i === 0 ? 'Usage: ' : '       '}${line}`).join('\n');
  const options = command.options?.length
    ? `\n\nOptions:\n${command.options.map((o) => `  ${o}`).join('\n')}`
    : '';
  return `${usage}\n\n${command.summary}${options}`;
}

/** Whether `ballast <argv>` runs a traced command (not help, not an unknown command, not up). */
export function isTracedRun(argv: readonly string[]): boolean {
  const [name = 'help', ...rest] = argv;
  const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  return command !== undefined && command.traced !== false && !wantsHelp(rest);
}

export const wantsHelp = (args: readonly string[]) => args.includes('--help') || args.includes('-h');
