import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { probeService } from './health.js';

// `ballast status` tells a busy service from a down one (issue 16: a service frozen by a long
// commit was reported down). A real TCP listener that takes connections and never answers
// stands for the busy service; a port with nothing listening is the down one.
describe('probeService', () => {
  let silent: Server;
  let silentPort = 0;
  let closedPort = 0;
  const sockets: Socket[] = [];

  beforeAll(async () => {
    silent = createServer((socket) => sockets.push(socket)).listen(0, '127.0.0.1');
    await once(silent, 'listening');
    silentPort = (silent.address() as { port: number }).port;
    // A port that was free a moment ago and is closed now: connections to it are refused.
    const probe = createServer().listen(0, '127.0.0.1');
    await once(probe, 'listening');
    closedPort = (probe.address() as { port: number }).port;
    await new Promise((resolve) => probe.close(resolve));
  });

  afterAll(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => silent.close(resolve));
  });

  const at = (port: number) => ({ grpc: `127.0.0.1:${port}`, http: `http://127.0.0.1:${port}` });

  it('reports a gRPC service that takes the connection but does not answer as busy', async () => {
    expect(await probeService('ingest', at(silentPort), 500)).toEqual({
      readiness: 'busy',
      detail: 'not answering within 0.5s (busy?)',
    });
  });

  it('reports a refused gRPC connection as down', async () => {
    expect(await probeService('ingest', at(closedPort), 5_000)).toEqual({
      readiness: 'down',
      detail: 'connection refused (down)',
    });
  });

  it('tells the same two apart for the trainer, probed over HTTP', async () => {
    expect(
      await probeService('trainer', { grpc: undefined, http: `http://127.0.0.1:${silentPort}` }, 500),
    ).toEqual({
      readiness: 'busy',
      detail: 'not answering within 0.5s (busy?)',
    });
    expect(
      await probeService('trainer', { grpc: undefined, http: `http://127.0.0.1:${closedPort}` }, 5_000),
    ).toEqual({
      readiness: 'down',
      detail: 'connection refused (down)',
    });
  });
});
