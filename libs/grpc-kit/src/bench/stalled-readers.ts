import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { type ClientHttp2Session, connect } from 'node:http2';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { EchoServerStreamRequestSchema } from '@ballast/contracts/ballast/testing/v1/echo_pb.js';
import { Health } from '@ballast/contracts/grpc/health/v1/health_pb.js';
import { create, toBinary } from '@bufbuild/protobuf';
import { createClient } from '../client.js';
import { quantile, writeBenchResult } from '../testing/bench.js';

/**
 * Clients that open a 32 MiB server stream and never read it (issue 17: 60 of them took the
 * registry from 484 to 1,104 MiB and a health check to 3 s). The server (stream-server.ts)
 * runs as its own process so its RSS is its own, and answers a request of a few bytes with
 * 256 KiB messages, as DownloadArtifact does (BENCH_ECHO_REQUEST=1: the request carries the
 * message it echoes, as the first version of this bench did); bounded: at most 500 readers,
 * 200 health checks per step.
 */
const STEPS = (process.env.BENCH_STALLED ?? '60,500').split(',').map(Number);
const MESSAGE_BYTES = Number(process.env.BENCH_MESSAGE_BYTES ?? 256 * 1024);
const ECHO_REQUEST = process.env.BENCH_ECHO_REQUEST === '1';
const STREAM_BYTES = 32 * 1024 * 1024;
const STREAMS_PER_CONNECTION = 100;
const here = dirname(fileURLToPath(import.meta.url));

const child = spawn(process.execPath, [join(here, 'stream-server.js')], {
  stdio: ['ignore', 'pipe', 'ignore'],
  env: { ...process.env, BENCH_MESSAGE_BYTES: String(MESSAGE_BYTES) },
});
const [line] = (await once(child.stdout, 'data')) as [Buffer];
const port = (JSON.parse(line.toString().split('\n')[0] ?? '{}') as { listening: number }).listening;
const address = `127.0.0.1:${port}`;

const rssMiB = () =>
  Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1]) / 1024;

async function settledRss(): Promise<number> {
  let last = rssMiB();
  for (;;) {
    await sleep(1000);
    const now = rssMiB();
    if (Math.abs(now - last) < 1) return now;
    last = now;
  }
}

const health = createClient(Health, { address });
async function healthP99(): Promise<{ p50: number; p99: number }> {
  const times: number[] = [];
  for (let i = 0; i < 200; i++) {
    const started = performance.now();
    await health.check({ service: '' });
    times.push(performance.now() - started);
  }
  times.sort((a, b) => a - b);
  return { p50: quantile(times, 0.5), p99: quantile(times, 0.99) };
}

const body = (() => {
  const bytes = toBinary(
    EchoServerStreamRequestSchema,
    create(EchoServerStreamRequestSchema, {
      message: ECHO_REQUEST ? 'x'.repeat(MESSAGE_BYTES - 16) : '',
      repeat: STREAM_BYTES / MESSAGE_BYTES,
    }),
  );
  const header = Buffer.alloc(5);
  header.writeUInt32BE(bytes.byteLength, 1);
  return Buffer.concat([header, bytes]);
})();

const sessions: ClientHttp2Session[] = [];
let open = 0;
function stallOne() {
  if (open % STREAMS_PER_CONNECTION === 0) {
    const session = connect(`http://${address}`);
    session.on('error', () => {});
    sessions.push(session);
  }
  const session = sessions[sessions.length - 1] as ClientHttp2Session;
  const stream = session.request({
    ':method': 'POST',
    ':path': '/ballast.testing.v1.EchoService/EchoServerStream',
    'content-type': 'application/grpc',
    te: 'trailers',
  });
  stream.on('error', () => {});
  stream.end(body);
  stream.pause();
  open++;
}

await healthP99();
const baseRss = await settledRss();
const rows = [{ stalled: 0, rssMiB: Math.round(baseRss), perReaderMiB: 0, ...(await healthP99()) }];
for (const target of STEPS) {
  while (open < target) stallOne();
  const rss = await settledRss();
  rows.push({
    stalled: open,
    rssMiB: Math.round(rss),
    perReaderMiB: Number(((rss - baseRss) / open).toFixed(3)),
    ...(await healthP99()),
  });
}
const load = loadavg();
for (const session of sessions) session.destroy();
health.close();
child.kill('SIGTERM');

console.log(
  `stalled readers of a ${STREAM_BYTES / 1024 / 1024} MiB server stream in ${MESSAGE_BYTES / 1024} KiB messages (server process; request ${ECHO_REQUEST ? 'carrying the message it echoes' : 'of a few bytes'}); health latency in ms; load average ${load.map((l) => l.toFixed(2)).join(' ')}`,
);
console.table(rows.map((r) => ({ ...r, p50: r.p50.toFixed(2), p99: r.p99.toFixed(2) })));
const out = writeBenchResult(here, 'grpc-kit-stalled-readers', {
  messageBytes: MESSAGE_BYTES,
  streamBytes: STREAM_BYTES,
  request: ECHO_REQUEST ? 'carries the echoed message' : 'a few bytes',
  loadavg: load,
  rows,
});
console.log(`wrote ${out}`);
