import { fork } from 'node:child_process';
import { once } from 'node:events';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { InferenceService } from '@ballast/contracts/ballast/inference/v1/inference_pb.js';
import { createClient } from '@ballast/grpc-kit';
import { measureLoad } from '@ballast/grpc-kit/testing';
import { ROW } from './model.js';
import { otlpSink, tracingEnv } from './otlp-sink.js';

/**
 * Profiles the inference server under load: `node dist/bench/profile.js <model> <c,c,...> <dir>
 * [ballast|bare]` starts the bench server with --cpu-prof (a profile per thread, main and
 * model worker, written to <dir> when it exits cleanly) and drives Predict at each
 * concurrency for 3 s (BENCH_PROFILE_MS). BENCH_HIDDEN picks the model's size (64: the small
 * model). BENCH_TRACED=1 profiles the server as the bench's traced row runs it: the telemetry
 * preload, 100% sampling, the batch span processor exporting to a local OTLP sink.
 */
const here = dirname(fileURLToPath(import.meta.url));
const [model = 'bench', concurrency = '1', dir = 'profiles', mode = 'ballast'] = process.argv.slice(2);
const profileMs = Number(process.env.BENCH_PROFILE_MS ?? 3_000);
const sink = process.env.BENCH_TRACED === '1' ? await otlpSink() : undefined;
const execArgv = ['--cpu-prof', '--cpu-prof-dir', dir];
if (sink) execArgv.push('--import', fileURLToPath(import.meta.resolve('@ballast/telemetry/register')));
const child = fork(join(here, 'server-process.js'), [mode], {
  stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
  execArgv,
  env: {
    ...process.env,
    BALLAST_TF_BACKEND: process.env.BALLAST_TF_BACKEND ?? 'wasm',
    ...(sink ? tracingEnv(sink.port) : {}),
  },
});
let port = 0;
for await (const line of createInterface({ input: child.stdout as NodeJS.ReadableStream })) {
  if (line.startsWith('{"port"')) {
    port = (JSON.parse(line) as { port: number }).port;
    break;
  }
}
const client = createClient(InferenceService, {
  address: `127.0.0.1:${port}`,
  deadlineMs: 30_000,
  retry: false,
});
for (const c of concurrency.split(',').map(Number)) {
  const point = await measureLoad(
    () => client.predict({ model, rows: [{ inputs: { features: { values: ROW } } }] }),
    c,
    profileMs,
  );
  console.log(`${model} c=${c}: ${point.throughput_per_s}/s p99 ${point.p99_us} us`);
}
client.close();
// A clean exit, so that --cpu-prof writes the profiles.
child.send('exit');
await once(child, 'exit');
if (sink) console.log(`${sink.exports()} OTLP exports`);
sink?.close();
console.log(`profiles in ${dir}`);
