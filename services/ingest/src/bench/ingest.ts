import { mkdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import {
  ColumnSchema,
  IngestResponseSchema,
  IngestService,
  RecordBatchSchema,
  SchemaSchema,
} from '@ballast/contracts/ballast/ingest/v1/ingest_pb.js';
import { createClient } from '@ballast/grpc-kit';
import { startServiceProcess } from '@ballast/grpc-kit/testing';
import { migrate, openDatabase, type Sql, type SqlKind } from '@ballast/storage';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import { credentials, Client as GrpcClient } from '@grpc/grpc-js';
import { migrations } from '../migrations.js';
import { parseSchema } from '../schema.js';
import { salesBatch, salesRows, salesSchema } from '../testing/sales.js';
import { compileSchema } from '../validation.js';

/**
 * Ingest throughput end to end: records/s through the Ingest stream of the real service
 * process (decode, compiled validation, durable transaction per batch, ack), next to the
 * same rows written straight into the same table with the same statement (the limit the
 * database sets here), as a ratio, with the batch-acknowledgement latency. Measured like
 * perf_analyzer: a warm-up, then 5-second windows until three in a row agree within 10%.
 *
 * The client sends pre-encoded batches (only the event ids are encoded per batch), so that
 * the client's own CPU takes as little as possible from the service on this 2-core machine.
 */
const here = dirname(fileURLToPath(import.meta.url));
const WINDOW_MS = Number(process.env.BENCH_WINDOW_MS ?? 5_000);
const MAX_WINDOWS = 6;
const BATCH = Number(process.env.BENCH_BATCH ?? 1_000);
const STREAMS = Number(process.env.BENCH_STREAMS ?? 2);
/** Batches a stream keeps unacknowledged (and the raw writer keeps in flight per stream). */
const WINDOW = Number(process.env.BENCH_WINDOW ?? 8);
const BACKENDS = (process.env.BENCH_BACKENDS ?? 'postgres,pglite').split(',') as SqlKind[];
const DATABASE_URL = process.env.BALLAST_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

interface Sample {
  at: number;
  records: number;
  latencyMs: number;
}

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
}

/** Batches of the sales workload for one stream, with fresh event ids each time. */
class BatchSource {
  private next = 0;
  private readonly staticPart: Uint8Array;
  private readonly rowsTail: string[];
  private readonly times: string[];

  constructor(
    private readonly stream: string,
    readonly dataset: string,
  ) {
    const template = salesBatch(dataset, stream, salesRows('w1', 0, BATCH));
    const rest = create(RecordBatchSchema, {
      ...template,
      columns: (template.columns ?? []).filter((c) => c.name !== 'event_id'),
    });
    this.staticPart = toBinary(RecordBatchSchema, rest);
    // The same rows as canonical JSON for the raw writer: everything but the event id is fixed.
    const schema = compileSchema({
      ...parseSchema(create(SchemaSchema, salesSchema())),
      major: 1,
      minor: 0,
      createdAt: new Date(),
    });
    const json = JSON.parse(schema.validate(create(RecordBatchSchema, template)).rowsJson) as {
      t: string;
      d: Record<string, unknown>;
    }[];
    this.times = json.map((r) => r.t);
    this.rowsTail = json.map((r) => {
      const { event_id: _id, ...rest } = r.d;
      return JSON.stringify(rest).slice(1);
    });
  }

  private ids(): string[] {
    const base = this.next;
    this.next += BATCH;
    return Array.from({ length: BATCH }, (_, i) => `${this.stream}-${String(base + i).padStart(10, '0')}`);
  }

  /** An encoded IngestRequest. */
  request(): Buffer {
    const column = toBinary(
      ColumnSchema,
      create(ColumnSchema, { name: 'event_id', values: { case: 'strings', value: { values: this.ids() } } }),
    );
    const batch = new BinaryWriter()
      .raw(this.staticPart)
      .tag(4, WireType.LengthDelimited)
      .bytes(column)
      .finish();
    return Buffer.from(new BinaryWriter().tag(1, WireType.LengthDelimited).bytes(batch).finish());
  }

  /** The same batch as the service would write it. */
  rowsJson(): string {
    const ids = this.ids();
    return `[${ids.map((id, i) => `{"i":"${id}","t":"${this.times[i]}","d":{"event_id":"${id}",${this.rowsTail[i]}}`).join(',')}]`;
  }
}

/** Runs load until stopped; returns a function that stops it. */
type Load = (samples: Sample[]) => () => Promise<void>;

async function windows(load: Load) {
  const samples: Sample[] = [];
  const stop = load(samples);
  await sleep(Math.min(2_000, WINDOW_MS));
  const results: { perSecond: number; from: number; to: number }[] = [];
  let stable = false;
  while (results.length < MAX_WINDOWS && !stable) {
    const from = performance.now();
    await sleep(WINDOW_MS);
    const to = performance.now();
    const records = samples.filter((s) => s.at >= from && s.at < to).reduce((n, s) => n + s.records, 0);
    results.push({ perSecond: records / ((to - from) / 1000), from, to });
    const last = results.slice(-3).map((w) => w.perSecond);
    stable = last.length === 3 && Math.max(...last) <= Math.min(...last) * 1.1;
  }
  await stop();
  const kept = results.slice(-3);
  const from = kept[0]?.from ?? 0;
  const to = kept.at(-1)?.to ?? 0;
  const inWindows = samples.filter((s) => s.at >= from && s.at < to);
  const latencies = inWindows.map((s) => s.latencyMs).sort((a, b) => a - b);
  return {
    recordsPerSecond: Math.round(kept.reduce((n, w) => n + w.perSecond, 0) / kept.length),
    p50: quantile(latencies, 0.5),
    p90: quantile(latencies, 0.9),
    p95: quantile(latencies, 0.95),
    p99: quantile(latencies, 0.99),
    windows: results.length,
    stable,
  };
}

/** The raw limit: the service's insert statement, straight from this process, same batches. */
function rawLoad(sql: Sql, datasetId: string): Load {
  return (samples) => {
    let running = true;
    const workers = Array.from({ length: STREAMS }, (_, s) => {
      const source = new BatchSource(`raw${s}`, 'bench');
      return Array.from({ length: Math.min(WINDOW, 4) }, async () => {
        while (running) {
          const rows = source.rowsJson();
          const t0 = performance.now();
          await sql.transaction((tx) =>
            tx.query(
              `INSERT INTO records (dataset_id, event_id, event_time, source, schema_major, schema_minor, data)
               SELECT $1, r.i, r.t, $3, 1, 0, r.d
               FROM json_to_recordset($2::json) AS r(i text, t timestamptz, d json)
               ORDER BY r.i COLLATE "C"
               ON CONFLICT (dataset_id, event_id) DO NOTHING`,
              [datasetId, rows, `raw${s}`],
            ),
          );
          const at = performance.now();
          samples.push({ at, records: BATCH, latencyMs: at - t0 });
          // PGlite answers without any I/O: without this the loop would keep the event loop
          // in microtasks and the window timers would never fire.
          await new Promise((resolve) => setImmediate(resolve));
        }
      });
    }).flat();
    return async () => {
      running = false;
      await Promise.all(workers);
    };
  };
}

/** Client-streaming batches into the service: each stream keeps WINDOW batches unacknowledged. */
function ingestLoad(address: string, problems: string[]): Load {
  return (samples) => {
    const client = new GrpcClient(address, credentials.createInsecure(), {
      'grpc.max_send_message_length': 64 * 1024 * 1024,
    });
    let running = true;
    const streams = Array.from({ length: STREAMS }, (_, s) => {
      const source = new BatchSource(`s${s}`, 'bench');
      const call = client.makeBidiStreamRequest(
        `/${IngestService.typeName}/Ingest`,
        (b: Buffer) => b,
        (b: Buffer) => fromBinary(IngestResponseSchema, b),
      );
      const sentAt: number[] = [];
      const send = () => {
        sentAt.push(performance.now());
        call.write(source.request());
      };
      for (let i = 0; i < WINDOW; i++) send();
      let acked = 0;
      call.on('data', (response: ReturnType<typeof fromBinary<typeof IngestResponseSchema>>) => {
        const at = performance.now();
        const result = response.result;
        if (result?.accepted !== BATCH && problems.length < 5) {
          problems.push(`stream ${s} batch ${acked}: ${JSON.stringify(result?.violations[0] ?? result)}`);
        }
        samples.push({ at, records: result?.accepted ?? 0, latencyMs: at - (sentAt[acked] ?? at) });
        acked++;
        if (running) send();
        else if (acked === sentAt.length) call.end();
      });
      return new Promise<void>((resolve, reject) => {
        call.on('end', resolve);
        call.on('error', reject);
      });
    });
    return async () => {
      running = false;
      await Promise.all(streams);
      client.close();
    };
  };
}

const progress = (line: string) => process.stderr.write(`${line}\n`);
const rows = [];
const problems: string[] = [];
const cpuStart = process.cpuUsage();
for (const backend of BACKENDS) {
  const schema = `bench_ingest_${process.pid}`;
  const dataDir = await mkdtemp(join(tmpdir(), 'ballast-ingest-bench-'));
  // The raw limit, on its own copy of the tables.
  const rawSchema = `${schema}_raw`;
  const rawSql = await openDatabase(
    backend === 'postgres' ? { url: DATABASE_URL, schema: rawSchema } : { dataDir, schema: rawSchema },
  );
  await migrate(rawSql, migrations);
  progress(`${backend}: raw database writes`);
  const raw = await windows(rawLoad(rawSql, '1'));
  await rawSql.exec(`DROP SCHEMA "${rawSchema}" CASCADE`);
  await rawSql.close();

  const env: Record<string, string> = { BALLAST_INGEST_DB_SCHEMA: schema, BALLAST_DATA_DIR: dataDir };
  if (backend === 'postgres') env.BALLAST_DATABASE_URL = DATABASE_URL;
  progress(`${backend}: starting the service`);
  const service = await startServiceProcess({
    package: '@ballast/ingest',
    env,
    ready: IngestService.typeName,
  });
  progress(`${backend}: Ingest streams`);
  const client = createClient(IngestService, { address: service.address });
  await client.createDataset({ name: 'bench', schema: salesSchema() });
  client.close();
  const serviceCpu = process.cpuUsage();
  const ingest = await windows(ingestLoad(service.address, problems));
  const clientCpu = process.cpuUsage(serviceCpu);
  await service.stop();
  if (backend === 'postgres') {
    const sql = await openDatabase({ url: DATABASE_URL, schema });
    await sql.exec(`DROP SCHEMA "${schema}" CASCADE`);
    await sql.close();
  }
  await rm(dataDir, { recursive: true, force: true });
  rows.push({
    backend,
    ingest_records_per_s: ingest.recordsPerSecond,
    raw_db_records_per_s: raw.recordsPerSecond,
    ratio: Math.round((ingest.recordsPerSecond / raw.recordsPerSecond) * 100) / 100,
    ack_p50_ms: Math.round(ingest.p50 * 10) / 10,
    ack_p90_ms: Math.round(ingest.p90 * 10) / 10,
    ack_p95_ms: Math.round(ingest.p95 * 10) / 10,
    ack_p99_ms: Math.round(ingest.p99 * 10) / 10,
    raw_p99_ms: Math.round(raw.p99 * 10) / 10,
    windows: `${ingest.windows}/${raw.windows}`,
    stable: ingest.stable && raw.stable,
    client_cpu_s: Math.round(((clientCpu.user + clientCpu.system) / 1e6) * 10) / 10,
  });
  progress(`${backend}: ${JSON.stringify(rows.at(-1))}`);
}
const cpu = process.cpuUsage(cpuStart);

console.log(
  `ingest: ${STREAMS} Ingest streams x ${WINDOW} batches in flight, ${BATCH} records per batch, ` +
    'against the service process; raw: the same insert straight into the same database',
);
console.table(rows);
for (const p of problems) console.log(`unexpected ack: ${p}`);
const out = join(here, '..', '..', '..', '..', 'test', 'bench', 'results', 'ingest.json');
mkdirSync(dirname(out), { recursive: true });
writeFileSync(
  out,
  `${JSON.stringify(
    {
      benchmark: 'ingest',
      date: new Date().toISOString(),
      node: process.version,
      windowMs: WINDOW_MS,
      batch: BATCH,
      streams: STREAMS,
      window: WINDOW,
      cpu,
      rows,
      problems,
    },
    (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v),
    2,
  )}\n`,
);
console.log(`wrote ${out}`);
