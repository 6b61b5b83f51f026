import { exitOnSignals } from '../lifecycle.js';
import { serve, startGrpcServer } from '../server.js';
import { EchoService, echoService } from './echo.js';

// A standalone echo server for process-level tests (signals, draining). It prints one
// JSON line with its port once it listens.
const log = {
  info: (obj: object, msg?: string) => console.error(JSON.stringify({ level: 'info', msg, ...obj })),
  warn: (obj: object, msg?: string) => console.error(JSON.stringify({ level: 'warn', msg, ...obj })),
  error: (obj: object, msg?: string) => console.error(JSON.stringify({ level: 'error', msg, ...obj })),
};

const server = await startGrpcServer({
  services: [serve(EchoService, echoService)],
  host: '127.0.0.1',
  port: Number(process.env.ECHO_PORT ?? 0),
  log,
  shutdownGraceMs: Number(process.env.ECHO_GRACE_MS ?? 5000),
});
server.setReady(true);
server.onShutdown(() => log.info({}, 'shutdown hooks ran'));
exitOnSignals(() => server.shutdown(), log);
console.log(JSON.stringify({ listening: server.port }));
