// Bad input: every RPC of every service, as a real process, fed adversarial requests at the
// protobuf level (fast-check) and garbage at the HTTP/2 and TCP level. Zero crashes, zero
// INTERNAL or UNKNOWN, memory bounded.
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import * as http2 from 'node:http2';
import { connect as tcpConnect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { GrpcServiceName, ServiceName } from '@ballast/config';
import { FeatureService } from '@ballast/contracts/ballast/feature/v1/feature_pb.js';
import { InferenceService } from '@ballast/contracts/ballast/inference/v1/inference_pb.js';
import { IngestService } from '@ballast/contracts/ballast/ingest/v1/ingest_pb.js';
import { MonitorService } from '@ballast/contracts/ballast/monitor/v1/monitor_pb.js';
import { RegistryService } from '@ballast/contracts/ballast/registry/v1/registry_pb.js';
import { Health } from '@ballast/contracts/grpc/health/v1/health_pb.js';
import { GRPCInferenceService } from '@ballast/contracts/inference/grpc_predict_v2_pb.js';
import type { DescMethod, DescService } from '@bufbuild/protobuf';
import { Client, credentials, Metadata, status } from '@grpc/grpc-js';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adversarialRequest } from './adversarial.js';
import { saveLog, suiteRecorder } from './report.js';
import {
  createTestDatabase,
  rssKiB,
  type ServiceProcess,
  ServingStatus,
  startRedis,
  startService,
  type TestRedis,
  tempDir,
  waitHealth,
} from './support.js';

const record = suiteRecorder('fuzz', 'Bad input: fuzzing every RPC, garbage at HTTP/2 and TCP');
const SEED = Number(process.env.BALLAST_FUZZ_SEED ?? 20261201);
/** Property runs per method; each run sends a batch of BATCH requests at once. */
const RUNS = { unary: 6, streaming: 2 };
const BATCH = 8;

const SERVED: Record<GrpcServiceName, DescService[]> = {
  ingest: [IngestService],
  feature: [FeatureService],
  registry: [RegistryService],
  inference: [InferenceService, GRPCInferenceService],
  monitor: [MonitorService],
};
const ORDER: GrpcServiceName[] = ['registry', 'ingest', 'feature', 'inference', 'monitor'];

let redis: TestRedis;
let db: Awaited<ReturnType<typeof createTestDatabase>>;
const procs = new Map<ServiceName, ServiceProcess>();

beforeAll(async () => {
  redis = await startRedis();
  db = await createTestDatabase('fuzz');
  const common = {
    BALLAST_REDIS_URL: redis.url,
    BALLAST_DATABASE_URL: db.url,
    BALLAST_DATA_DIR: tempDir('fuzz'),
  };
  const registry = await startService('registry', common);
  procs.set('registry', registry);
  const ingest = await startService('ingest', common);
  procs.set('ingest', ingest);
  procs.set('feature', await startService('feature', { ...common, BALLAST_INGEST_ADDR: ingest.address }));
  procs.set(
    'inference',
    await startService('inference', {
      ...common,
      BALLAST_REGISTRY_ADDR: registry.address,
      BALLAST_TF_BACKEND: 'cpu',
    }),
  );
  procs.set('monitor', await startService('monitor', common));
  for (const proc of procs.values()) await waitHealth(proc, '', ServingStatus.SERVING, 90_000);
}, 180_000);

afterAll(async () => {
  for (const proc of procs.values()) {
    await proc.kill('SIGKILL');
    saveLog(`fuzz-${proc.service}`, proc.output());
  }
  await redis?.close();
  await db?.close();
});

/** One call through a raw grpc-js client whose (de)serializers are the identity: any bytes go. */
function rawCall(
  client: Client,
  method: DescMethod,
  messages: Uint8Array[],
  deadlineMs: number,
): Promise<number> {
  const path = `/${method.parent.typeName}/${method.name}`;
  const id = (b: Buffer) => b;
  const options = { deadline: Date.now() + deadlineMs };
  return new Promise((resolve) => {
    const md = new Metadata();
    switch (method.methodKind) {
      case 'unary':
        client.makeUnaryRequest(path, id, id, Buffer.from(messages[0] ?? []), md, options, (err) =>
          resolve(err?.code ?? status.OK),
        );
        return;
      case 'server_streaming': {
        const call = client.makeServerStreamRequest(
          path,
          id,
          id,
          Buffer.from(messages[0] ?? []),
          md,
          options,
        );
        call.on('data', () => {});
        call.on('error', () => {});
        call.on('status', (s) => resolve(s.code));
        return;
      }
      case 'client_streaming': {
        const call = client.makeClientStreamRequest(path, id, id, md, options, (err) =>
          resolve(err?.code ?? status.OK),
        );
        for (const m of messages) call.write(Buffer.from(m));
        call.end();
        return;
      }
      case 'bidi_streaming': {
        const call = client.makeBidiStreamRequest(path, id, id, md, options);
        call.on('data', () => {});
        call.on('error', () => {});
        call.on('status', (s) => resolve(s.code));
        for (const m of messages) call.write(Buffer.from(m));
        call.end();
        return;
      }
    }
  });
}

describe.each(ORDER.map((s) => [s]))('%s', (service) => {
  it('answers every adversarial request of every RPC with a non-INTERNAL status, and keeps serving', async () => {
    const proc = procs.get(service) as ServiceProcess;
    const client = new Client(proc.address, credentials.createInsecure(), {
      'grpc.max_send_message_length': 8 * 1024 * 1024,
      'grpc.max_receive_message_length': 8 * 1024 * 1024,
    });
    const rssBefore = rssKiB(proc.child.pid);
    let peak = rssBefore;
    const sampler = setInterval(() => {
      if (proc.alive()) peak = Math.max(peak, rssKiB(proc.child.pid));
    }, 100);
    const codes = new Map<string, number>();
    const bad: string[] = [];
    const rssAfterRound: number[] = [];
    let calls = 0;
    const started = Date.now();
    const methods = [...SERVED[service], Health].flatMap((s) => s.methods);
    try {
      // two rounds, two seeds: RSS after each shows whether memory keeps growing or levels off
      for (const round of [0, 1]) {
        for (const method of methods) {
          const streaming = method.methodKind !== 'unary';
          const request = adversarialRequest(method.input);
          const messages =
            method.methodKind === 'client_streaming' || method.methodKind === 'bidi_streaming'
              ? fc.array(request, { minLength: 1, maxLength: 4 })
              : request.map((r) => [r]);
          await fc
            .assert(
              fc.asyncProperty(fc.array(messages, { minLength: BATCH, maxLength: BATCH }), async (batch) => {
                const results = await Promise.all(
                  batch.map((m) => rawCall(client, method, m, streaming ? 1_500 : 5_000)),
                );
                calls += results.length;
                for (const [i, code] of results.entries()) {
                  const name = status[code] ?? String(code);
                  codes.set(name, (codes.get(name) ?? 0) + 1);
                  if (code === status.INTERNAL || code === status.UNKNOWN) {
                    bad.push(
                      `${method.name}: ${name} for ${Buffer.from(batch[i]?.[0] ?? [])
                        .toString('hex')
                        .slice(0, 80)}`,
                    );
                  }
                }
                return results.every((c) => c !== status.INTERNAL && c !== status.UNKNOWN);
              }),
              { numRuns: streaming ? RUNS.streaming : RUNS.unary, seed: SEED + round, endOnFailure: true },
            )
            .catch((err: Error) => bad.push(`${method.name}: ${err.message.slice(0, 200)}`));
        }
        if (proc.alive()) rssAfterRound.push(rssKiB(proc.child.pid));
      }
    } finally {
      clearInterval(sampler);
      client.close();
    }
    await sleep(500);
    const alive = proc.alive();
    const liveness = alive
      ? await waitHealth(proc, '', ServingStatus.SERVING, 10_000).then(
          () => true,
          () => false,
        )
      : false;
    const rssAfter = alive ? rssKiB(proc.child.pid) : Number.NaN;
    const growthMiB = (rssAfter - rssBefore) / 1024;
    const pass = record({
      scenario: `${service}: protobuf fuzzing of ${methods.length} RPCs (${SERVED[service].map((s) => s.name).join(', ')}, Health)`,
      headline: `${service}: ${calls} adversarial requests over ${methods.length} RPCs, ${bad.length} INTERNAL/UNKNOWN, ${alive && liveness ? 'still serving' : 'DOWN'}, RSS ${[rssBefore, ...rssAfterRound].map((r) => Math.round(r / 1024)).join(' -> ')} MiB (start, after round 1, after round 2)`,
      injected: `${calls} adversarial requests in two rounds (fast-check seeds ${SEED} and ${SEED + 1}): schema-shaped messages with wrong wire types, invalid UTF-8, extreme/non-canonical numbers, 100k-300k-element repeated fields, unknown fields; random bytes; truncated messages; 50-3,000 levels of nested messages; 1k-200k nested groups`,
      measured: {
        calls: calls,
        statuses: [...codes]
          .sort((a, b) => b[1] - a[1])
          .map(([k, v]) => `${k} ${v}`)
          .join(', '),
        'INTERNAL or UNKNOWN': bad.length,
        'process alive, liveness SERVING after': alive && liveness,
        'RSS before (MiB)': Math.round(rssBefore / 1024),
        'RSS peak (MiB)': Math.round(peak / 1024),
        'RSS after round 1 / round 2 (MiB)': rssAfterRound.map((r) => Math.round(r / 1024)).join(' / '),
        'RSS after (MiB)': Math.round(rssAfter / 1024),
        'wall time (s)': Math.round((Date.now() - started) / 100) / 10,
        ...(bad.length > 0 ? { 'first failures': bad.slice(0, 3).join(' / ') } : {}),
      },
      pass: bad.length === 0 && alive && liveness && growthMiB < 256,
    });
    expect(bad.map((b) => b.slice(0, 200))).toEqual([]);
    expect(alive && liveness).toBe(true);
    expect(growthMiB).toBeLessThan(256);
    expect(pass).toBe(true);
  }, 180_000);

  it('survives garbage at the HTTP/2 and TCP level', async () => {
    const proc = procs.get(service) as ServiceProcess;
    const rssBefore = rssKiB(proc.child.pid);
    const grpcStatuses = new Map<string, number>();
    const path = `/${SERVED[service][0]?.typeName}/${SERVED[service][0]?.methods[0]?.name}`;
    let sessions = 0;

    // 1. raw TCP: noise, then the HTTP/2 preface followed by junk frames
    const tcp = async (payload: Buffer) => {
      const socket = tcpConnect(proc.grpcPort, '127.0.0.1');
      socket.on('error', () => {});
      socket.on('data', () => {});
      await once(socket, 'connect').catch(() => {});
      socket.write(payload);
      await sleep(20);
      socket.destroy();
    };
    const preface = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
    for (const bytes of fc.sample(fc.uint8Array({ minLength: 1, maxLength: 4_096 }), {
      numRuns: 30,
      seed: SEED,
    })) {
      await tcp(Buffer.from(bytes));
      await tcp(Buffer.concat([preface, Buffer.from(bytes)]));
      sessions += 2;
    }
    // a frame header announcing 16 MiB of payload, and a SETTINGS frame with a bad length
    await tcp(Buffer.concat([preface, Buffer.from([0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01])]));
    await tcp(
      Buffer.concat([
        preface,
        Buffer.from([0x00, 0x00, 0x05, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 1, 2, 3, 4, 5]),
      ]),
    );
    sessions += 2;

    // 2. well-formed HTTP/2 carrying bad gRPC: headers, length prefixes, compression
    const perCase: string[] = [];
    const h2 = async (label: string, headers: http2.OutgoingHttpHeaders, body: Buffer, rst = false) => {
      const session = http2.connect(`http://127.0.0.1:${proc.grpcPort}`);
      session.on('error', () => {});
      sessions++;
      try {
        const req = session.request({
          ':method': 'POST',
          ':path': path,
          'content-type': 'application/grpc',
          te: 'trailers',
          ...headers,
        });
        req.on('error', () => {});
        const seen = (name: string) => {
          grpcStatuses.set(name, (grpcStatuses.get(name) ?? 0) + 1);
          perCase.push(`${label}: ${name}`);
        };
        const onHeaders = (h: http2.IncomingHttpHeaders) => {
          if (h['grpc-status'] !== undefined)
            seen(status[Number(h['grpc-status'])] ?? String(h['grpc-status']));
          else if (h[':status'] !== undefined && Number(h[':status']) !== 200) seen(`HTTP ${h[':status']}`);
        };
        req.on('response', onHeaders);
        req.on('trailers', onHeaders);
        req.on('data', () => {});
        if (rst) {
          req.close(http2.constants.NGHTTP2_CANCEL);
        } else {
          req.end(body);
          await Promise.race([once(req, 'close'), sleep(3_000)]);
        }
      } finally {
        session.destroy();
      }
    };
    const frame = (flag: number, length: number, payload: Buffer) => {
      const head = Buffer.alloc(5);
      head.writeUInt8(flag);
      head.writeUInt32BE(length, 1);
      return Buffer.concat([head, payload]);
    };
    const empty = frame(0, 0, Buffer.alloc(0));
    await h2('4 GiB length prefix', {}, frame(0, 0xffff_ffff, randomBytes(64)));
    await h2('truncated message', {}, frame(0, 10, randomBytes(3)));
    await h2('compressed flag, no grpc-encoding', {}, frame(1, 32, randomBytes(32)));
    await h2('gzip flag, not gzip', { 'grpc-encoding': 'gzip' }, frame(1, 32, randomBytes(32)));
    await h2(
      'unknown grpc-encoding',
      { 'grpc-encoding': 'zstd-from-the-future' },
      frame(1, 8, randomBytes(8)),
    );
    await h2('grpc-timeout "banana"', { 'grpc-timeout': 'banana' }, empty);
    await h2('grpc-timeout overflow', { 'grpc-timeout': '99999999999999999999H' }, empty);
    await h2('content-type text/plain', { 'content-type': 'text/plain' }, Buffer.from('hello'));
    await h2('unknown path', { ':path': '/no.such.Service/Nope' }, empty);
    await h2('8 KB path', { ':path': `/${'x'.repeat(8_000)}` }, empty);
    await h2(
      '15 KB headers',
      { 'x-junk': 'y'.repeat(15_000), authorization: `Bearer ${'z'.repeat(4_000)}` },
      empty,
    );
    await h2(
      'junk after the message',
      { 'grpc-accept-encoding': '\u00ff\u00fe' },
      Buffer.concat([empty, randomBytes(7)]),
    );
    // rapid reset (CVE-2023-44487 shape): many streams opened and cancelled at once on one session
    {
      const session = http2.connect(`http://127.0.0.1:${proc.grpcPort}`);
      session.on('error', () => {});
      sessions++;
      for (let i = 0; i < 500; i++) {
        const req = session.request({
          ':method': 'POST',
          ':path': path,
          'content-type': 'application/grpc',
          te: 'trailers',
        });
        req.on('error', () => {});
        req.close(http2.constants.NGHTTP2_CANCEL);
      }
      await sleep(300);
      session.destroy();
    }
    await sleep(500);
    const alive = proc.alive();
    const liveness = alive
      ? await waitHealth(proc, '', ServingStatus.SERVING, 10_000).then(
          () => true,
          () => false,
        )
      : false;
    const rssAfter = alive ? rssKiB(proc.child.pid) : Number.NaN;
    const pass = record({
      scenario: `${service}: garbage at the HTTP/2 and TCP level`,
      headline: `${service}: ${sessions} garbage HTTP/2 and TCP connections, ${alive && liveness ? 'still serving' : 'DOWN'}`,
      injected: `${sessions} connections: 60 of random bytes (with and without the HTTP/2 preface), oversized and malformed frames, gRPC length prefixes of 4 GiB and truncated, bogus compression flags and encodings, unparsable grpc-timeout, wrong content-type, unknown and 8 KB paths, 15 KB headers, 500-stream rapid reset`,
      measured: {
        'process alive, liveness SERVING after': alive && liveness,
        'gRPC statuses seen': [...grpcStatuses].map(([k, v]) => `${k} ${v}`).join(', ') || 'none',
        'status per HTTP/2 case': perCase.join('; '),
        'RSS before / after (MiB)': `${Math.round(rssBefore / 1024)} / ${Math.round(rssAfter / 1024)}`,
      },
      pass: alive && liveness,
    });
    expect(alive && liveness).toBe(true);
    expect(pass).toBe(true);
  }, 120_000);
});
