import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createClient } from '../client.js';
import { serve, startGrpcServer } from '../server.js';
import { BENCH_WINDOW_MS, measureLoad, writeBenchResult } from '../testing/bench.js';
import { EchoService, echoService } from '../testing/echo.js';

/**
 * What the kit costs per call: unary Echo round trips over loopback, client and server in
 * this one process, measured like perf_analyzer (see testing/bench.ts).
 */
const CONCURRENCY = (process.env.BENCH_CONCURRENCY ?? '1,8,32').split(',').map(Number);

const log = { info: () => {}, warn: () => {}, error: () => {} };
const server = await startGrpcServer({
  services: [serve(EchoService, echoService)],
  host: '127.0.0.1',
  port: 0,
  log,
});
server.setReady(true);
const client = createClient(EchoService, { address: `127.0.0.1:${server.port}` });
const request = { message: 'x'.repeat(64) };
const call = () => client.echo(request);

const cpuStart = process.cpuUsage();
const rows = [];
for (const concurrency of CONCURRENCY) rows.push(await measureLoad(call, concurrency));
const cpu = process.cpuUsage(cpuStart);
client.close();
await server.shutdown();

console.log('grpc-kit unary Echo over loopback (client and server in one process)');
console.table(rows);
console.log(
  `process CPU (client + server): user ${(cpu.user / 1e6).toFixed(1)}s, system ${(cpu.system / 1e6).toFixed(1)}s`,
);
const out = writeBenchResult(dirname(fileURLToPath(import.meta.url)), 'grpc-kit-unary', {
  windowMs: BENCH_WINDOW_MS,
  cpu,
  rows,
});
console.log(`wrote ${out}`);
