// The transport limits (issue 17, items 4-6) against real registry processes rather than the
// kit's echo server: readers that stop reading a 32 MiB download, a unary message that never
// completes, a client stream that never sends, connections past their age, the watcher cap,
// /metrics behind the token, and the warning of a service open to its network.
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type { ClientHttp2Session } from 'node:http2';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  DownloadArtifactRequestSchema,
  RegistryService,
} from '@ballast/contracts/ballast/registry/v1/registry_pb.js';
import { Health } from '@ballast/contracts/grpc/health/v1/health_pb.js';
import { type CallOptions, createClient, RpcError, type ServiceClient } from '@ballast/grpc-kit';
import { grpcFrame as frame, grpcHeaders, grpcStatus, rawSession } from '@ballast/grpc-kit/testing';
import { create, toBinary } from '@bufbuild/protobuf';
import { Metadata, status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { saveLog, suiteRecorder } from './report.js';
import {
  artifactUploadParts,
  createTestDatabase,
  percentile,
  round,
  rssKiB,
  type ServiceProcess,
  startService,
  tempDir,
  waitHealth,
} from './support.js';

const record = suiteRecorder(
  'transport',
  'Transport limits on a real registry: stalled readers, half messages, idle streams, watchers, exposure',
);

const REGISTRY = 'ballast.registry.v1.RegistryService';
const OWNER_TOKEN = `own-${randomBytes(12).toString('hex')}`;
const MiB = 1024 * 1024;
const ARTIFACT_BYTES = 32 * MiB;
const STALLED = 60;

type Registry = ServiceClient<typeof RegistryService>;

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let artifactDir: string;
let digest = '';
const procs: ServiceProcess[] = [];
const sessions: ClientHttp2Session[] = [];

function registryEnv(extra: Record<string, string> = {}): Record<string, string> {
  return {
    ...db.env,
    BALLAST_REGISTRY_ARTIFACT_DIR: artifactDir,
    BALLAST_REGISTRY_TEAM_TOKENS: `forecasting=${OWNER_TOKEN}`,
    ...extra,
  };
}

async function startRegistry(extra: Record<string, string> = {}, ready = true): Promise<ServiceProcess> {
  const proc = await startService('registry', registryEnv(extra));
  procs.push(proc);
  if (ready) await waitHealth(proc, REGISTRY);
  return proc;
}

async function stop(proc: ServiceProcess, label: string) {
  await proc.kill('SIGKILL');
  saveLog(`transport-${label}`, proc.output());
}

function owner(): CallOptions {
  const metadata = new Metadata();
  metadata.set('x-ballast-actor', 'ana');
  metadata.set('x-ballast-team-token', OWNER_TOKEN);
  return { metadata };
}

/** A 32 MiB artifact: a model.json naming one weight file, and that file. */
async function uploadLargeArtifact(client: Registry): Promise<string> {
  const weights = randomBytes(ARTIFACT_BYTES);
  const modelJson = Buffer.from(
    JSON.stringify({
      format: 'layers-model',
      modelTopology: { class_name: 'Sequential', config: { layers: [] } },
      weightsManifest: [{ paths: ['weights.bin'], weights: [] }],
    }),
  );
  const files = [
    { path: 'model.json', data: modelJson },
    { path: 'weights.bin', data: weights },
  ];
  const uploaded = await client.uploadArtifact(artifactUploadParts(files), owner());
  return uploaded.manifest?.digest ?? '';
}

/** Downloads the artifact and checks its bytes; the bytes received. */
async function downloadVerified(client: Registry): Promise<number> {
  let bytes = 0;
  const hashes = new Map<string, ReturnType<typeof createHash>>();
  let manifest: { path: string; sha256: string }[] = [];
  for await (const message of client.downloadArtifact({ digest })) {
    if (message.part.case === 'manifest') manifest = message.part.value.files;
    else if (message.part.case === 'chunk') {
      const { path, data } = message.part.value;
      if (!hashes.has(path)) hashes.set(path, createHash('sha256'));
      hashes.get(path)?.update(data);
      bytes += data.byteLength;
    }
  }
  for (const file of manifest)
    if (hashes.get(file.path)?.digest('hex') !== file.sha256) throw new Error(`${file.path} is corrupt`);
  return bytes;
}

function h2(address: string): ClientHttp2Session {
  const session = rawSession(address);
  sessions.push(session);
  return session;
}

/** RSS once it moves less than 1 MiB in a second: the stalled streams have filled what they will. */
async function settledRssMiB(pid: number | undefined): Promise<number> {
  let last = rssKiB(pid) / 1024;
  for (let i = 0; i < 60; i++) {
    await sleep(1000);
    const now = rssKiB(pid) / 1024;
    if (Math.abs(now - last) < 1) return now;
    last = now;
  }
  return last;
}

async function healthLatencies(address: string, calls: number): Promise<number[]> {
  const health = createClient(Health, { address });
  const times: number[] = [];
  try {
    for (let i = 0; i < calls; i++) {
      const started = performance.now();
      await health.check({ service: REGISTRY });
      times.push(performance.now() - started);
    }
  } finally {
    health.close();
  }
  return times;
}

beforeAll(async () => {
  db = await createTestDatabase('transport');
  artifactDir = tempDir('transport-artifacts');
  const proc = await startRegistry();
  const client = createClient(RegistryService, { address: proc.address, deadlineMs: 120_000 });
  try {
    digest = await uploadLargeArtifact(client);
  } finally {
    client.close();
    await stop(proc, 'upload');
  }
}, 240_000);

afterAll(async () => {
  for (const session of sessions.splice(0)) session.destroy();
  for (const proc of procs) if (proc.alive()) await proc.kill('SIGKILL');
  await db?.close();
});

interface StalledRound {
  chunkBytes: number;
  baseMiB: number;
  stalledMiB: number;
  perReaderMiB: number;
  healthBefore: number[];
  healthDuring: number[];
  downloadedBytes: number;
  downloadMs: number;
}

/**
 * A fresh registry (so memory freed by an earlier round does not hide this one's), warmed by
 * one full download; then STALLED readers, one connection each, that read nothing after
 * asking for the artifact in `chunkBytes` chunks (0: the server's default).
 */
async function stalledRound(chunkBytes: number): Promise<StalledRound> {
  const proc = await startRegistry();
  const client = createClient(RegistryService, { address: proc.address, deadlineMs: 120_000 });
  try {
    await downloadVerified(client);
    const healthBefore = await healthLatencies(proc.address, 200);
    const baseMiB = await settledRssMiB(proc.child.pid);
    const body = frame(
      toBinary(DownloadArtifactRequestSchema, create(DownloadArtifactRequestSchema, { digest, chunkBytes })),
    );
    const round: ClientHttp2Session[] = [];
    for (let i = 0; i < STALLED; i++) {
      const session = h2(proc.address);
      round.push(session);
      const stream = session.request(grpcHeaders('/ballast.registry.v1.RegistryService/DownloadArtifact'));
      stream.on('error', () => {});
      stream.end(body);
      stream.pause();
    }
    const stalledMiB = await settledRssMiB(proc.child.pid);
    const healthDuring = await healthLatencies(proc.address, 200);
    const started = performance.now();
    const downloadedBytes = await downloadVerified(client);
    const downloadMs = performance.now() - started;
    for (const session of round) session.destroy();
    return {
      chunkBytes,
      baseMiB,
      stalledMiB,
      perReaderMiB: (stalledMiB - baseMiB) / STALLED,
      healthBefore,
      healthDuring,
      downloadedBytes,
      downloadMs,
    };
  } finally {
    client.close();
    await stop(proc, `stalled-${chunkBytes}`);
  }
}

describe('readers that stop reading a 32 MiB download', () => {
  it(`holds the registry's memory per stalled reader to about one chunk, and health answers`, async () => {
    const rounds = [await stalledRound(0), await stalledRound(MiB)];
    const [byDefault, largest] = rounds as [StalledRound, StalledRound];
    const p99 = (r: StalledRound) => round(percentile(r.healthDuring, 99));
    // The 1,104 MiB of the issue was 10 MiB per reader; the bound is what a reader may pin.
    // Issue 17's target is 1 MiB per stalled reader with the server's default chunks; the
    // largest chunks a client may ask for are bounded too (the 1,104 MiB of the issue was 10 MiB).
    const pass =
      rounds.every((r) => r.downloadedBytes >= ARTIFACT_BYTES) &&
      byDefault.perReaderMiB < 1 &&
      largest.perReaderMiB < 6 &&
      byDefault.healthDuring.length === 200;
    record({
      scenario: `registry: ${STALLED} stalled DownloadArtifact readers of a 32 MiB artifact`,
      headline: `registry stalled readers: ${STALLED} readers of a 32 MiB artifact that never read hold ${round(byDefault.perReaderMiB, 2)} MiB each with the default 256 KiB chunks (${round(largest.perReaderMiB, 2)} MiB asking for 1 MiB chunks); health p99 ${p99(byDefault)} ms while they stall, and a full download still verifies`,
      injected: `${STALLED} raw HTTP/2 clients, one connection each, ask the registry process (Postgres) for a 32 MiB artifact and never read; once with the server's default chunks (256 KiB), once asking for the largest allowed (1 MiB) (a fresh process each round, warmed by one download)`,
      measured: Object.fromEntries(
        rounds.flatMap((r) => {
          const label = r.chunkBytes === 0 ? 'default (256 KiB) chunks' : `${r.chunkBytes / 1024} KiB chunks`;
          return [
            [
              `${label}: RSS before / with ${STALLED} stalled (MiB)`,
              `${Math.round(r.baseMiB)} / ${Math.round(r.stalledMiB)}`,
            ],
            [`${label}: RSS growth per stalled reader (MiB)`, round(r.perReaderMiB, 2)],
            [
              `${label}: health p50 / p99 before (ms)`,
              `${round(percentile(r.healthBefore, 50), 2)} / ${round(percentile(r.healthBefore, 99), 2)}`,
            ],
            [
              `${label}: health p50 / p99 while stalled (ms)`,
              `${round(percentile(r.healthDuring, 50), 2)} / ${round(percentile(r.healthDuring, 99), 2)}`,
            ],
            [
              `${label}: a full download while stalled (MiB, ms, verified)`,
              `${round(r.downloadedBytes / MiB)}, ${Math.round(r.downloadMs)}, yes`,
            ],
          ];
        }),
      ),
      pass,
    });
    expect(pass).toBe(true);
  }, 300_000);
});

describe('calls and connections that never finish', () => {
  let proc: ServiceProcess;
  beforeAll(async () => {
    proc = await startRegistry({
      BALLAST_GRPC_DEFAULT_DEADLINE_MS: '2000',
      BALLAST_GRPC_MAX_WATCHERS: '3',
      BALLAST_GRPC_MAX_CONNECTION_AGE_MS: '3000',
      BALLAST_GRPC_MAX_CONNECTION_AGE_GRACE_MS: '1000',
    });
  }, 120_000);
  afterAll(async () => {
    if (proc) await stop(proc, 'limits');
  });

  it('answers a half-sent unary message and a silent upload with DEADLINE_EXCEEDED, and ends a stream past connection age', async () => {
    const half = h2(proc.address).request(grpcHeaders('/ballast.registry.v1.RegistryService/GetModel'));
    half.on('error', () => {});
    const halfStarted = performance.now();
    // A frame header announcing 100 bytes, then 3 of them, and nothing more.
    half.write(Buffer.from([0, 0, 0, 0, 100, 10, 1, 120]));
    const halfAnswer = await grpcStatus(half);
    const halfMs = performance.now() - halfStarted;

    const client = createClient(RegistryService, {
      address: proc.address,
      deadlineMs: Number.POSITIVE_INFINITY,
    });
    const uploadStarted = performance.now();
    const silent = (async function* () {
      await sleep(60_000);
      yield { part: { case: 'manifest' as const, value: { files: [] } } };
    })();
    const upload = (await client.uploadArtifact(silent, owner()).catch((e: unknown) => e)) as RpcError;
    const uploadMs = performance.now() - uploadStarted;

    // A watch with nothing to say on a connection that reaches its age: GOAWAY, then cancelled after the grace.
    const watcher = h2(proc.address);
    const watchStarted = performance.now();
    const goaway = once(watcher, 'goaway').then(() => performance.now() - watchStarted);
    const watch = watcher.request(grpcHeaders('/ballast.registry.v1.RegistryService/WatchDeployments'));
    watch.on('error', () => {});
    watch.end(frame(new Uint8Array()));
    watch.resume();
    await once(watch, 'close');
    const watchMs = performance.now() - watchStarted;
    const goawayMs = await goaway;
    client.close();

    // Times are recorded, not asserted: the messages name the default the server applied.
    const pass =
      halfAnswer.code === status.DEADLINE_EXCEEDED &&
      halfAnswer.message.includes('default of 2000 ms') &&
      upload instanceof RpcError &&
      upload.code === status.DEADLINE_EXCEEDED &&
      upload.message.includes('default of 2000 ms') &&
      (watch.rstCode ?? 0) !== 0;
    record({
      scenario:
        'registry: a unary message that never completes, a silent upload, a stream past connection age',
      headline: `registry unfinished calls: a half-sent GetModel answered ${status[halfAnswer.code]} after ${Math.round(halfMs)} ms and a silent UploadArtifact ${upload instanceof RpcError ? status[upload.code] : 'OK'} after ${Math.round(uploadMs)} ms (default deadline 2000 ms); an idle WatchDeployments ended ${Math.round(watchMs)} ms after it opened (age 3000 ms + grace 1000 ms)`,
      injected:
        'a registry with BALLAST_GRPC_DEFAULT_DEADLINE_MS=2000, BALLAST_GRPC_MAX_CONNECTION_AGE_MS=3000 and _GRACE_MS=1000; raw HTTP/2: a GetModel frame header announcing 100 bytes followed by 3; a grpc-js UploadArtifact whose client sets no deadline (Infinity) and never sends; a WatchDeployments stream with no alias changes',
      measured: {
        'half-sent unary: status': status[halfAnswer.code] ?? halfAnswer.code,
        'half-sent unary: message': halfAnswer.message,
        'half-sent unary: answered after (ms)': Math.round(halfMs),
        'silent client stream: status':
          upload instanceof RpcError ? (status[upload.code] ?? upload.code) : 'OK',
        'silent client stream: message': upload instanceof RpcError ? upload.message : '',
        'silent client stream: answered after (ms)': Math.round(uploadMs),
        'idle watch: GOAWAY after (ms)': Math.round(goawayMs),
        'idle watch: stream closed after (ms)': Math.round(watchMs),
        'idle watch: RST code': watch.rstCode ?? 0,
      },
      pass,
    });
    expect(pass).toBe(true);
  }, 60_000);

  it('refuses a watch past max_watchers with RESOURCE_EXHAUSTED naming the cap', async () => {
    const client = createClient(RegistryService, {
      address: proc.address,
      deadlineMs: Number.POSITIVE_INFINITY,
    });
    const controllers = [0, 1, 2].map(() => new AbortController());
    try {
      for (const controller of controllers) {
        const first = await client
          .watchDeployments({}, { signal: controller.signal })
          [Symbol.asyncIterator]()
          .next();
        expect(first.done).toBe(false);
      }
      const fourth = (await client
        .watchDeployments({})
        [Symbol.asyncIterator]()
        .next()
        .catch((e: unknown) => e)) as RpcError;
      const ping = await client.listModels({}).then(
        () => 'OK',
        (e: RpcError) => status[e.code],
      );
      const pass =
        fourth instanceof RpcError &&
        fourth.code === status.RESOURCE_EXHAUSTED &&
        fourth.message.includes('max_watchers = 3') &&
        ping === 'OK';
      record({
        scenario: 'registry: WatchDeployments past max_watchers',
        headline: `registry watcher cap: the 4th WatchDeployments with 3 open answered ${fourth instanceof RpcError ? status[fourth.code] : 'OK'} naming max_watchers; unary calls still ${ping}`,
        injected:
          'a registry with BALLAST_GRPC_MAX_WATCHERS=3; 3 WatchDeployments held open (each got its snapshot), then a 4th',
        measured: {
          'open watches before the 4th': 3,
          '4th watch: status': fourth instanceof RpcError ? (status[fourth.code] ?? fourth.code) : 'OK',
          '4th watch: message': fourth instanceof RpcError ? fourth.message : '',
          'ListModels meanwhile': ping,
        },
        pass,
      });
      expect(pass).toBe(true);
    } finally {
      for (const controller of controllers) controller.abort();
      client.close();
    }
  }, 60_000);
});

describe('who may read /metrics, and a service open to its network', () => {
  it('needs the token for /metrics with BALLAST_METRICS_AUTH=true, keeps /healthz open, and warns when bound beyond loopback without a token', async () => {
    const token = randomBytes(16).toString('hex');
    const guarded = await startRegistry({ BALLAST_AUTH_TOKEN: token, BALLAST_METRICS_AUTH: 'true' }, false);
    await waitHealth(guarded, REGISTRY);
    const url = (path: string) => `${guarded.httpUrl}${path}`;
    const codes = {
      none: (await fetch(url('/metrics'))).status,
      wrong: (await fetch(url('/metrics'), { headers: { authorization: 'Bearer wrong' } })).status,
      right: (await fetch(url('/metrics'), { headers: { authorization: `Bearer ${token}` } })).status,
      healthz: (await fetch(url('/healthz'))).status,
    };
    await stop(guarded, 'metrics-auth');

    const open = await startRegistry({ BALLAST_GRPC_HOST: '0.0.0.0' }, false);
    await waitHealth(open, REGISTRY);
    const warnedOpen = open.output().includes('0.0.0.0 without BALLAST_AUTH_TOKEN');
    await stop(open, 'exposed');
    const loopback = await startRegistry({}, false);
    await waitHealth(loopback, REGISTRY);
    const warnedLoopback = loopback.output().includes('without BALLAST_AUTH_TOKEN');
    await stop(loopback, 'loopback');

    const pass =
      codes.none === 401 &&
      codes.wrong === 401 &&
      codes.right === 200 &&
      codes.healthz === 200 &&
      warnedOpen &&
      !warnedLoopback;
    record({
      scenario: 'registry: /metrics behind the token, and the warning of a service open to its network',
      headline: `registry exposure: /metrics answered ${codes.none} without the token, ${codes.wrong} with a wrong one, ${codes.right} with it, /healthz ${codes.healthz}; bound to 0.0.0.0 without a token it ${warnedOpen ? 'logged' : 'did not log'} the warning, on 127.0.0.1 it ${warnedLoopback ? 'logged it too' : 'did not'}`,
      injected:
        'a registry with BALLAST_AUTH_TOKEN and BALLAST_METRICS_AUTH=true read over HTTP; then one with BALLAST_GRPC_HOST=0.0.0.0 and no token, and one on 127.0.0.1 with no token, their start-up logs read',
      measured: {
        '/metrics without a token': codes.none,
        '/metrics with a wrong token': codes.wrong,
        '/metrics with the token': codes.right,
        '/healthz without a token': codes.healthz,
        'warning logged on 0.0.0.0 without a token': warnedOpen,
        'warning logged on 127.0.0.1 without a token': warnedLoopback,
      },
      pass,
    });
    expect(pass).toBe(true);
  }, 120_000);
});
