import { createRequire } from 'node:module';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { registerInstrumentations } from '@opentelemetry/instrumentation';
import { InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

// The spans a kit server (its adapter's server spans) and a kit client (the client side of
// @opentelemetry/instrumentation-grpc, as the telemetry preload sets it up) make, through the
// processors every Ballast process runs (@ballast/telemetry's ballastSpanProcessors), kept in
// memory. The instrumentation patches grpc-js when it is first required, so it is registered,
// and grpc-js required, before the kit (and grpc-js through it) is imported.
const { ballastSpanProcessors, defaultInstrumentations } = await import('@ballast/telemetry');

function tracedProcess(env: NodeJS.ProcessEnv) {
  const exporter = new InMemorySpanExporter();
  const provider = new NodeTracerProvider({
    spanProcessors: ballastSpanProcessors(new SimpleSpanProcessor(exporter), env),
  });
  return { exporter, provider };
}

const byDefault = tracedProcess({});
const withHousekeeping = tracedProcess({ BALLAST_TRACE_HOUSEKEEPING: 'true' });
// What the SDK sets up in a service: the async context manager and the W3C propagator.
byDefault.provider.register();
const instrumentations = defaultInstrumentations();
const unregister = registerInstrumentations({ instrumentations, tracerProvider: byDefault.provider });
createRequire(import.meta.url)('@grpc/grpc-js');

const { Health } = await import('@ballast/contracts/grpc/health/v1/health_pb.js');
const { createClient, RpcError } = await import('./client.js');
const { serve, startGrpcServer } = await import('./server.js');
type Interceptor = import('./server-adapter.js').Interceptor;
const { EchoService, echoService } = await import('./testing/echo.js');
const { reflectionClient } = await import('./testing/reflection-client.js');

const ECHO = 'grpc.ballast.testing.v1.EchoService/Echo';
const ECHO_STREAM = 'grpc.ballast.testing.v1.EchoService/EchoServerStream';
const log = { info: () => {}, warn: () => {}, error: () => {} };

/** An Echo server whose server spans go to `provider`. */
function echoServer(provider: NodeTracerProvider, interceptors: Interceptor[] = []) {
  return startGrpcServer({
    services: [serve(EchoService, echoService)],
    host: '127.0.0.1',
    port: 0,
    log,
    tracerProvider: provider,
    interceptors,
  });
}

describe('gRPC span status and housekeeping', () => {
  let server: Awaited<ReturnType<typeof startGrpcServer>>;
  let echo: ReturnType<typeof createClient<typeof EchoService>>;
  let address: string;

  beforeAll(async () => {
    server = await echoServer(byDefault.provider);
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

  it("is one server span per call, the client span's child, active while the call is handled and in its context", async () => {
    // An interceptor around the handler starts a span after the handler has run, as a
    // handler's own work (a database call, a call to another service) would, and records on
    // the call's span through its context (ctx.span), as a handler may.
    const inside = new InMemorySpanExporter();
    const insideTracer = new NodeTracerProvider({
      spanProcessors: [new SimpleSpanProcessor(inside)],
    }).getTracer('test');
    const watched = await echoServer(byDefault.provider, [
      async (call, next) => {
        call.ctx.span?.setAttribute('test.recorded_through', 'ctx.span');
        await next();
        insideTracer.startSpan('after the handler').end();
      },
    ]);
    const client = createClient(EchoService, { address: `127.0.0.1:${watched.port}`, retry: false });
    try {
      byDefault.exporter.reset();
      await client.echo({ message: 'traced' });
    } finally {
      client.close();
      await watched.shutdown();
    }
    const named = byDefault.exporter.getFinishedSpans().filter((s) => s.name === ECHO);
    expect(named.map((s) => SpanKind[s.kind]).sort()).toEqual(['CLIENT', 'SERVER']);
    const { server, client: caller } = spansOf(ECHO);
    expect(server.spanContext().traceId).toBe(caller.spanContext().traceId);
    expect(server.parentSpanContext?.spanId).toBe(caller.spanContext().spanId);
    expect(server.attributes).toMatchObject({
      'rpc.system': 'grpc',
      'rpc.service': 'ballast.testing.v1.EchoService',
      'rpc.method': 'Echo',
      'rpc.grpc.status_code': 0,
      'test.recorded_through': 'ctx.span',
    });
    expect(server.status.code).toBe(SpanStatusCode.UNSET);
    const [after] = inside.getFinishedSpans();
    expect(after?.parentSpanContext?.spanId).toBe(server.spanContext().spanId);
  });

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
    const housekeeping = async (at: string) => {
      const health = createClient(Health, { address: at });
      const work = createClient(EchoService, { address: at, retry: false });
      try {
        await health.check({ service: '' });
        expect(await reflectionClient(at).listServices()).toContain('grpc.health.v1.Health');
        await work.echo({ message: 'real work' });
      } finally {
        health.close();
        work.close();
      }
    };
    const names = (exporter: InMemorySpanExporter) =>
      exporter.getFinishedSpans().map((s) => `${SpanKind[s.kind]} ${s.name}`);

    byDefault.exporter.reset();
    await housekeeping(address);
    expect(names(byDefault.exporter).sort()).toEqual([`CLIENT ${ECHO}`, `SERVER ${ECHO}`]);

    // The same calls to a server, and from clients, that trace into the other provider.
    const other = await echoServer(withHousekeeping.provider);
    for (const i of instrumentations) i.setTracerProvider(withHousekeeping.provider);
    try {
      await housekeeping(`127.0.0.1:${other.port}`);
      // A reflection stream's server span ends once the server has closed it, which the client
      // does not wait for: wait for that span, not for a time.
      await vi.waitFor(() =>
        expect(names(withHousekeeping.exporter)).toContain(
          'SERVER grpc.grpc.reflection.v1.ServerReflection/ServerReflectionInfo',
        ),
      );
    } finally {
      for (const i of instrumentations) i.setTracerProvider(byDefault.provider);
      await other.shutdown();
    }
    expect(names(withHousekeeping.exporter)).toEqual(
      expect.arrayContaining([
        'CLIENT grpc.grpc.health.v1.Health/Check',
        'SERVER grpc.grpc.health.v1.Health/Check',
        `SERVER ${ECHO}`,
      ]),
    );
  });
});
