import {
  EchoRequestSchema,
  EchoResponseSchema,
  EchoService,
} from '@ballast/contracts/ballast/testing/v1/echo_pb.js';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, RpcError } from './client.js';
import { type Encoded, encoded } from './encoded.js';
import { type GrpcServer, serve, startGrpcServer } from './server.js';
import { echoService } from './testing/echo.js';

const log = { info: () => {}, warn: () => {}, error: () => {} };

describe('hand-written codecs on a hot method', () => {
  let server: GrpcServer;
  let client: ReturnType<typeof createClient<typeof EchoService>>;
  const decoded: string[] = [];

  beforeAll(async () => {
    server = await startGrpcServer({
      services: [
        serve(
          EchoService,
          {
            ...echoService,
            // Answers with bytes it wrote itself. A wrong schema does not typecheck; the cast
            // stands for an untyped caller, which the kit refuses at run time.
            async echo(request) {
              if (request.message === 'wrong schema') {
                return encoded(EchoRequestSchema, new Uint8Array()) as unknown as Encoded<
                  typeof EchoResponseSchema
                >;
              }
              const bytes = toBinary(
                EchoResponseSchema,
                create(EchoResponseSchema, { message: `raw:${request.message}` }),
              );
              return encoded(EchoResponseSchema, bytes);
            },
          },
          {
            requestDecoders: {
              echo: (bytes) => {
                const request = fromBinary(EchoRequestSchema, bytes);
                if (request.message === 'refuse') throw new Error('not a request this decoder reads');
                decoded.push(request.message);
                return request;
              },
            },
          },
        ),
      ],
      host: '127.0.0.1',
      port: 0,
      log,
    });
    server.setReady(true);
    client = createClient(EchoService, { address: `127.0.0.1:${server.port}`, retry: false });
  });

  afterAll(async () => {
    client.close();
    await server.shutdown();
  });

  it('sends an encoded response as it is, and decodes requests with the given decoder', async () => {
    expect((await client.echo({ message: 'hi' })).message).toBe('raw:hi');
    expect(decoded).toContain('hi');
  });

  it('answers INVALID_ARGUMENT when the decoder refuses the bytes', async () => {
    const err = await client.echo({ message: 'refuse' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RpcError);
    expect((err as RpcError).code).toBe(status.INVALID_ARGUMENT);
    expect((err as RpcError).message).toMatch(/not a request this decoder reads/);
  });

  it('refuses bytes encoded as another message rather than sending them', async () => {
    const err = await client.echo({ message: 'wrong schema' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RpcError);
    expect((err as RpcError).code).toBe(status.INTERNAL);
  });
});
