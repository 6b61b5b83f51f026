import { localMetrics } from '@ballast/telemetry';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, type RpcError } from './client.js';
import { type GrpcServer, serve, startGrpcServer } from './server.js';
import { EchoService, echoService } from './testing/echo.js';

const quiet = { info() {}, warn() {}, error() {} };

interface Point {
  attributes: Record<string, unknown>;
  value: unknown;
}

/** The calls counted so far for one method and code, and the calls timed for the method. */
async function counted(method: string, code: string): Promise<{ handled: number; timed: number }> {
  const { resourceMetrics } = await localMetrics().collect();
  const all = resourceMetrics.scopeMetrics.flatMap((s) => s.metrics);
  const points = (name: string) => (all.find((m) => m.descriptor.name === name)?.dataPoints ?? []) as Point[];
  const ofMethod = (p: Point) =>
    p.attributes.grpc_service === 'ballast.testing.v1.EchoService' && p.attributes.grpc_method === method;
  const handled = points('grpc_server_handled_total')
    .filter((p) => ofMethod(p) && p.attributes.grpc_code === code)
    .reduce((sum, p) => sum + (p.value as number), 0);
  const timed = points('grpc_server_handling_seconds')
    .filter(ofMethod)
    .reduce((sum, p) => sum + (p.value as { count: number }).count, 0);
  return { handled, timed };
}

describe('call metrics', () => {
  let server: GrpcServer;
  let echo: ReturnType<typeof createClient<typeof EchoService>>;

  beforeAll(async () => {
    server = await startGrpcServer({
      services: [serve(EchoService, echoService)],
      host: '127.0.0.1',
      port: 0,
      log: quiet,
    });
    echo = createClient(EchoService, { address: `127.0.0.1:${server.port}` });
  });

  afterAll(async () => {
    echo.close();
    await server.shutdown();
  });

  it('counts every answered call by method and status code, and times it', async () => {
    const ok = await counted('Echo', 'OK');
    const notFound = await counted('Echo', 'NOT_FOUND');
    const stream = await counted('EchoServerStream', 'OK');
    for (let i = 0; i < 3; i++) await echo.echo({ message: 'hi' });
    const err = await echo.echo({ behaviour: { failWith: 'not_found' } }).catch((e: unknown) => e);
    expect((err as RpcError).code).toBe(status.NOT_FOUND);
    for await (const _ of echo.echoServerStream({ message: 'x', repeat: 2 })) {
      /* drain */
    }
    expect((await counted('Echo', 'OK')).handled - ok.handled).toBe(3);
    expect((await counted('Echo', 'NOT_FOUND')).handled - notFound.handled).toBe(1);
    expect((await counted('Echo', 'OK')).timed - ok.timed).toBe(4);
    expect((await counted('EchoServerStream', 'OK')).handled - stream.handled).toBe(1);
  });
});
