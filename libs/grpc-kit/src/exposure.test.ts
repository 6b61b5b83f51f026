// runService as a service runs it, over real loopback ports: who may read /metrics and the
// pages, and the warning a service open to its network logs at start.
import { afterEach, describe, expect, it } from 'vitest';
import { type RunningService, runService } from './runtime.js';
import { serve } from './server.js';
import { EchoService, echoService } from './testing/echo.js';

const running: RunningService[] = [];
const savedEnv = { ...process.env };

afterEach(async () => {
  for (const service of running.splice(0)) await service.shutdown();
  process.env = { ...savedEnv };
});

function recorder() {
  const warnings: string[] = [];
  return {
    warnings,
    log: { info: () => {}, error: () => {}, warn: (_obj: object, msg?: string) => warnings.push(msg ?? '') },
  };
}

async function start(host: string, authToken: string | undefined, log = recorder().log) {
  const service = await runService({
    name: 'echo',
    log,
    grpc: { host, port: 0, services: [serve(EchoService, echoService)], authToken },
    http: {
      host,
      port: 0,
      routes: { '/dashboard': (_req, res) => void res.end('dashboard') },
    },
    dependencies: [],
    close: [],
    shutdownGraceMs: 100,
    handleSignals: false,
  });
  running.push(service);
  return service;
}

describe('metrics and pages behind the token (BALLAST_METRICS_AUTH=true)', () => {
  it('answers /metrics and the dashboard only with the bearer token; health stays open', async () => {
    process.env.BALLAST_METRICS_AUTH = 'true';
    const service = await start('127.0.0.1', 's3cret');
    const url = (path: string) => `http://127.0.0.1:${service.httpPort}${path}`;
    const bearer = { authorization: 'Bearer s3cret' };
    expect((await fetch(url('/metrics'))).status).toBe(401);
    expect((await fetch(url('/metrics'), { headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
    expect((await fetch(url('/dashboard'))).status).toBe(401);
    expect((await fetch(url('/metrics'), { headers: bearer })).status).toBe(200);
    expect(await (await fetch(url('/dashboard'), { headers: bearer })).text()).toBe('dashboard');
    expect((await fetch(url('/healthz'))).status).toBe(200);
    expect([200, 503]).toContain((await fetch(url('/readyz'))).status);
  });

  it('leaves /metrics open without BALLAST_METRICS_AUTH, and refuses to start with it but no token', async () => {
    delete process.env.BALLAST_METRICS_AUTH;
    const service = await start('127.0.0.1', 's3cret');
    expect((await fetch(`http://127.0.0.1:${service.httpPort}/metrics`)).status).toBe(200);
    process.env.BALLAST_METRICS_AUTH = 'true';
    await expect(start('127.0.0.1', undefined)).rejects.toThrow(
      /BALLAST_METRICS_AUTH=true needs BALLAST_AUTH_TOKEN/,
    );
  });
});

describe('a service open to its network', () => {
  it('warns at start when it binds beyond loopback without a token', async () => {
    const open = recorder();
    await start('0.0.0.0', undefined, open.log);
    expect(open.warnings.some((w) => w.includes('0.0.0.0 without BALLAST_AUTH_TOKEN'))).toBe(true);

    const loopback = recorder();
    await start('127.0.0.1', undefined, loopback.log);
    const withToken = recorder();
    await start('0.0.0.0', 's3cret', withToken.log);
    expect(
      [...loopback.warnings, ...withToken.warnings].filter((w) => w.includes('BALLAST_AUTH_TOKEN')),
    ).toEqual([]);
  });
});
