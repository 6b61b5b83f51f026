import { createRequire } from 'node:module';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { registerInstrumentations } from '@opentelemetry/instrumentation';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

// The spans a kit server and client make under @opentelemetry/instrumentation-grpc, through the
// processors every Ballast process runs (@ballast/telemetry's ballastSpanProcessors), kept in
// memory. The instrumentation patches grpc-js when it is first required, so it is registered,
// and grpc-js required, before the kit (and grpc-js through it) is imported.
const { ballastSpanProcessors, defaultInstrumentations } = await import('@ballast/telemetry');

function tracedProcess(env: NodeJS.ProcessEnv) {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({
    spanProcessors: ballastSpanProcessors(new SimpleSpanProcessor(exporter), env),
  });
  return { exporter, provider };
}

const byDefault = tracedProcess({});
const withHousekeeping = tracedProcess({ BALLAST_TRACE_HOUSEKEEPING: 'true' });
const instrumentations = defaultInstrumentations();
const unregister = registerInstrumentations({ instrumentations, tracerProvider: byDefault.provider });
createRequire(import.meta.url)('@grpc/grpc-js');

const { Health } = await import('@ballast/contracts/grpc/health/v1/health_pb.js');
const { createClient, RpcError } = await import('./client.js');
const { serve, startGrpcServer } = await import('./server.js');
const { EchoService, echoService } = await import('./testing/echo.js');
const { reflectionClient } = await import('./testing/reflection-client.js');

const ECHO = 'grpc.ballast.testing.v1.EchoService/Echo';
const ECHO_STREAM = 'grpc.ballast.testing.v1.EchoService/EchoServerStream';
const log = { info: () => {}, warn: () => {}, error: () => {} };

describe('gRPC span status and housekeeping', () => {
  let server: Awaited<ReturnType<typeof startGrpcServer>>;
  let echo: ReturnType<typeof createClient<typeof EchoService>>;
  let address: string;

  beforeAll(async () => {
    server = await startGrpcServer({
      services: [serve(EchoService, echoService)],
      host: '127.0.0.1',
      port: 0,
      log,
    });
    address = `127.0.0.1:${server.port}`;
    echo = createClient(EchoService, { address, retry: false });
  });

  afterAll(async () => {
    echo.close();
    await server.shutdown();
    unregister();
  });

  /** Makes a unary Echo call that fails as asked; its client and server spans. */
  async function failedEcho(failWith: string) {
    byDefault.exporter.reset();
    const error = await echo.echo({ message: failWith, behaviour: { failWith } }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RpcError);
    return spansOf(ECHO, failWith);
  }

  function spansOf(name: string, marker?: string): { server: ReadableSpan; client: ReadableSpan } {
    const spans = byDefault.exporter.getFinishedSpans().filter((s) => s.name === name);
    const server = spans.find((s) => s.kind === SpanKind.SERVER);
    const client = spans.find((s) => s.kind === SpanKind.CLIENT);
    if (!server || !client)
      throw new Error(`${name} ${marker ?? ''}: got ${spans.map((s) => SpanKind[s.kind]).join(', ')}`);
    return { server, client };
  }

  it("leaves a server span UNSET for the caller's error, with its status code", async () => {
    const { server, client } = await failedEcho('invalid_argument');
    expect(server.status.code).toBe(SpanStatusCode.UNSET);
    expect(server.attributes['rpc.grpc.status_code']).toBe(3);
    // The client's call failed all the same.
    expect(client.status.code).toBe(SpanStatusCode.ERROR);
    expect(client.attributes['rpc.grpc.status_code']).toBe(3);
  });

  it.each([
    ['not_found', 5, SpanStatusCode.UNSET],
    ['already_exists', 6, SpanStatusCode.UNSET],
    ['failed_precondition', 9, SpanStatusCode.UNSET],
    ['permission_denied', 7, SpanStatusCode.UNSET],
    ['resource_exhausted', 8, SpanStatusCode.UNSET],
    ['unauthenticated', 16, SpanStatusCode.UNSET],
    ['bug', 13, SpanStatusCode.ERROR],
    ['unavailable', 14, SpanStatusCode.ERROR],
    ['unimplemented', 12, SpanStatusCode.ERROR],
    ['deadline_exceeded', 4, SpanStatusCode.ERROR],
  ])(
    'gives the server span of %s (%i) the status %i; the client span is ERROR',
    async (failWith, code, want) => {
      const { server, client } = await failedEcho(failWith);
      expect([server.status.code, server.attributes['rpc.grpc.status_code']]).toEqual([want, code]);
      expect(client.status.code).toBe(SpanStatusCode.ERROR);
    },
  );

  it('applies the same rule to a stream of responses', async () => {
    const run = async (failWith: string) => {
      byDefault.exporter.reset();
      const stream = echo.echoServerStream({ message: 'm', repeat: 2, behaviour: { failWith } });
      await expect(
        (async () => {
          for await (const _ of stream);
        })(),
      ).rejects.toBeInstanceOf(RpcError);
      return spansOf(ECHO_STREAM, failWith);
    };
    const callerError = await run('not_found');
    expect(callerError.server.status.code).toBe(SpanStatusCode.UNSET);
    expect(callerError.server.attributes['rpc.grpc.status_code']).toBe(5);
    expect(callerError.client.status.code).toBe(SpanStatusCode.ERROR);
    const serverError = await run('bug');
    expect(serverError.server.status.code).toBe(SpanStatusCode.ERROR);
  });

  it('exports no health or reflection spans by default, and does with BALLAST_TRACE_HOUSEKEEPING=true', async () => {
    // Both providers see the same calls: the instrumentation is pointed at one, then the other.
    const housekeeping = async () => {
      const health = createClient(Health, { address });
      try {
        await health.check({ service: '' });
      } finally {
        health.close();
      }
      expect(await reflectionClient(address).listServices()).toContain('grpc.health.v1.Health');
      await echo.echo({ message: 'real work' });
    };
    const names = (exporter: InMemorySpanExporter) =>
      exporter.getFinishedSpans().map((s) => `${SpanKind[s.kind]} ${s.name}`);

    byDefault.exporter.reset();
    await housekeeping();
    expect(names(byDefault.exporter).sort()).toEqual([`CLIENT ${ECHO}`, `SERVER ${ECHO}`]);

    for (const i of instrumentations) i.setTracerProvider(withHousekeeping.provider);
    try {
      await housekeeping();
    } finally {
      for (const i of instrumentations) i.setTracerProvider(byDefault.provider);
    }
    expect(names(withHousekeeping.exporter)).toEqual(
      expect.arrayContaining([
        'CLIENT grpc.grpc.health.v1.Health/Check',
        'SERVER grpc.grpc.health.v1.Health/Check',
        `SERVER ${ECHO}`,
      ]),
    );
    // A reflection stream's server span ends once the server has closed it, which the client
    // does not wait for: wait for that span, not for a time.
    await vi.waitFor(() =>
      expect(names(withHousekeeping.exporter)).toContain(
        'SERVER grpc.grpc.reflection.v1.ServerReflection/ServerReflectionInfo',
      ),
    );
  });
});
