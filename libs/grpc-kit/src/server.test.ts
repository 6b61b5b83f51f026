import {
  Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from '@ballast/contracts/grpc/health/v1/health_pb.js';
import { create, toBinary } from '@bufbuild/protobuf';
import { credentials, Metadata, status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, RpcError } from './client.js';
import { type GrpcServer, serve, startGrpcServer } from './server.js';
import { EchoService, echoService } from './testing/echo.js';
import { reflectionClient } from './testing/reflection-client.js';

const logged: Array<{ obj: object; msg?: string | undefined }> = [];
const log = {
  info: () => {},
  warn: () => {},
  error: (obj: object, msg?: string) => logged.push({ obj, msg }),
};

async function nextOf<T>(iterator: AsyncIterator<T>): Promise<T> {
  const { value, done } = await iterator.next();
  if (done) throw new Error('stream ended');
  return value;
}

describe('grpc-kit server', () => {
  let server: GrpcServer;
  let address: string;

  beforeAll(async () => {
    server = await startGrpcServer({
      services: [serve(EchoService, echoService)],
      host: '127.0.0.1',
      port: 0,
      log,
      maxMessageBytes: 64 * 1024,
    });
    address = `127.0.0.1:${server.port}`;
  });

  afterAll(async () => {
    await server.shutdown();
  });

  it('answers liveness at once and a service name only once it is ready', async () => {
    const health = createClient(Health, { address });
    try {
      expect((await health.check({ service: '' })).status).toBe(ServingStatus.SERVING);
      expect((await health.check({ service: 'ballast.testing.v1.EchoService' })).status).toBe(
        ServingStatus.NOT_SERVING,
      );
      const unknown = await health.check({ service: 'no.such.Service' }).catch((e: unknown) => e);
      expect(unknown).toBeInstanceOf(RpcError);
      expect((unknown as RpcError).code).toBe(status.NOT_FOUND);
    } finally {
      health.close();
    }
  });

  it('streams health changes to a watcher', async () => {
    const health = createClient(Health, { address });
    const controller = new AbortController();
    try {
      server.setReady(false);
      const watch = health.watch(
        { service: 'ballast.testing.v1.EchoService' },
        { signal: controller.signal },
      );
      const iterator = watch[Symbol.asyncIterator]();
      expect((await nextOf(iterator)).status).toBe(ServingStatus.NOT_SERVING);
      server.setReady(true);
      expect((await nextOf(iterator)).status).toBe(ServingStatus.SERVING);
      server.setReady(false);
      expect((await nextOf(iterator)).status).toBe(ServingStatus.NOT_SERVING);
      server.setReady(true);
      expect((await nextOf(iterator)).status).toBe(ServingStatus.SERVING);
      const unknown = health.watch({ service: 'not.Yet' })[Symbol.asyncIterator]();
      expect((await nextOf(unknown)).status).toBe(ServingStatus.SERVICE_UNKNOWN);
      await unknown.return?.();
      await iterator.return?.();
    } finally {
      controller.abort();
      health.close();
    }
  });

  it('serves every call shape through the typed client', async () => {
    const echo = createClient(EchoService, { address });
    try {
      expect((await echo.echo({ message: 'hi' })).message).toBe('hi');
      const streamed: number[] = [];
      for await (const r of echo.echoServerStream({ message: 'x', repeat: 3 })) streamed.push(r.index);
      expect(streamed).toEqual([0, 1, 2]);
      async function* words() {
        yield { message: 'a' };
        yield { message: 'b' };
        yield { message: 'c' };
      }
      expect(await echo.echoClientStream(words())).toMatchObject({ message: 'a b c', count: 3 });
      const replies: string[] = [];
      for await (const r of echo.echoBidiStream(words())) replies.push(`${r.index}:${r.message}`);
      expect(replies).toEqual(['0:a', '1:b', '2:c']);
    } finally {
      echo.close();
    }
  });

  it('maps domain errors to their status with the field and rule', async () => {
    const echo = createClient(EchoService, { address });
    try {
      const invalid = (await echo
        .echo({ behaviour: { failWith: 'invalid_argument' } })
        .catch((e: unknown) => e)) as RpcError;
      expect(invalid.code).toBe(status.INVALID_ARGUMENT);
      expect(invalid.details).toBe('message: must not be empty');
      expect(invalid.field).toBe('message');
      expect(invalid.rule).toBe('must not be empty');
      for (const [kind, code] of [
        ['not_found', status.NOT_FOUND],
        ['failed_precondition', status.FAILED_PRECONDITION],
        ['resource_exhausted', status.RESOURCE_EXHAUSTED],
        ['permission_denied', status.PERMISSION_DENIED],
      ] as const) {
        const err = (await echo.echo({ behaviour: { failWith: kind } }).catch((e: unknown) => e)) as RpcError;
        expect(err.code).toBe(code);
        expect(err.details).toContain(kind);
      }
      const streamErr = await (async () => {
        for await (const _ of echo.echoServerStream({ repeat: 2, behaviour: { failWith: 'not_found' } })) {
          /* drain */
        }
      })().catch((e: unknown) => e);
      expect((streamErr as RpcError).code).toBe(status.NOT_FOUND);
    } finally {
      echo.close();
    }
  });

  it('turns an unknown error into INTERNAL, logging the stack but not sending it', async () => {
    const echo = createClient(EchoService, { address });
    try {
      logged.length = 0;
      const err = (await echo.echo({ behaviour: { failWith: 'bug' } }).catch((e: unknown) => e)) as RpcError;
      expect(err.code).toBe(status.INTERNAL);
      expect(err.details).toMatch(/^internal error \(ref [0-9a-f-]{36}\)$/);
      expect(err.details).not.toContain('secret');
      expect(logged).toHaveLength(1);
      const entry = logged[0]?.obj as { err: Error; ref: string };
      expect(entry.err.stack).toContain('a bug with a secret stack');
      expect(err.details).toContain(entry.ref);
    } finally {
      echo.close();
    }
  });

  it('answers DEADLINE_EXCEEDED when a call outlives its deadline', async () => {
    const echo = createClient(EchoService, { address });
    try {
      const err = (await echo
        .echo({ message: 'slow', behaviour: { delayMs: 2_000 } }, { timeoutMs: 100 })
        .catch((e: unknown) => e)) as RpcError;
      expect(err.code).toBe(status.DEADLINE_EXCEEDED);
    } finally {
      echo.close();
    }
  });

  it('applies the server default deadline to calls that set none', async () => {
    const strict = await startGrpcServer({
      services: [serve(EchoService, echoService)],
      host: '127.0.0.1',
      port: 0,
      log,
      defaultDeadlineMs: 100,
    });
    const echo = createClient(EchoService, {
      address: `127.0.0.1:${strict.port}`,
      deadlineMs: Number.POSITIVE_INFINITY,
    });
    try {
      const err = (await echo.echo({ behaviour: { delayMs: 5_000 } }).catch((e: unknown) => e)) as RpcError;
      expect(err.code).toBe(status.DEADLINE_EXCEEDED);
      expect(err.details).toMatch(/^deadline exceeded: .*default of 100 ms/);
    } finally {
      echo.close();
      await strict.shutdown();
    }
  });

  it('refuses messages above the size limit with RESOURCE_EXHAUSTED', async () => {
    const echo = createClient(EchoService, { address, maxMessageBytes: 1024 * 1024 });
    try {
      const err = (await echo.echo({ message: 'x'.repeat(100 * 1024) }).catch((e: unknown) => e)) as RpcError;
      expect(err.code).toBe(status.RESOURCE_EXHAUSTED);
      expect((await echo.echo({ message: 'x'.repeat(1024) })).message).toHaveLength(1024);
    } finally {
      echo.close();
    }
  });

  it('lists the served services through reflection', async () => {
    const services = await reflectionClient(address).listServices();
    expect(services).toEqual(
      expect.arrayContaining(['grpc.health.v1.Health', 'ballast.testing.v1.EchoService']),
    );
    const [file] = await reflectionClient(address).fileContainingSymbol('ballast.testing.v1.EchoService');
    expect(file?.name).toBe('ballast/testing/v1/echo.proto');
  });

  it('keeps health Check open to clients that send no token when auth is on', async () => {
    const secured = await startGrpcServer({
      services: [serve(EchoService, echoService)],
      host: '127.0.0.1',
      port: 0,
      log,
      authToken: 's3cret-token',
    });
    const target = `127.0.0.1:${secured.port}`;
    const anonymous = createClient(EchoService, { address: target });
    const wrong = createClient(EchoService, { address: target, authToken: 'guess' });
    const right = createClient(EchoService, { address: target, authToken: 's3cret-token' });
    const health = createClient(Health, { address: target });
    try {
      const missing = (await anonymous.echo({ message: 'a' }).catch((e: unknown) => e)) as RpcError;
      expect(missing.code).toBe(status.UNAUTHENTICATED);
      expect(missing.details).toContain('authorization: Bearer');
      const bad = (await wrong.echo({ message: 'a' }).catch((e: unknown) => e)) as RpcError;
      expect(bad.code).toBe(status.UNAUTHENTICATED);
      expect((await right.echo({ message: 'a' })).message).toBe('a');
      expect((await health.check({ service: '' })).status).toBe(ServingStatus.SERVING);
      const reflection = await reflectionClient(target)
        .listServices()
        .catch((e: unknown) => e);
      expect((reflection as { code: number }).code).toBe(status.UNAUTHENTICATED);
    } finally {
      for (const c of [anonymous, wrong, right, health]) c.close();
      await secured.shutdown();
    }
  });

  it('decodes what a client of another stack sends (raw bytes over a plain grpc-js client)', async () => {
    const { Client } = await import('@grpc/grpc-js');
    const raw = new Client(address, credentials.createInsecure());
    const { HealthCheckRequestSchema } = await import('@ballast/contracts/grpc/health/v1/health_pb.js');
    const bytes = Buffer.from(
      toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema, { service: '' })),
    );
    const reply = await new Promise<Buffer>((resolve, reject) =>
      raw.makeUnaryRequest(
        '/grpc.health.v1.Health/Check',
        (b: Buffer) => b,
        (b: Buffer) => b,
        bytes,
        new Metadata(),
        {},
        (err, value) => (err ? reject(err) : resolve(value as Buffer)),
      ),
    );
    raw.close();
    // field 1 (status), varint 1 (SERVING)
    expect([...reply]).toEqual([0x08, 0x01]);
  });
});

describe('undecodable requests', () => {
  it('are INVALID_ARGUMENT (the caller sent them), not INTERNAL, and the server keeps serving', async () => {
    const { Client } = await import('@grpc/grpc-js');
    const server = await startGrpcServer({
      services: [serve(EchoService, echoService)],
      host: '127.0.0.1',
      port: 0,
      log,
    });
    const address = `127.0.0.1:${server.port}`;
    const raw = new Client(address, credentials.createInsecure());
    const identity = (b: Buffer) => b;
    try {
      // Field 1 (string) as a length-delimited field that claims more bytes than follow.
      const garbage = Buffer.from([0x0a, 0x7f, 0x01]);
      const code = await new Promise<number>((resolve) => {
        raw.makeUnaryRequest(
          '/ballast.testing.v1.EchoService/Echo',
          identity,
          identity,
          garbage,
          new Metadata(),
          {},
          (err) => resolve(err?.code ?? status.OK),
        );
      });
      expect(code).toBe(status.INVALID_ARGUMENT);
      const client = createClient(EchoService, { address });
      expect((await client.echo({ message: 'still here' })).message).toBe('still here');
      client.close();
    } finally {
      raw.close();
      await server.shutdown();
    }
  });
});
