import { setTimeout as sleep } from 'node:timers/promises';
import { EchoRequestSchema, EchoResponseSchema } from '@ballast/contracts/ballast/testing/v1/echo_pb.js';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { Client, credentials, Metadata, type StatusObject, status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BallastError, invalidArgument } from './errors.js';
import { type GrpcServer, serve, startGrpcServer } from './server.js';
import { EchoService, echoService } from './testing/echo.js';
import type { HandlerContext } from './types.js';

const quiet = { info() {}, warn() {}, error() {} };

/**
 * The handler context as a handler sees it, over a real server and a plain grpc-js client:
 * response metadata and the abort state are made only on use (server-adapter.ts), and must
 * behave as if they had always been there.
 */
describe('handler context', () => {
  let server: GrpcServer;
  let client: Client;
  const seen: { aborted: boolean[]; signal?: AbortSignal; reason?: unknown } = { aborted: [] };

  beforeAll(async () => {
    server = await startGrpcServer({
      services: [
        serve(EchoService, {
          ...echoService,
          async echo(request, ctx: HandlerContext) {
            if (request.message === 'metadata') {
              ctx.responseHeaders.set('x-header', 'h');
              ctx.responseTrailers.set('x-trailer', 't');
              return { message: 'ok' };
            }
            if (request.message === 'fail') {
              ctx.responseTrailers.set('x-trailer', 't');
              throw invalidArgument('message', 'fails as asked');
            }
            // 'wait': polls the cheap flag until the deadline passes, then takes the signal.
            seen.aborted.push(ctx.aborted);
            while (!ctx.aborted) await sleep(5);
            seen.aborted.push(ctx.aborted);
            seen.signal = ctx.signal;
            seen.reason = ctx.signal.reason;
            return { message: 'late' };
          },
        }),
      ],
      host: '127.0.0.1',
      port: 0,
      log: quiet,
    });
    client = new Client(`127.0.0.1:${server.port}`, credentials.createInsecure());
  });

  afterAll(async () => {
    client.close();
    await server.shutdown();
  });

  function echo(message: string, deadlineMs = 5_000) {
    return new Promise<{ headers?: Metadata; status: StatusObject; reply?: string }>((resolve) => {
      const out: { headers?: Metadata; reply?: string } = {};
      const call = client.makeUnaryRequest(
        '/ballast.testing.v1.EchoService/Echo',
        (r: Uint8Array) => Buffer.from(r),
        (b: Buffer) => fromBinary(EchoResponseSchema, b),
        toBinary(EchoRequestSchema, create(EchoRequestSchema, { message })),
        new Metadata(),
        { deadline: Date.now() + deadlineMs },
        (_err, value) => {
          if (value) out.reply = value.message;
        },
      );
      call.on('metadata', (headers) => {
        out.headers = headers;
      });
      call.on('status', (s) => resolve({ ...out, status: s }));
    });
  }

  it('sends the headers and trailers a handler sets', async () => {
    const { headers, status: s, reply } = await echo('metadata');
    expect(reply).toBe('ok');
    expect(headers?.get('x-header')).toEqual(['h']);
    expect(s.code).toBe(status.OK);
    expect(s.metadata.get('x-trailer')).toEqual(['t']);
  });

  it('sends a handler’s trailers with the status of its error, beside the field and rule', async () => {
    const { status: s } = await echo('fail');
    expect(s.code).toBe(status.INVALID_ARGUMENT);
    expect(s.metadata.get('x-trailer')).toEqual(['t']);
    expect(s.metadata.get('ballast-field')).toEqual(['message']);
    expect(s.metadata.get('ballast-rule')).toEqual(['fails as asked']);
  });

  it('turns aborted at the deadline, and a signal first asked for afterwards is already aborted', async () => {
    const { status: s } = await echo('wait', 100);
    expect(s.code).toBe(status.DEADLINE_EXCEEDED);
    // The handler runs on after the call is answered; give it its last poll.
    for (let i = 0; i < 100 && !seen.signal; i++) await sleep(10);
    expect(seen.aborted).toEqual([false, true]);
    expect(seen.signal?.aborted).toBe(true);
    expect(seen.reason).toBeInstanceOf(BallastError);
    // grpc-js cancels a call at its deadline too: whichever of the two comes first is the reason.
    expect(['deadline_exceeded', 'cancelled']).toContain((seen.reason as BallastError).code);
  });
});
