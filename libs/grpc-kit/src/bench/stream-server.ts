import { serve, startGrpcServer } from '../server.js';
import { EchoService, echoService } from '../testing/echo.js';

/**
 * The stalled-readers bench's server, as its own process so that its RSS is its own: the
 * echo service, except that EchoServerStream sends `BENCH_MESSAGE_BYTES` messages of one
 * string built at start, whatever the request carries, as DownloadArtifact sends chunks of a
 * blob for a request of a few bytes. (Echoing the request instead makes each stalled call
 * also hold the request's copy of the message for its whole life.)
 */
const MESSAGE_BYTES = Number(process.env.BENCH_MESSAGE_BYTES ?? 256 * 1024);
const ECHO_REQUEST = process.env.BENCH_ECHO_REQUEST === '1';
const chunk = 'x'.repeat(MESSAGE_BYTES - 16);
const quiet = { info() {}, warn() {}, error() {} };

const server = await startGrpcServer({
  services: [
    serve(EchoService, {
      ...echoService,
      async *echoServerStream(request) {
        for (let index = 0; index < request.repeat; index++)
          yield { message: ECHO_REQUEST ? request.message : chunk, index };
      },
    }),
  ],
  host: '127.0.0.1',
  port: 0,
  log: quiet,
});
server.setReady(true);
console.log(JSON.stringify({ listening: server.port }));
