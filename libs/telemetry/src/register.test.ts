import { execFileSync, spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  Server,
  ServerCredentials,
  type ServiceDefinition,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { traceExportEndpoint } from './sdk.js';

// The preload is tested as services use it: built, and given to a fresh `node --import`.
const packageDir = fileURLToPath(new URL('..', import.meta.url));
const registerPath = join(packageDir, 'dist/register.js');
const grpcFixture = join(packageDir, 'test/fixtures/grpc-roundtrip.mjs');
const ECHO_SPAN = 'grpc.ballast.test.v1.Echo/Say';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

interface RoundTrip {
  callerTraceId: string;
  serverTraceId: string;
  patched: { server: boolean; client: boolean };
  echoPort: number;
  dialled: Array<number | string>;
}

// A clean environment: nothing inherited from the developer's shell may switch export on or off.
function childEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!/^(OTEL_|BALLAST_|NODE_OPTIONS$)/.test(key)) env[key] = value;
  }
  return { ...env, ...extra };
}

function runNode(args: string[], extraEnv: Record<string, string> = {}, preload = true): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...(preload ? ['--import', registerPath] : []), ...args], {
      cwd: packageDir,
      env: childEnv(extraEnv),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

function occurrences(haystack: Buffer, needle: string): number {
  let count = 0;
  for (let at = haystack.indexOf(needle); at !== -1; at = haystack.indexOf(needle, at + 1)) count++;
  return count;
}

beforeAll(() => {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  execFileSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { cwd: packageDir, stdio: 'pipe' });
});

describe('traceExportEndpoint', () => {
  it('exports only when an OTLP endpoint is set and the exporter is not none', () => {
    expect(traceExportEndpoint({})).toBeUndefined();
    expect(traceExportEndpoint({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://jaeger:4317' })).toBe(
      'http://jaeger:4317',
    );
    expect(traceExportEndpoint({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://c:4317' })).toBe(
      'http://c:4317',
    );
    expect(
      traceExportEndpoint({
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://jaeger:4317',
        OTEL_TRACES_EXPORTER: 'none',
      }),
    ).toBeUndefined();
  });
});

describe('startTelemetry', () => {
  it('keeps metrics that were created lazily before it ran', async () => {
    const script = `
      import { getMeter, startHttpServer, startTelemetry, shutdownTelemetry } from '@ballast/telemetry';
      getMeter('early').createCounter('early_things').add(1);
      startTelemetry();
      getMeter('late').createCounter('late_things').add(2);
      const server = await startHttpServer({ host: '127.0.0.1', port: 0, ready: () => true });
      console.log(await (await fetch(server.url + '/metrics')).text());
      await server.close();
      await shutdownTelemetry();
    `;
    const run = await runNode(['--input-type=module', '-e', script], {}, false);
    expect(run.stderr).toBe('');
    expect(run.stdout).toMatch(/^early_things_total\{[^}]*\} 1$/m);
    expect(run.stdout).toMatch(/^late_things_total\{[^}]*\} 2$/m);
  });
});

describe('the register preload', () => {
  const script = `
    import { trace } from '@opentelemetry/api';
    import { getMeter, shutdownTelemetry } from '@ballast/telemetry';
    const span = trace.getTracer('probe').startSpan('probe');
    span.end();
    getMeter('probe').createCounter('probe_total').add(1);
    const state = globalThis[Symbol.for('@ballast/telemetry')];
    console.log(JSON.stringify({ ...span.spanContext(), sdk: Boolean(state?.sdk), owned: Boolean(state?.ownedMeterProvider) }));
    await shutdownTelemetry();
  `;

  it('starts the SDK before the program runs and exits cleanly with no endpoint set', async () => {
    const run = await runNode(['--input-type=module', '-e', script], { BALLAST_SERVICE: 'probe' });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const context = JSON.parse(run.stdout) as {
      traceId: string;
      traceFlags: number;
      sdk: boolean;
      owned: boolean;
    };
    expect(context.traceId).toMatch(/^(?!0{32})[0-9a-f]{32}$/);
    expect(context.traceFlags).toBe(1);
    // Metrics went to the SDK's provider, not a second lazily created one.
    expect([context.sdk, context.owned]).toEqual([true, false]);
  });

  it('respects OTEL_TRACES_SAMPLER', async () => {
    const run = await runNode(['--input-type=module', '-e', script], { OTEL_TRACES_SAMPLER: 'always_off' });
    expect(run.code).toBe(0);
    expect((JSON.parse(run.stdout) as { traceFlags: number }).traceFlags).toBe(0);
  });

  it('instruments grpc-js imported from ESM, and dials nothing when no endpoint is set', async () => {
    const run = await runNode([grpcFixture], { BALLAST_SERVICE: 'ballast-e2e' });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const result = JSON.parse(run.stdout) as RoundTrip;
    // Clients only: server spans come from @ballast/grpc-kit's adapter (GrpcClientInstrumentation).
    expect(result.patched).toEqual({ server: false, client: true });
    expect(result.callerTraceId).toMatch(/^(?!0{32})[0-9a-f]{32}$/);
    expect(result.serverTraceId).toBe(result.callerTraceId);
    expect(result.dialled).toEqual([result.echoPort]);
  });

  describe('with an OTLP/gRPC endpoint', () => {
    const received: Buffer[] = [];
    const receiver = new Server();
    let receiverPort = 0;

    beforeAll(async () => {
      const identity = (buffer: Buffer) => buffer;
      const traceService: ServiceDefinition = {
        export: {
          path: '/opentelemetry.proto.collector.trace.v1.TraceService/Export',
          requestStream: false,
          responseStream: false,
          requestSerialize: identity,
          requestDeserialize: identity,
          responseSerialize: identity,
          responseDeserialize: identity,
        },
      };
      const implementation: UntypedServiceImplementation = {
        export: (call: { request: Buffer }, callback: (error: null, response: Buffer) => void) => {
          received.push(call.request);
          callback(null, Buffer.alloc(0)); // an empty ExportTraceServiceResponse: all accepted
        },
      };
      receiver.addService(traceService, implementation);
      receiverPort = await new Promise<number>((resolve, reject) =>
        receiver.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (error, port) =>
          error ? reject(error) : resolve(port),
        ),
      );
    });
    afterAll(() => receiver.forceShutdown());

    it("exports the client span of one call, in the caller's trace, which the server receives", async () => {
      const run = await runNode([grpcFixture], {
        BALLAST_SERVICE: 'ballast-e2e',
        BALLAST_ENV: 'test',
        OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${receiverPort}`,
      });
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      const result = JSON.parse(run.stdout) as RoundTrip;
      expect(result.serverTraceId).toBe(result.callerTraceId);
      expect(result.dialled).toContain(receiverPort);

      // OTLP protobuf keeps strings and trace ids as raw bytes, so they can be found without a decoder.
      const exported = Buffer.concat(received);
      expect(occurrences(exported, ECHO_SPAN)).toBe(1); // the CLIENT span; a plain grpc-js server makes none
      expect(occurrences(exported, 'fixture-root')).toBe(1);
      expect(exported.includes('ballast-e2e')).toBe(true);
      expect(exported.includes('deployment.environment')).toBe(true);
      expect(exported.includes(Buffer.from(result.callerTraceId, 'hex'))).toBe(true);
      // The exporter's own grpc-js calls must not be traced (that would feed on itself).
      expect(occurrences(exported, 'TraceService/Export')).toBe(0);
    });

    it('shuts down cleanly, with a warning, when the collector is unreachable', async () => {
      const closed = new Server();
      const deadPort = await new Promise<number>((resolve, reject) =>
        closed.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (error, port) =>
          error ? reject(error) : resolve(port),
        ),
      );
      closed.forceShutdown();
      const run = await runNode([grpcFixture], {
        OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${deadPort}`,
      });
      expect(run.code).toBe(0);
      expect(run.stderr).toContain('[BALLAST_TELEMETRY_FLUSH]');
      expect((JSON.parse(run.stdout) as RoundTrip).dialled).toContain(deadPort);
    });
  });
});
