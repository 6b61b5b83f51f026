import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { RegistryService, Task } from '@ballast/contracts/ballast/registry/v1/registry_pb.js';
import { createClient } from '@ballast/grpc-kit';
import { waitUntil } from '@ballast/grpc-kit/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OtlpReceiver, type ReceivedSpan, SpanKind } from './otlp-receiver.js';
import { type RunningProcess, startServiceProcess, waitServing } from './support.js';

// The CLI as the root of its traces: `ballast models` runs as a child process exporting
// OTLP/gRPC to a receiver in this test, against a registry process exporting to the same
// receiver. One trace: the CLI command's span, its gRPC client span, the registry's server span.
const dataDir = mkdtempSync(join(tmpdir(), 'ballast-cli-trace-'));
const receiver = new OtlpReceiver();
const cli = join(dirname(createRequire(import.meta.url).resolve('@ballast/sdk/package.json')), 'dist/cli.js');
const LIST_MODELS = 'grpc.ballast.registry.v1.RegistryService/ListModels';
const MODEL = 'cli-trace-demand';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

describe('the ballast CLI', () => {
  let registry: RunningProcess;

  // Nothing from the developer's shell may point the CLI elsewhere or switch export off.
  function runCli(args: string[]): Promise<Run> {
    const env: NodeJS.ProcessEnv = {};
    for (const [key, value] of Object.entries(process.env))
      if (!/^(OTEL_|BALLAST_|NODE_OPTIONS$)/.test(key)) env[key] = value;
    Object.assign(env, {
      BALLAST_REGISTRY_ADDR: registry.address,
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
    });
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [cli, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (b: Buffer) => {
        stdout += b.toString();
      });
      child.stderr.on('data', (b: Buffer) => {
        stderr += b.toString();
      });
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stdout, stderr }));
    });
  }

  beforeAll(async () => {
    await receiver.start();
    registry = await startServiceProcess('registry', {
      BALLAST_DATA_DIR: dataDir,
      BALLAST_DATABASE_URL: '',
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
      // Export within a fraction of a second, so the test waits on spans, not on batches.
      OTEL_BSP_SCHEDULE_DELAY: '200',
    });
    await waitServing(registry.address, RegistryService.typeName);
    const client = createClient(RegistryService, { address: registry.address });
    try {
      await client.createModel({ name: MODEL, task: Task.REGRESSION, ownerTeam: 'cli-tests' });
    } finally {
      client.close();
    }
  }, 180_000);

  afterAll(async () => {
    await registry?.stop();
    receiver.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('is the root of the trace of `ballast models`, down to the server span', async () => {
    const run = await runCli(['models', '--json']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const models = JSON.parse(run.stdout) as { name: string; ownerTeam: string }[];
    expect(models).toContainEqual(expect.objectContaining({ name: MODEL, ownerTeam: 'cli-tests' }));

    // The CLI flushed before it exited: its spans are here already.
    const root = receiver.find((s) => s.service === 'ballast-cli' && s.name === 'ballast models');
    if (!root) throw new Error(`no CLI span among ${receiver.spans.map((s) => s.name).join(', ')}`);
    expect(root.parentSpanId).toBe('');
    const client = receiver.find((s) => s.traceId === root.traceId && s.kind === SpanKind.CLIENT);
    expect(client).toMatchObject({ service: 'ballast-cli', name: LIST_MODELS, parentSpanId: root.spanId });

    // The registry exports in batches of its own.
    let server: ReceivedSpan | undefined;
    await waitUntil(async () => {
      server = receiver.find((s) => s.traceId === root.traceId && s.kind === SpanKind.SERVER);
      return server !== undefined;
    }, 'the registry server span of the CLI call');
    expect(server).toMatchObject({
      service: 'ballast-registry',
      name: LIST_MODELS,
      parentSpanId: client?.spanId,
      attributes: expect.objectContaining({ 'rpc.grpc.status_code': 0 }),
    });
    const tree = receiver
      .filter((s) => s.traceId === root.traceId)
      .map((s) => {
        let depth = 0;
        for (let p = receiver.parentOf(s); p; p = receiver.parentOf(p)) depth++;
        return { depth, line: `${'  '.repeat(depth)}${s.service}: ${s.name} (${SpanKind[s.kind]})` };
      })
      .sort((a, b) => a.depth - b.depth)
      .map((s) => s.line);
    expect(tree).toEqual([
      'ballast-cli: ballast models (INTERNAL)',
      `  ballast-cli: ${LIST_MODELS} (CLIENT)`,
      `    ballast-registry: ${LIST_MODELS} (SERVER)`,
    ]);

    // Housekeeping is not exported by default: the readiness probes of this test reached the
    // registry (as grpc.health.v1 Check calls), and none of their spans did.
    expect(receiver.filter((s) => s.name.includes('grpc.health.v1'))).toEqual([]);
  });

  it('exits 0 on --help, 2 on an unknown command', async () => {
    const help = await runCli(['models', '--help']);
    expect([help.code, help.stdout.split('\n')[0]]).toEqual([0, 'Usage: ballast models [list] [--json]']);
    const unknown = await runCli(['frobnicate']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown command "frobnicate"');
  });

  it('exits non-zero on an unknown model, naming it', async () => {
    for (const args of [
      ['promote', 'no-such-model', '1'],
      ['rollback', 'no-such-model'],
      ['train', 'no-such-model', '--view', 'v'],
    ]) {
      const run = await runCli(args);
      expect(run.code, args.join(' ')).toBe(1);
      expect(run.stderr).toMatch(/^ballast: unknown model "no-such-model" \(NOT_FOUND: .*no-such-model/);
    }
    // The failed command's span says so.
    const promote = receiver.find((s) => s.service === 'ballast-cli' && s.name === 'ballast promote');
    expect(promote?.attributes['process.exit.code']).toBe(1);
    expect(promote?.events.map((e) => e.name)).toContain('exception');
  });
});
