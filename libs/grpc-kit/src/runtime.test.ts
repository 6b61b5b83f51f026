// runService's start-up gate, over a real loopback port: until `prepare` (the migrations)
// has run, health is NOT_SERVING and every RPC, unary or streaming, answers UNAVAILABLE.
import { status } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { createClient, RpcError } from './client.js';
import { type RunningService, runService } from './runtime.js';
import { serve } from './server.js';
import { EchoService, echoService } from './testing/echo.js';
import { healthStatus, ServingStatus, waitUntil } from './testing/process.js';

const running: RunningService[] = [];
afterEach(async () => {
  for (const service of running.splice(0)) await service.shutdown();
});

const quiet = { info: () => {}, warn: () => {}, error: () => {} };

async function code(call: () => Promise<unknown> | AsyncIterable<unknown>): Promise<string> {
  try {
    const result = call();
    if (Symbol.asyncIterator in result) for await (const _ of result) break;
    else await result;
    return 'OK';
  } catch (err) {
    return err instanceof RpcError ? `${status[err.code]}: ${err.details}` : String(err);
  }
}

describe('runService before prepare has run', () => {
  it('answers NOT_SERVING and UNAVAILABLE on every RPC, then serves once it has', async () => {
    let migrate = () => {};
    const migrated = new Promise<void>((resolve) => {
      migrate = resolve;
    });
    const service = await runService({
      name: 'echo',
      log: quiet,
      grpc: { host: '127.0.0.1', port: 0, services: [serve(EchoService, echoService)] },
      http: { host: '127.0.0.1', port: 0 },
      dependencies: [],
      prepare: () => migrated,
      close: [],
      shutdownGraceMs: 100,
      readinessIntervalMs: 50,
      handleSignals: false,
    });
    running.push(service);
    const address = `127.0.0.1:${service.grpcPort}`;
    const echo = createClient(EchoService, { address, deadlineMs: 5_000, retry: false });
    const unavailable = 'UNAVAILABLE: the echo is starting: its database schema is not migrated yet; retry';
    expect(await healthStatus(address, EchoService.typeName)).toBe(ServingStatus.NOT_SERVING);
    expect(await code(() => echo.echo({ message: 'm' }))).toBe(unavailable);
    expect(await code(() => echo.echoServerStream({ message: 'm', repeat: 2 }))).toBe(unavailable);
    expect(await code(() => echo.echoClientStream((async function* () {})()))).toBe(unavailable);
    migrate();
    await waitUntil(
      async () => (await healthStatus(address, EchoService.typeName)) === ServingStatus.SERVING,
      'SERVING',
    );
    expect(await code(() => echo.echo({ message: 'm' }))).toBe('OK');
    echo.close();
  });
});
