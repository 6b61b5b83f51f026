#!/usr/bin/env node
import { parseArgs } from 'node:util';
import {
  jobsCommand,
  modelsCommand,
  promoteCommand,
  rollbackCommand,
  scheduleCommand,
  trainCommand,
} from './commands.js';
import {
  alertsCommand,
  featuresCommand,
  ingestCommand,
  predictCommand,
  statusCommand,
  traceCommand,
} from './commands-data.js';
import { demo } from './demo.js';
import { parseServices, up } from './up.js';

const HELP = `ballast — keeps machine-learning models working after they are deployed

Usage: ballast <command> [options]

Commands:
  up       run the whole suite on this machine (npm start)
             --services a,b   only these services (default: all six)
             --wait <s>       how long to wait for every service to be ready (default 60)
  demo [--seed 42] [--keep]
           the loop on the reference workload: ingest, train, serve, a demand shift,
           drift and error found, retraining, hot swap, recovery (npm run demo);
           starts the suite when none answers (--keep leaves it running)
  status   every service's health, the models and their aliases, queue depths
  ingest <dataset> <file.csv|file.jsonl> [--source s] [--batch 2000] [--commit]
           send a file through schema validation, with a progress bar
  features apply <view.json>
           apply a feature view definition (protobuf JSON)
  predict <model> --features '{"price": 4.2}' [--version n | --alias a] [--entity key]
  predict <model> --keys warehouse_id=W4,sku=S01 [--view name] [--version n | --alias a]
           one prediction (features given, or an entity's read from the online store),
           with the Jaeger link of its trace
  alerts [model] [--firing] [--watch]
           monitor's alerts (--watch follows them)
  trace <trace id>
           the Jaeger link of a trace (BALLAST_JAEGER_URL, default http://localhost:16686)
  train <model> --view <view> [--hidden 16,8] [--epochs 20] [--batch-size 64]
           [--learning-rate 0.01] [--seed 1] [--dataset-version v] [--promote] [--wait]
           queue a training job (asking twice runs once); --wait shows its progress
  train --reproduce <model>@<version>
           re-run a version from its lineage and compare artifact digests
  jobs [list] | watch <id> | cancel <id>
           training jobs with their state and progress; follow one; stop one
  schedule add <model> --cron "0 3 * * *" [--view v] [--promote] | list | remove <id>
           retraining schedules
  models   list models with their versions and aliases
  promote <model> <version> [--reason "..."] [--force]
           move production through the gate (--force needs a reason)
  rollback <model> [--reason "..."]
           production back to the version it replaced
  help     show this text

Environment: BALLAST_<SERVICE>_ADDR (where each service is), BALLAST_AUTH_TOKEN,
BALLAST_REDIS_URL, BALLAST_DATABASE_URL (unset = embedded PGlite),
BALLAST_DATA_DIR (default .ballast), OTEL_EXPORTER_OTLP_ENDPOINT (traces to Jaeger).`;

const print = (line: string) => console.log(line);

async function main(argv: string[]): Promise<number> {
  const [command = 'help', ...rest] = argv;
  switch (command) {
    case 'up': {
      const { values } = parseArgs({
        args: rest,
        options: { services: { type: 'string' }, wait: { type: 'string', default: '60' } },
      });
      const wait = Number(values.wait);
      if (!Number.isFinite(wait) || wait <= 0)
        throw new Error(`--wait: expected seconds > 0, got "${values.wait}"`);
      await up({
        services: parseServices(values.services),
        env: process.env,
        readyTimeoutMs: wait * 1000,
        print: (line) => console.log(line),
      });
      return 0;
    }
    case 'status':
      return statusCommand(process.env, print);
    case 'ingest':
      return ingestCommand(rest, process.env, print);
    case 'features':
      return featuresCommand(rest, process.env, print);
    case 'predict':
      return predictCommand(rest, process.env, print);
    case 'alerts':
      return alertsCommand(rest, process.env, print);
    case 'trace':
      return traceCommand(rest, process.env, print);
    case 'train':
      return trainCommand(rest, process.env, print);
    case 'demo': {
      const { values } = parseArgs({
        args: rest,
        options: { seed: { type: 'string', default: '42' }, keep: { type: 'boolean', default: false } },
      });
      const seed = Number(values.seed);
      if (!Number.isSafeInteger(seed) || seed < 0)
        throw new Error(`--seed: expected a whole number, got "${values.seed}"`);
      const result = await demo({ env: process.env, print, seed, keep: values.keep ?? false });
      print(`the loop closed in ${result.seconds.toFixed(0)}s`);
      return 0;
    }
    case 'jobs':
      return jobsCommand(rest, process.env, print);
    case 'schedule':
      return scheduleCommand(rest, process.env, print);
    case 'models':
      return modelsCommand(process.env, print);
    case 'promote':
      return promoteCommand(rest, process.env, print);
    case 'rollback':
      return rollbackCommand(rest, process.env, print);
    case 'help':
    case '--help':
    case '-h':
      console.log(HELP);
      return 0;
    default:
      console.error(`ballast: unknown command "${command}"\n\n${HELP}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(`ballast: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  },
);
