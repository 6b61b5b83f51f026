// Each limit against a real loopback server: a grpc-js client that stops reading, and raw
// HTTP/2 sessions for what grpc-js clients never do (half a message, a silent connection).
import { once } from 'node:events';
import type { ClientHttp2Session } from 'node:http2';
import { setTimeout as sleep } from 'node:timers/promises';
import { EchoServerStreamRequestSchema } from '@ballast/contracts/ballast/testing/v1/echo_pb.js';
import { Health } from '@ballast/contracts/grpc/health/v1/health_pb.js';
import { create, toBinary } from '@bufbuild/protobuf';
import { status } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { createClient, RpcError } from './client.js';
import { type GrpcServer, serve, startGrpcServer } from './server.js';
import { EchoService, echoService } from './testing/echo.js';
import { grpcFrame as frame, grpcHeaders, grpcStatus, rawSession } from './testing/raw-http2.js';
import { type TransportLimits, transportLimitsFromEnv } from './transport-limits.js';
import type { ServiceImpl } from './types.js';

const log = { info: () => {}, warn: () => {}, error: () => {} };
const MiB = 1024 * 1024;

let server: GrpcServer | undefined;
const sessions: ClientHttp2Session[] = [];

afterEach(async () => {
  for (const session of sessions.splice(0)) session.destroy();
  await server?.shutdown();
  server = undefined;
});

async function start(impl: ServiceImpl<typeof EchoService>, limits: Partial<TransportLimits>) {
  server = await startGrpcServer({
    services: [serve(EchoService, impl)],
    host: '127.0.0.1',
    port: 0,
    log,
    shutdownGraceMs: 100,
    limits,
  });
  return `127.0.0.1:${server.port}`;
}

function h2(address: string): ClientHttp2Session {
  const session = rawSession(address);
  sessions.push(session);
  return session;
}

/** Polls `read` until it stops changing for `quietMs`; a stalled stream has then settled. */
async function settled(read: () => number, quietMs = 500): Promise<number> {
  let last = read();
  for (;;) {
    await sleep(quietMs);
    const now = read();
    if (now === last) return now;
    last = now;
  }
}

/**
 * An EchoServerStream of `repeat` messages of `messageBytes` (256 KiB stream buffer) whose
 * reader has paused; `produced` counts the messages its handler has yielded.
 */
async function pausedStream(messageBytes: number, repeat: number) {
  const counter = { produced: 0 };
  const address = await start(
    {
      ...echoService,
      async *echoServerStream(request) {
        for (let index = 0; index < request.repeat; index++) {
          counter.produced++;
          yield { message: request.message, index };
        }
      },
    },
    { streamBufferBytes: 256 * 1024 },
  );
  const stream = h2(address).request(grpcHeaders('/ballast.testing.v1.EchoService/EchoServerStream'));
  stream.end(
    frame(
      toBinary(
        EchoServerStreamRequestSchema,
        create(EchoServerStreamRequestSchema, { message: 'x'.repeat(messageBytes), repeat }),
      ),
    ),
  );
  stream.pause();
  return { counter, stream };
}

describe('a response stream whose reader stops reading', () => {
  it('stops pulling from the handler once the bounded buffer is full', async () => {
    // The client never reads, so HTTP/2 flow control closes the window after 64 KiB. grpc-js
    // alone queued 16 messages (16 MiB here) per stream before reporting "full"; the kit
    // holds one 1 MiB message in flight and pulls nothing more from the handler.
    const { counter, stream } = await pausedStream(MiB - 64, 32);
    const produced = () => counter.produced;
    const stalled = await settled(produced);
    expect(stalled).toBeGreaterThan(0);
    expect(stalled).toBeLessThanOrEqual(3);
    // Reading again resumes the stream to its end.
    const ended = grpcStatus(stream);
    stream.resume();
    expect((await ended).code).toBe(status.OK);
    expect(produced()).toBe(32);
  });
});

describe('a stream of messages as large as its buffer', () => {
  it('does not ask the handler for the next message until the one in flight has left', async () => {
    // Just under the 256 KiB bound, as DownloadArtifact's 256 KiB chunks are with their framing.
    const { counter, stream } = await pausedStream(256 * 1024 - 64, 8);
    // One message in flight (its first 64 KiB sent before the reader's window closed); a second
    // one, which fitted "at most 256 KiB pending" before it was written, is not produced.
    expect(await settled(() => counter.produced)).toBe(1);
    const ended = grpcStatus(stream);
    stream.resume();
    expect((await ended).code).toBe(status.OK);
    expect(counter.produced).toBe(8);
  });
});

describe('calls and connections that never finish', () => {
  it('answers a unary call whose message never completes with DEADLINE_EXCEEDED from its first byte', async () => {
    const address = await start(echoService, { defaultDeadlineMs: 300 });
    const stream = h2(address).request(grpcHeaders('/ballast.testing.v1.EchoService/Echo'));
    stream.on('error', () => {});
    // A frame header announcing 100 bytes, then 3 of them, and nothing more.
    stream.write(Buffer.from([0, 0, 0, 0, 100, 10, 1, 120]));
    const answer = await grpcStatus(stream);
    expect(answer.code).toBe(status.DEADLINE_EXCEEDED);
    expect(answer.message).toContain('default of 300 ms');
  });

  it('ends a client stream that never sends with DEADLINE_EXCEEDED', async () => {
    const address = await start(echoService, { defaultDeadlineMs: 300 });
    // No client deadline (0 would be one already past): only the server's default can end it.
    const echo = createClient(EchoService, { address, deadlineMs: Number.POSITIVE_INFINITY });
    try {
      const never = (async function* () {
        await sleep(60_000);
        yield { message: 'late' };
      })();
      const err = (await echo.echoClientStream(never).catch((e: unknown) => e)) as RpcError;
      expect(err).toBeInstanceOf(RpcError);
      expect(err.code).toBe(status.DEADLINE_EXCEEDED);
      expect(err.message).toContain('default of 300 ms');
    } finally {
      echo.close();
    }
  });

  it('ends an idle bidi stream once its connection is past max age and grace', async () => {
    const address = await start(echoService, { maxConnectionAgeMs: 300, maxConnectionAgeGraceMs: 200 });
    const stream = h2(address).request(grpcHeaders('/ballast.testing.v1.EchoService/EchoBidiStream'));
    stream.on('error', () => {});
    stream.resume();
    await once(stream, 'close');
    expect(stream.rstCode ?? 0).not.toBe(0);
  });

  it('sends GOAWAY to a connection idle past max_connection_idle_ms', async () => {
    const address = await start(echoService, { maxConnectionIdleMs: 300 });
    const session = h2(address);
    await once(session, 'connect');
    await once(session, 'goaway');
  });

  it('pings a quiet connection every keepalive_time_ms', async () => {
    const address = await start(echoService, { keepaliveTimeMs: 200, keepaliveTimeoutMs: 1000 });
    const session = h2(address);
    await once(session, 'ping');
  });

  it('announces max_concurrent_streams in its HTTP/2 settings', async () => {
    const address = await start(echoService, { maxConcurrentStreams: 7 });
    const session = h2(address);
    await once(session, 'remoteSettings');
    expect(session.remoteSettings.maxConcurrentStreams).toBe(7);
  });
});

describe('watch streams', () => {
  it('refuses a watch past max_watchers with RESOURCE_EXHAUSTED naming the cap, and frees its place when one ends', async () => {
    const address = await start(echoService, { maxWatchers: 2 });
    const health = createClient(Health, { address });
    const controllers = [new AbortController(), new AbortController()];
    try {
      for (const controller of controllers) {
        const first = await health
          .watch({ service: '' }, { signal: controller.signal })
          [Symbol.asyncIterator]()
          .next();
        expect(first.done).toBe(false);
      }
      const third = (await health
        .watch({ service: '' })
        [Symbol.asyncIterator]()
        .next()
        .catch((e: unknown) => e)) as RpcError;
      expect(third.code).toBe(status.RESOURCE_EXHAUSTED);
      expect(third.message).toContain('max_watchers = 2');
      controllers[0]?.abort();
      // The server learns of the cancel asynchronously: retry until its place is free.
      for (;;) {
        const next = await health
          .watch({ service: '' })
          [Symbol.asyncIterator]()
          .next()
          .catch((e: unknown) => e);
        if (!(next instanceof RpcError)) break;
        expect(next.code).toBe(status.RESOURCE_EXHAUSTED);
        await sleep(50);
      }
    } finally {
      for (const controller of controllers) controller.abort();
      health.close();
    }
  });
});

describe('transportLimitsFromEnv', () => {
  it('takes overrides and reports every bad value at once', () => {
    expect(transportLimitsFromEnv({ BALLAST_GRPC_MAX_WATCHERS: '5' }).maxWatchers).toBe(5);
    expect(() =>
      transportLimitsFromEnv({ BALLAST_GRPC_KEEPALIVE_TIME_MS: 'soon', BALLAST_GRPC_MAX_WATCHERS: '0' }),
    ).toThrow(
      /BALLAST_GRPC_KEEPALIVE_TIME_MS: expected a positive integer, got "soon".*BALLAST_GRPC_MAX_WATCHERS/,
    );
  });
});
