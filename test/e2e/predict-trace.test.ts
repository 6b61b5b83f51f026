import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { InferenceService } from '@ballast/contracts/ballast/inference/v1/inference_pb.js';
import { RegistryService } from '@ballast/contracts/ballast/registry/v1/registry_pb.js';
import { createClient } from '@ballast/grpc-kit';
import { waitUntil } from '@ballast/grpc-kit/testing';
import { connectRedis, type RedisConnection } from '@ballast/queue';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { predictRequest, registerDemandModel } from '../reliability/workload.js';
import { OtlpReceiver, type ReceivedSpan, SpanKind } from './otlp-receiver.js';
import { eventually, type RunningProcess, startServiceProcess, waitServing } from './support.js';

// Issue 18 item 4, done: one `ballast predict` with an OTLP endpoint is ONE trace, rooted in
// the CLI. The CLI runs as a child process exporting to a receiver in this test, against a
// registry and an inference process exporting to the same receiver; inference serves a small
// demand model the registry holds as `production`. Redis DB 13 (flushed) keeps inference's
// prediction log apart from every other test.
const REDIS_URL = process.env.BALLAST_TEST_PREDICT_TRACE_REDIS_URL ?? 'redis://127.0.0.1:6379/13';
const root = mkdtempSync(join(tmpdir(), 'ballast-predict-trace-'));
const receiver = new OtlpReceiver();
const cli = join(dirname(createRequire(import.meta.url).resolve('@ballast/sdk/package.json')), 'dist/cli.js');
const PREDICT = 'grpc.ballast.inference.v1.InferenceService/Predict';
const MODEL = 'predict-trace-demand';
const execFileAsync = promisify(execFile);

describe('`ballast predict` with an OTLP endpoint', () => {
  let redis: RedisConnection;
  let registry: RunningProcess;
  let inference: RunningProcess;

  /** The built CLI as a child; it rejects on a non-zero exit, with the CLI's stderr in its message. */
  function runCli(args: string[]) {
    // Nothing from the developer's shell may point the CLI elsewhere or switch export off.
    const inherited = Object.entries(process.env).filter(
      ([key]) => !/^(OTEL_|BALLAST_|NODE_OPTIONS$)/.test(key),
    );
    return execFileAsync(process.execPath, [cli, ...args], {
      env: {
        ...Object.fromEntries(inherited),
        BALLAST_REGISTRY_ADDR: registry.address,
        BALLAST_INFERENCE_ADDR: inference.address,
        BALLAST_JAEGER_URL: 'http://jaeger.test:16686',
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
      },
      timeout: 60_000,
    });
  }

  beforeAll(async () => {
    redis = connectRedis(REDIS_URL);
    await redis.flushdb();
    await receiver.start();
    const common = {
      BALLAST_DATABASE_URL: '',
      BALLAST_REDIS_URL: REDIS_URL,
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
      // Export within a fraction of a second, so the test waits on spans, not on batches.
      OTEL_BSP_SCHEDULE_DELAY: '200',
    };
    registry = await startServiceProcess('registry', { ...common, BALLAST_DATA_DIR: join(root, 'registry') });
    await waitServing(registry.address, RegistryService.typeName);
    const client = createClient(RegistryService, { address: registry.address, deadlineMs: 30_000 });
    try {
      expect(await registerDemandModel(client, MODEL)).toBe(1);
    } finally {
      client.close();
    }
    inference = await startServiceProcess('inference', {
      ...common,
      BALLAST_DATA_DIR: join(root, 'inference'),
      BALLAST_REGISTRY_ADDR: registry.address,
      BALLAST_TF_BACKEND: 'cpu',
    });
    await waitServing(inference.address, InferenceService.typeName);
    // Serving the model, asked directly (untraced: this process starts no telemetry), so the
    // CLI's call is not the one that waits for it.
    const direct = createClient(InferenceService, { address: inference.address, deadlineMs: 5_000 });
    try {
      await eventually(
        async () => ((await direct.predict(predictRequest(MODEL))).version === 1 ? true : undefined),
        `${MODEL} v1 served (${inference.output().slice(-2_000)})`,
        600,
      );
    } finally {
      direct.close();
    }
  }, 240_000);

  afterAll(async () => {
    await Promise.all([inference, registry].filter(Boolean).map((p) => p.stop()));
    receiver.stop();
    await redis?.flushdb();
    redis?.disconnect();
    rmSync(root, { recursive: true, force: true });
  });

  it('is one trace rooted in the CLI, reaching inference, whose link the CLI prints', async () => {
    const run = await runCli(['predict', MODEL, '--features', '{"price": 5, "promo": 1, "temperature": 21}']);
    expect(run.stderr).toBe('');
    expect(run.stdout).toMatch(/^prediction: -?\d/m);
    expect(run.stdout).toContain(`${MODEL} v1 (production)`);

    // The CLI flushed before it exited: all its spans are here already, in one trace.
    const cliSpans = receiver.filter((s) => s.service === 'ballast-cli');
    expect(cliSpans.map((s) => s.name)).toContain('ballast predict');
    const traceIds = new Set(cliSpans.map((s) => s.traceId));
    expect(traceIds.size).toBe(1);
    const [traceId] = traceIds;
    const roots = receiver.filter((s) => s.traceId === traceId && s.parentSpanId === '');
    expect(roots).toEqual([
      expect.objectContaining({ service: 'ballast-cli', name: 'ballast predict', kind: SpanKind.INTERNAL }),
    ]);
    const rootSpan = roots[0] as ReceivedSpan;
    expect(rootSpan.attributes['process.exit.code']).toBe(0);

    // Inference exports in batches of its own.
    let server: ReceivedSpan | undefined;
    await waitUntil(async () => {
      server = receiver.find(
        (s) => s.traceId === traceId && s.service === 'ballast-inference' && s.kind === SpanKind.SERVER,
      );
      return server !== undefined;
    }, 'the inference server span of the CLI call');
    expect(server).toMatchObject({
      name: PREDICT,
      attributes: expect.objectContaining({ 'rpc.grpc.status_code': 0 }),
    });

    // Its parents, each one received, lead to the CLI's span: the client span of the call first.
    const chain: string[] = [];
    let last = server as ReceivedSpan;
    for (let parent = receiver.parentOf(last); parent; parent = receiver.parentOf(parent)) {
      chain.push(`${parent.service}: ${parent.name} (${SpanKind[parent.kind]})`);
      last = parent;
    }
    expect(last.spanId).toBe(rootSpan.spanId);
    expect(chain).toEqual([`ballast-cli: ${PREDICT} (CLIENT)`, 'ballast-cli: ballast predict (INTERNAL)']);
    // No span of the trace hangs loose: inference's own (the batch) ends before its server
    // span, so it was exported no later, and leads to the root too.
    const reachesRoot = (span: ReceivedSpan): boolean => {
      let top = span;
      for (let p = receiver.parentOf(top); p; p = receiver.parentOf(p)) top = p;
      return top.spanId === rootSpan.spanId;
    };
    const inTrace = receiver.filter((s) => s.traceId === traceId);
    expect(inTrace.filter((s) => !reachesRoot(s))).toEqual([]);
    // The request is traced on the Predict call's own span (no inference.predict span under
    // it), which the batch it joined hangs from and links to.
    const inference = inTrace.filter((s) => s.service === 'ballast-inference');
    expect(inference.map((s) => s.name).sort()).toEqual([PREDICT, 'inference.batch']);
    expect(server?.attributes).toMatchObject({
      'inference.model': expect.any(String),
      'inference.version': 1,
    });
    const batch = inference.find((s) => s.name === 'inference.batch');
    expect(batch?.links.map((l) => l.spanId)).toContain(server?.spanId);

    // The link names that trace.
    expect(run.stdout).toContain(`trace: http://jaeger.test:16686/trace/${traceId}\n`);

    // Housekeeping is not exported: the readiness probes of this test reached both services.
    expect(receiver.filter((s) => s.name.includes('grpc.health.v1'))).toEqual([]);
  });
});
