import { IngestService } from '@ballast/contracts/ballast/ingest/v1/ingest_pb.js';
import { MonitorService } from '@ballast/contracts/ballast/monitor/v1/monitor_pb.js';
import { RegistryService } from '@ballast/contracts/ballast/registry/v1/registry_pb.js';
import { type RpcError, serviceDefinition } from '@ballast/grpc-kit';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { Server, ServerCredentials, type ServerUnaryCall, type sendUnaryData, status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BallastClients, connect } from './clients.js';

// A replica killed mid-call looks to the client like UNAVAILABLE. The SDK's clients retry the
// calls whose server semantics make a repeat safe (IngestBatch, CommitVersion, RecordActuals
// with times) and no others. A real loopback server answers the first attempt of each call
// with UNAVAILABLE and the next with success, and counts the attempts.
describe('connect: which calls are retried on UNAVAILABLE', () => {
  let server: Server;
  let clients: BallastClients;
  const attempts = new Map<string, number>();

  /** A handler that refuses its first attempt of each distinct request, then answers `reply`. */
  const flaky =
    (method: string, reply: object) =>
    (call: ServerUnaryCall<object, object>, callback: sendUnaryData<object>) => {
      const key = `${method} ${JSON.stringify(call.request, (_, v) => (typeof v === 'bigint' ? String(v) : v))}`;
      const n = (attempts.get(key) ?? 0) + 1;
      attempts.set(key, n);
      if (n === 1) callback({ code: status.UNAVAILABLE, details: 'replica going away' });
      else callback(null, reply);
    };
  const tries = (method: string) =>
    [...attempts].filter(([k]) => k.startsWith(`${method} `)).reduce((sum, [, n]) => sum + n, 0);

  beforeAll(async () => {
    server = new Server();
    server.addService(serviceDefinition(IngestService), {
      ingestBatch: flaky('IngestBatch', { result: { accepted: 1 } }),
      commitVersion: flaky('CommitVersion', { version: { id: 'v' } }),
    });
    server.addService(serviceDefinition(MonitorService), {
      recordActuals: flaky('RecordActuals', { matched: 1n }),
    });
    server.addService(serviceDefinition(RegistryService), {
      createModel: flaky('CreateModel', {}),
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) =>
        err ? reject(err) : resolve(p),
      ),
    );
    const addr = `127.0.0.1:${port}`;
    clients = connect(
      { BALLAST_INGEST_ADDR: addr, BALLAST_MONITOR_ADDR: addr, BALLAST_REGISTRY_ADDR: addr },
      { deadlineMs: 10_000 },
    );
  });

  afterAll(() => {
    clients?.close();
    server?.forceShutdown();
  });

  it('retries IngestBatch and CommitVersion (duplicates dropped by event id; same version)', async () => {
    expect((await clients.ingest.ingestBatch({ batch: { dataset: 'd' } })).result?.accepted).toBe(1);
    expect(tries('IngestBatch')).toBe(2);
    expect((await clients.ingest.commitVersion({ dataset: 'd' })).version?.id).toBe('v');
    expect(tries('CommitVersion')).toBe(2);
  });

  it('retries RecordActuals only when every actual carries its time', async () => {
    const timed = await clients.monitor.recordActuals({
      model: 'm',
      actuals: [{ entityKey: 'a', value: 1, time: timestampFromMs(1_000) }],
    });
    expect(timed.matched).toBe(1n);
    expect(tries('RecordActuals')).toBe(2);

    // Stamped by the monitor on arrival: a repeat would be a new actual, so it is not sent again.
    const err = (await clients.monitor
      .recordActuals({ model: 'm', actuals: [{ entityKey: 'b', value: 1 }] })
      .catch((e: unknown) => e)) as RpcError;
    expect(err.code).toBe(status.UNAVAILABLE);
    expect(tries('RecordActuals')).toBe(3);
  });

  it('does not retry CreateModel (a repeat of a create that landed answers ALREADY_EXISTS)', async () => {
    const err = (await clients.registry.createModel({ name: 'm' }).catch((e: unknown) => e)) as RpcError;
    expect(err.code).toBe(status.UNAVAILABLE);
    expect(tries('CreateModel')).toBe(1);
  });
});
