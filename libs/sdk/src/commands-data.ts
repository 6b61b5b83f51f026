import { createHash } from 'node:crypto';
import { createReadStream, statSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { SERVICES } from '@ballast/config';
import { type Field, FieldType } from '@ballast/contracts/ballast/ingest/v1/ingest_pb.js';
import { type Alert, AlertSchema, AlertState } from '@ballast/contracts/ballast/monitor/v1/monitor_pb.js';
import { ModelSchema } from '@ballast/contracts/ballast/registry/v1/registry_pb.js';
import { connectRedis, createQueue, DEFAULT_REDIS_URL, queueNames } from '@ballast/queue';
import { toJson } from '@bufbuild/protobuf';
import { trace } from '@opentelemetry/api';
import { parse } from 'csv-parse';
import { withClients } from './clients.js';
import { aliasList } from './commands-models.js';
import { localEndpoints, probeService } from './health.js';
import { failedMaterializations } from './materializations.js';
import { explainNotFound, requireModel } from './models.js';
import { type CommandIo, printJson, printTable, progress } from './output.js';

/**
 * The data-side commands of the `ballast` CLI: status, ingest, predict,
 * alerts and trace. Each returns the exit code; output goes through `print`.
 */
/**
 * `ballast status [--json]`: every service's health, then (when all are ready) the models
 * with their aliases and the queue depths. Exit 1 when a service is not ready.
 */
export async function statusCommand(args: string[], { env, print }: CommandIo): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { json: { type: 'boolean', default: false }, timeout: { type: 'string', default: '2' } },
  });
  const timeoutMs = Number(values.timeout) * 1000;
  if (!(timeoutMs > 0)) throw new Error(`--timeout: expected seconds > 0, got "${values.timeout}"`);
  const services = await Promise.all(
    SERVICES.map(async (name) => {
      const endpoints = localEndpoints(name, env);
      const probed = await probeService(name, endpoints, timeoutMs);
      return { name, ...probed, endpoint: endpoints.grpc ?? endpoints.http };
    }),
  );
  const allReady = services.every((s) => s.readiness === 'ready');
  const { models, failed } = allReady
    ? await withClients(env, async ({ registry, feature }) => ({
        models: (await registry.listModels({})).models,
        failed: await failedMaterializations(feature),
      }))
    : { models: [], failed: [] };
  const queues: { name: string; waiting: number; active: number; delayed: number; failed: number }[] = [];
  if (allReady) {
    const redis = connectRedis(env.BALLAST_REDIS_URL || DEFAULT_REDIS_URL);
    try {
      for (const name of queueNames) {
        const queue = createQueue(name, { connection: redis });
        const c = await queue.getJobCounts('waiting', 'active', 'delayed', 'failed');
        queues.push({
          name,
          waiting: c.waiting ?? 0,
          active: c.active ?? 0,
          delayed: c.delayed ?? 0,
          failed: c.failed ?? 0,
        });
        await queue.close();
      }
    } finally {
      redis.disconnect();
    }
  }
  if (values.json) {
    printJson(print, {
      ready: allReady,
      services,
      models: models.map((m) => toJson(ModelSchema, m, { alwaysEmitImplicit: true })),
      queues,
      failedWork: failed.map((f) => f.line),
    });
    return allReady ? 0 : 1;
  }
  printTable(
    print,
    ['SERVICE', 'STATE', 'ADDRESS', 'DETAIL'],
    services.map((s) => [s.name, s.readiness, s.endpoint, s.readiness === 'ready' ? '' : s.detail]),
  );
  if (!allReady) {
    print(
      services.some((s) => s.readiness === 'busy')
        ? '\nnot every service is ready: a busy service is running but did not answer in time (`--timeout` waits longer)'
        : '\nnot every service is ready: `npm start` runs the suite; `ballast up --services ...` runs a part',
    );
    return 1;
  }
  print('');
  if (models.length === 0) print('no models yet');
  else
    printTable(
      print,
      ['MODEL', 'LATEST', 'ALIASES'],
      models.map((m) => [m.name, `v${m.latestVersion}`, aliasList(m.aliases)]),
    );
  print('');
  printTable(
    print,
    ['QUEUE', 'WAITING / ACTIVE / DELAYED / FAILED'],
    queues.map((q) => [q.name, `${q.waiting} / ${q.active} / ${q.delayed} / ${q.failed}`]),
  );
  print('');
  if (failed.length === 0) print('no failed background work');
  else for (const f of failed) print(f.line);
  return 0;
}

/** A cell of a CSV or JSONL record as the schema types it; undefined is null. */
function typed(field: Field, raw: unknown, where: string): number | bigint | string | boolean | undefined {
  if (raw === null || raw === undefined || raw === '') return undefined;
  switch (field.type) {
    case FieldType.FLOAT:
    case FieldType.INT: {
      const n = typeof raw === 'number' ? raw : Number(raw);
      if (Number.isNaN(n)) throw new Error(`${where}: ${field.name} is not a number: "${raw}"`);
      return field.type === FieldType.INT && Number.isInteger(n) ? BigInt(n) : n;
    }
    case FieldType.BOOL:
      if (typeof raw === 'boolean') return raw;
      if (/^(true|1|yes)$/i.test(String(raw))) return true;
      if (/^(false|0|no)$/i.test(String(raw))) return false;
      throw new Error(`${where}: ${field.name} is not a boolean: "${raw}"`);
    case FieldType.TIMESTAMP: {
      const ms =
        typeof raw === 'number' ? raw : /^\d+$/.test(String(raw)) ? Number(raw) : Date.parse(String(raw));
      if (!Number.isFinite(ms)) throw new Error(`${where}: ${field.name} is not a time: "${raw}"`);
      return BigInt(Math.floor(ms / 1000));
    }
    default:
      return String(raw);
  }
}

/** Records as the ingest service's columnar batch, one typed column per schema field present. */
function columnar(dataset: string, source: string, fields: Field[], records: Record<string, unknown>[]) {
  return {
    dataset,
    source,
    rowCount: records.length,
    columns: fields
      .filter((f) => records.some((r) => f.name in r))
      .map((f) => {
        const values = records.map((r) => r[f.name]);
        const nullRows = values.flatMap((v, i) => (v === undefined ? [i] : []));
        const present = <T>(fill: T) => values.map((v) => (v === undefined ? fill : v)) as T[];
        const column =
          f.type === FieldType.FLOAT
            ? { case: 'doubles' as const, value: { values: present(0).map(Number) } }
            : f.type === FieldType.INT
              ? { case: 'ints' as const, value: { values: present(0n).map((v) => BigInt(v)) } }
              : f.type === FieldType.BOOL
                ? { case: 'bools' as const, value: { values: present(false) } }
                : f.type === FieldType.TIMESTAMP
                  ? { case: 'timestamps' as const, value: { seconds: present(0n) } }
                  : { case: 'strings' as const, value: { values: present('').map(String) } };
        return { name: f.name, values: column, nullRows };
      }),
  };
}

async function* records(path: string): AsyncGenerator<Record<string, unknown>> {
  if (/\.jsonl?$/i.test(path)) {
    let line = 0;
    for await (const text of createInterface({
      input: createReadStream(path),
      crlfDelay: Number.POSITIVE_INFINITY,
    })) {
      line++;
      if (!text.trim()) continue;
      try {
        yield JSON.parse(text) as Record<string, unknown>;
      } catch (err) {
        throw new Error(`${path}:${line}: not JSON (${(err as Error).message})`);
      }
    }
    return;
  }
  yield* createReadStream(path).pipe(parse({ columns: true, skip_empty_lines: true, trim: true }));
}

function bar(done: number, total: number): string {
  const width = 24;
  const filled = total > 0 ? Math.round((done / total) * width) : 0;
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${total > 0 ? Math.round((done / total) * 100) : 0}%`;
}

/** `ballast ingest <dataset> <file.csv|file.jsonl>`: the file in batches, with a progress bar. */
export async function ingestCommand(args: string[], { env, print, stdout }: CommandIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      source: { type: 'string', default: 'cli' },
      batch: { type: 'string', default: '2000' },
      commit: { type: 'boolean', default: false },
    },
  });
  const [dataset, path] = positionals;
  if (!dataset || !path)
    throw new Error(
      'ingest: `ballast ingest <dataset> <file.csv|file.jsonl> [--source s] [--batch 2000] [--commit]`',
    );
  const batchSize = Number(values.batch);
  if (!Number.isSafeInteger(batchSize) || batchSize < 1 || batchSize > 10_000)
    throw new Error(`--batch: expected 1-10000 records, got "${values.batch}"`);
  const size = statSync(path).size;
  return withClients(env, async ({ ingest }) => {
    const { dataset: found } = await ingest.getDataset({ name: dataset });
    const fields = found?.schema?.fields ?? [];
    const byName = new Map(fields.map((f) => [f.name, f]));
    const idField = found?.schema?.eventIdField ?? '';
    const totals = { records: 0, accepted: 0, duplicates: 0, quarantined: 0 };
    const reasons: string[] = [];
    let pending: Record<string, unknown>[] = [];
    const send = async () => {
      if (pending.length === 0) return;
      const { result } = await ingest.ingestBatch({
        batch: columnar(dataset, values.source ?? 'cli', fields, pending),
      });
      totals.accepted += result?.accepted ?? 0;
      totals.duplicates += result?.duplicates ?? 0;
      totals.quarantined += result?.quarantined ?? 0;
      for (const v of result?.violations ?? [])
        if (reasons.length < 10)
          reasons.push(`${v.eventId || `record ${v.recordIndex}`}: ${v.field} ${v.rule} (${v.message})`);
      pending = [];
    };
    // Progress by the size of what was read so far against the file's size (close enough
    // to show movement; exact byte offsets are not exposed by the parsers).
    let bytes = 0;
    const shown = progress(print, stdout);
    for await (const record of records(path)) {
      totals.records++;
      bytes += JSON.stringify(record).length;
      const row: Record<string, unknown> = {};
      for (const [key, raw] of Object.entries(record)) {
        const field = byName.get(key);
        // Unknown columns go through as text: ingest answers which field the schema lacks.
        row[key] = field ? typed(field, raw, `${path} record ${totals.records}`) : raw;
      }
      // A file with no id column of its own (see schema infer) gets its records' content hash:
      // sending the same file again then drops every record as a duplicate.
      if (idField && !(idField in record))
        row[idField] = createHash('sha256').update(JSON.stringify(record)).digest('hex').slice(0, 32);
      pending.push(row);
      if (pending.length >= batchSize) {
        await send();
        shown.update(`  ${bar(Math.min(bytes, size), size)} ${totals.records} records`);
      }
    }
    await send();
    shown.done();
    print(
      `${dataset}: ${totals.records} records, ${totals.accepted} accepted, ${totals.duplicates} duplicates dropped, ${totals.quarantined} quarantined`,
    );
    for (const reason of reasons) print(`  quarantined ${reason}`);
    if (values.commit) {
      // The commit is an operation of the service: the CLI follows it (each wait well within
      // a call's deadline) for as long as the server works, and never times out on it.
      const started = await ingest.commitVersion({ dataset, returnOperation: true });
      let operation = started.operation;
      const committing = progress(print, stdout);
      while (operation && !operation.done) {
        const total = Number(operation.recordsTotal);
        committing.update(
          `  committing ${bar(Number(operation.recordsDone), total)} ${operation.recordsDone}/${total} records`,
        );
        ({ operation } = await ingest.waitOperation({ id: operation.id, timeout: { seconds: 2n } }));
      }
      committing.done();
      if (operation?.errorCode) throw new Error(`commit of ${dataset} failed: ${operation.errorMessage}`);
      const version = operation?.version ?? started.version;
      const created = operation ? operation.created : started.created;
      print(
        `${created ? 'committed' : 'unchanged'} version ${version?.id.slice(0, 12)} (${version?.recordCount} records)`,
      );
    }
    return 0;
  });
}

export const jaegerBase = (env: NodeJS.ProcessEnv) =>
  (env.BALLAST_JAEGER_URL || 'http://localhost:16686').replace(/\/$/, '');

/** Where Jaeger shows the trace of the active span (the CLI command's), or undefined outside one. */
export function activeTraceLink(env: NodeJS.ProcessEnv): string | undefined {
  const span = trace.getActiveSpan()?.spanContext();
  return span && trace.isSpanContextValid(span) ? `${jaegerBase(env)}/trace/${span.traceId}` : undefined;
}

/**
 * `ballast predict <model> --features '{"price": 4.2}'`: one row, with its trace link; or
 * `--keys warehouse_id=W4,sku=S01`: one entity, its features read from the online store.
 */
export async function predictCommand(args: string[], { env, print }: CommandIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      features: { type: 'string' },
      keys: { type: 'string' },
      view: { type: 'string' },
      version: { type: 'string' },
      alias: { type: 'string' },
      entity: { type: 'string' },
    },
  });
  const [model] = positionals;
  if (!model || !values.features === !values.keys)
    throw new Error(
      `predict: \`ballast predict <model> --features '{"price": 4.2, "promo": 1}'\` or \`--keys warehouse_id=W4,sku=S01\` (one of them) [--version n | --alias a]`,
    );
  let input:
    | { rows: { features: Record<string, number>; entityKey: string }[] }
    | { entities: { featureView: string; entities: { keys: Record<string, string> }[] } };
  if (values.keys) {
    const keys: Record<string, string> = {};
    for (const pair of values.keys.split(',')) {
      const at = pair.indexOf('=');
      if (at <= 0 || at === pair.length - 1) throw new Error(`--keys: "${pair}" is not key=value`);
      keys[pair.slice(0, at).trim()] = pair.slice(at + 1).trim();
    }
    input = { entities: { featureView: values.view ?? '', entities: [{ keys }] } };
  } else {
    let features: Record<string, number>;
    try {
      features = JSON.parse(values.features ?? '') as Record<string, number>;
    } catch (err) {
      throw new Error(`--features: not JSON: ${(err as Error).message}`);
    }
    input = { rows: [{ features, entityKey: values.entity ?? '' }] };
  }
  return withClients(env, async ({ inference, registry }) => {
    // The call's span is a child of the CLI command's, and the services' spans of it: the
    // command's trace is the one to look at.
    const response = await inference
      .predict({
        model,
        ...(values.version ? { version: Number(values.version) } : {}),
        ...(values.alias ? { alias: values.alias } : {}),
        ...input,
      })
      .catch(async (err: unknown) => {
        throw await explainNotFound(err, registry, model);
      });
    for (const [name, output] of Object.entries(response.predictions[0]?.outputs ?? {}))
      print(`${name}: ${output.values.map((v) => Number(v.toPrecision(6))).join(', ')}`);
    print(
      `${response.model} v${response.version}${response.alias ? ` (${response.alias})` : ''} on ${response.backend}, ${response.timings?.totalUs ?? 0n} us; request ${response.requestId}`,
    );
    const link = activeTraceLink(env);
    if (link) print(`trace: ${link}`);
    return 0;
  });
}

/** `ballast trace <trace id>`: where to see a trace (the CLI's predict prints its own). */
export function traceCommand(args: string[], { env, print }: CommandIo): number {
  const [id] = args;
  if (!id || !/^[0-9a-f]{32}$/i.test(id))
    throw new Error(
      'trace: `ballast trace <trace id>` (32 hex digits, e.g. from `ballast predict` or a log line)',
    );
  print(`${jaegerBase(env)}/trace/${id.toLowerCase()}`);
  return 0;
}

/**
 * One alert as a line: its state (aligned), then what fired where, on which version (and the
 * version its latest window came from, when a hot swap came after), and what it started.
 */
function alertLine(a: Alert): string {
  const fired = a.firedVersion || a.version;
  const versions = fired === a.version ? `v${fired}` : `v${fired} (latest v${a.version})`;
  return `${a.state === AlertState.FIRING ? 'FIRING  ' : 'resolved'} ${a.model} ${a.rule} on ${a.segment || 'all rows'} ${versions}: ${Number(a.value.toPrecision(4))} (threshold ${a.threshold})${a.retrainJobId ? `; retraining ${a.retrainJobId}` : ''}`;
}

/** `ballast alerts [model] [--firing] [--watch] [--json]`. */
export async function alertsCommand(args: string[], { env, print }: CommandIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      firing: { type: 'boolean', default: false },
      watch: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    },
  });
  const [model = ''] = positionals;
  const asJson = (a: Alert) => toJson(AlertSchema, a, { alwaysEmitImplicit: true });
  return withClients(env, async ({ monitor, registry }) => {
    if (model) await requireModel(registry, model);
    if (values.watch) {
      // One line per change: a JSON object each with --json (JSON Lines).
      for await (const message of monitor.watchAlerts({ model }))
        if (message.alert)
          print(values.json ? JSON.stringify(asJson(message.alert)) : alertLine(message.alert));
      return 0;
    }
    const { alerts } = await monitor.listAlerts({
      model,
      ...(values.firing ? { state: AlertState.FIRING } : {}),
    });
    if (values.json) printJson(print, alerts.map(asJson));
    else if (alerts.length === 0) print(model ? `no alerts for ${model}` : 'no alerts');
    else for (const a of alerts) print(alertLine(a));
    return 0;
  });
}
