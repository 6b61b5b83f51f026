import {
  type handleServerStreamingCall,
  type handleUnaryCall,
  Metadata,
  Server,
  ServerCredentials,
  status,
} from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { channelTarget, createClient, type RpcError, readAll, serviceConfig } from './client.js';
import { serviceDefinition } from './definition.js';
import { type GrpcServer, serve, startGrpcServer } from './server.js';
import { EchoService, echoService } from './testing/echo.js';
import type { HandlerContext } from './types.js';

const log = { info: () => {}, warn: () => {}, error: () => {} };

/**
 * Echo handlers on a bare grpc-js server on a loopback port: for failures the kit's own
 * server never produces (a status after response headers, a stream cut after messages).
 */
function serveRaw(server: Server, handlers: Parameters<Server['addService']>[1]): Promise<number> {
  server.addService(serviceDefinition(EchoService), handlers);
  return new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
}

describe('channelTarget', () => {
  it('uses DNS for one address and a static IP list for several', () => {
    expect(channelTarget('registry:50053')).toBe('dns:registry:50053');
    expect(channelTarget(['127.0.0.1:1', 'localhost:2'])).toBe('ipv4:127.0.0.1:1,127.0.0.1:2');
    expect(channelTarget(['[::1]:1', '[::1]:2'])).toBe('ipv6:[::1]:1,[::1]:2');
    expect(() => channelTarget(['registry:1', 'registry:2'])).toThrow(/IP literal/);
    expect(() => channelTarget([])).toThrow(/at least one/);
  });

  it('retries only the methods marked idempotent, only on UNAVAILABLE', () => {
    const config = JSON.parse(serviceConfig(EchoService, { address: 'x:1', idempotentMethods: ['Echo'] }));
    expect(config.loadBalancingConfig).toEqual([{ round_robin: {} }]);
    expect(config.methodConfig[0].name).toEqual([
      { service: 'ballast.testing.v1.EchoService', method: 'Echo' },
    ]);
    expect(config.methodConfig[0].retryPolicy.retryableStatusCodes).toEqual(['UNAVAILABLE']);
    expect(JSON.parse(serviceConfig(EchoService, { address: 'x:1' })).methodConfig).toEqual([]);
  });
});

describe('client against real servers', () => {
  const servers: GrpcServer[] = [];
  const seen: string[] = [];

  beforeAll(async () => {
    for (const name of ['a', 'b']) {
      servers.push(
        await startGrpcServer({
          services: [
            serve(EchoService, {
              ...echoService,
              async echo(request, _ctx: HandlerContext) {
                seen.push(name);
                return { message: `${name}:${request.message}` };
              },
            }),
          ],
          host: '127.0.0.1',
          port: 0,
          log,
        }),
      );
    }
  });

  afterAll(async () => {
    await Promise.all(servers.map((s) => s.shutdown()));
  });

  it('spreads calls round robin over several addresses', async () => {
    const echo = createClient(EchoService, { address: servers.map((s) => `127.0.0.1:${s.port}`) });
    try {
      // Until both subchannels are connected, picks go to the ready one; warm up first.
      for (let i = 0; i < 20 && new Set(seen).size < 2; i++) await echo.echo({ message: 'warm' });
      seen.length = 0;
      for (let i = 0; i < 10; i++) await echo.echo({ message: String(i) });
      expect(seen.filter((n) => n === 'a').length).toBe(5);
      expect(seen.filter((n) => n === 'b').length).toBe(5);
    } finally {
      echo.close();
    }
  });

  it('sets a default deadline and reports an unreachable server as UNAVAILABLE', async () => {
    const echo = createClient(EchoService, { address: '127.0.0.1:1', deadlineMs: 500, retry: false });
    try {
      const err = (await echo.echo({ message: 'x' }).catch((e: unknown) => e)) as RpcError;
      expect([status.UNAVAILABLE, status.DEADLINE_EXCEEDED]).toContain(err.code);
    } finally {
      echo.close();
    }
  });

  it('cancels a call when its signal aborts', async () => {
    const echo = createClient(EchoService, { address: `127.0.0.1:${servers[0]?.port}` });
    try {
      const controller = new AbortController();
      const pending = echo
        .echoServerStream(
          { message: 'x', repeat: 100, behaviour: { delayMs: 100 } },
          { signal: controller.signal },
        )
        [Symbol.asyncIterator]();
      expect((await pending.next()).value?.index).toBe(0);
      controller.abort();
      const err = (await pending.next().catch((e: unknown) => e)) as RpcError;
      expect(err.code).toBe(status.CANCELLED);
    } finally {
      echo.close();
    }
  });
});

describe('a call the server fails after sending its headers', () => {
  // grpc-js will not retry a call once response headers arrived (it is committed); a server
  // killed mid-answer looks like this. The kit retries idempotent calls once more itself.
  let server: Server;
  let port = 0;
  const attempts: string[] = [];
  beforeAll(async () => {
    server = new Server();
    const committedThenGone: handleUnaryCall<{ message: string }, { message: string }> = (call, callback) => {
      attempts.push(call.request.message);
      if (attempts.filter((m) => m === call.request.message).length === 1) {
        call.sendMetadata(new Metadata());
        callback({ code: status.UNAVAILABLE, details: 'going away' });
      } else callback(null, { message: `ok:${call.request.message}` });
    };
    port = await serveRaw(server, { echo: committedThenGone });
  });
  afterAll(() => server.forceShutdown());

  it('is tried again when the method is idempotent, and fails when it is not', async () => {
    const idempotent = createClient(EchoService, {
      address: `127.0.0.1:${port}`,
      idempotentMethods: ['Echo'],
    });
    const plain = createClient(EchoService, { address: `127.0.0.1:${port}` });
    try {
      expect(await idempotent.echo({ message: 'a' })).toMatchObject({ message: 'ok:a' });
      expect(attempts.filter((m) => m === 'a')).toHaveLength(2);
      const err = (await plain.echo({ message: 'b' }).catch((e: unknown) => e)) as RpcError;
      expect(err.code).toBe(status.UNAVAILABLE);
      expect(attempts.filter((m) => m === 'b')).toHaveLength(1);
    } finally {
      idempotent.close();
      plain.close();
    }
  });
});

describe('a stream read whose server fails it after some messages', () => {
  // A replica SIGKILLed mid-stream: messages arrived, then UNAVAILABLE. Each request's
  // message says how many reads fail ("fail 1", "fail 9") and with what ("code 5").
  let server: Server;
  let port = 0;
  const reads = new Map<string, number>();
  beforeAll(async () => {
    server = new Server();
    const flaky: handleServerStreamingCall<
      { message: string; repeat: number },
      { message: string; index: number }
    > = (call) => {
      const { message, repeat } = call.request;
      const read = (reads.get(message) ?? 0) + 1;
      reads.set(message, read);
      const failing = read <= Number(message.match(/fail (\d+)/)?.[1] ?? 0);
      for (let index = 0; index < (failing ? 2 : repeat); index++) call.write({ message: `${read}`, index });
      if (failing)
        call.emit('error', {
          code: Number(message.match(/code (\d+)/)?.[1] ?? status.UNAVAILABLE),
          details: 'gone',
        });
      else call.end();
    };
    port = await serveRaw(server, { echoServerStream: flaky });
  });
  afterAll(() => server.forceShutdown());

  it('is read again from the start on UNAVAILABLE, keeping only the read that ended', async () => {
    const echo = createClient(EchoService, { address: `127.0.0.1:${port}` });
    try {
      const got = await readAll(() => echo.echoServerStream({ message: 'fail 2', repeat: 5 }));
      expect(got.map((m) => [m.message, m.index])).toEqual([0, 1, 2, 3, 4].map((i) => ['3', i]));
      expect(reads.get('fail 2')).toBe(3);
    } finally {
      echo.close();
    }
  });

  it('gives up after its restarts, and never repeats a read that failed otherwise', async () => {
    const echo = createClient(EchoService, { address: `127.0.0.1:${port}` });
    try {
      const gone = (await readAll(() => echo.echoServerStream({ message: 'fail 9', repeat: 5 }), {
        restarts: 2,
        backoffMs: 1,
      }).catch((e: unknown) => e)) as RpcError;
      expect([gone.code, reads.get('fail 9')]).toEqual([status.UNAVAILABLE, 3]);
      const missing = (await readAll(() =>
        echo.echoServerStream({ message: `fail 9 code ${status.NOT_FOUND}`, repeat: 5 }),
      ).catch((e: unknown) => e)) as RpcError;
      expect([missing.code, reads.get(`fail 9 code ${status.NOT_FOUND}`)]).toEqual([status.NOT_FOUND, 1]);
    } finally {
      echo.close();
    }
  });
});
