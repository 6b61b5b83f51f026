import { spawn } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { type RunningHttpServer, startHttpServer } from './http-server.js';
import { getMeter, PROMETHEUS_CONTENT_TYPE } from './metrics.js';
import { shutdownTelemetry } from './sdk.js';

function promtoolCheckMetrics(body: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('promtool', ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
    child.stdin.end(body);
  });
}

describe('startHttpServer', () => {
  let running: RunningHttpServer | undefined;
  afterEach(async () => {
    await running?.close();
    running = undefined;
  });

  it('serves metrics recorded through getMeter, in a format promtool accepts', async () => {
    const meter = getMeter('ballast.telemetry.test');
    meter
      .createCounter('ballast_test_requests', { description: 'Requests the test made' })
      .add(3, { rpc: 'Say' });
    meter
      .createHistogram('ballast_test_latency_seconds', {
        description: 'Latency the test saw',
        unit: 's',
        advice: { explicitBucketBoundaries: [0.005, 0.05, 0.5, 5] },
      })
      .record(0.25);
    meter.createUpDownCounter('ballast_test_queue_depth', { description: 'Items waiting' }).add(2);

    running = await startHttpServer({ host: '127.0.0.1', port: 0, ready: () => true });
    expect(running.port).toBeGreaterThan(0);

    const response = await fetch(`${running.url}/metrics`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe(PROMETHEUS_CONTENT_TYPE);
    const body = await response.text();
    expect(body).toMatch(/^ballast_test_requests_total\{[^}]*rpc="Say"[^}]*\} 3$/m);
    expect(body).toContain('# TYPE ballast_test_latency_seconds histogram');
    expect(body).toMatch(/^ballast_test_latency_seconds_bucket\{[^}]*le="0.5"\} 1$/m);
    expect(body).toContain('ballast_test_queue_depth');

    const { code, output } = await promtoolCheckMetrics(body);
    expect(output).toBe('');
    expect(code).toBe(0);
  });

  it('keeps serving metrics after shutdownTelemetry when there is no SDK (services restarted in tests)', async () => {
    getMeter('ballast.telemetry.test').createCounter('ballast_test_restarts').add(1);
    await shutdownTelemetry();
    running = await startHttpServer({ host: '127.0.0.1', port: 0, ready: () => true });
    getMeter('ballast.telemetry.test').createCounter('ballast_test_after_shutdown').add(1);
    const body = await (await fetch(`${running.url}/metrics`)).text();
    expect(body).toMatch(/^ballast_test_restarts_total\{[^}]*\} 1$/m);
    expect(body).toMatch(/^ballast_test_after_shutdown_total\{[^}]*\} 1$/m);
  });

  it('answers /healthz always and /readyz only once ready', async () => {
    let ready = false;
    running = await startHttpServer({ host: '127.0.0.1', port: 0, ready: () => ready });

    const health = await fetch(`${running.url}/healthz`);
    expect([health.status, await health.text()]).toEqual([200, 'ok\n']);
    expect((await fetch(`${running.url}/readyz`)).status).toBe(503);
    ready = true;
    expect((await fetch(`${running.url}/readyz`)).status).toBe(200);
  });

  it('treats a readiness check that rejects as not ready', async () => {
    running = await startHttpServer({
      host: '127.0.0.1',
      port: 0,
      ready: async () => {
        throw new Error('redis down');
      },
    });
    expect((await fetch(`${running.url}/readyz`)).status).toBe(503);
  });

  it('serves extra routes, 404s unknown paths, 405s writes to built-ins, 500s a failing page', async () => {
    running = await startHttpServer({
      host: '127.0.0.1',
      port: 0,
      ready: () => true,
      routes: {
        '/': (_req, res) => {
          res.writeHead(200, { 'content-type': 'text/html' });
          res.end('<h1>monitor</h1>');
        },
        '/broken': async () => {
          throw new Error('page bug');
        },
      },
    });
    const page = await fetch(`${running.url}/?segment=north`);
    expect([page.status, await page.text()]).toEqual([200, '<h1>monitor</h1>']);
    expect((await fetch(`${running.url}/nope`)).status).toBe(404);
    const post = await fetch(`${running.url}/metrics`, { method: 'POST' });
    expect([post.status, post.headers.get('allow')]).toEqual([405, 'GET, HEAD']);
    expect((await fetch(`${running.url}/broken`)).status).toBe(500);
    expect((await fetch(`${running.url}/healthz`)).status).toBe(200);
  });

  it('refuses routes that would shadow a built-in', async () => {
    await expect(
      startHttpServer({ port: 0, ready: () => true, routes: { '/metrics': () => undefined } }),
    ).rejects.toThrow(/\/metrics is built in/);
  });

  it('reports a port already in use', async () => {
    running = await startHttpServer({ host: '127.0.0.1', port: 0, ready: () => true });
    await expect(
      startHttpServer({ host: '127.0.0.1', port: running.port, ready: () => true }),
    ).rejects.toThrow(/EADDRINUSE/);
  });

  it('closes even with a keep-alive connection open', async () => {
    const server = await startHttpServer({ host: '127.0.0.1', port: 0, ready: () => true });
    const response = await fetch(`${server.url}/healthz`, { headers: { connection: 'keep-alive' } });
    await response.text();
    await server.close();
    await expect(fetch(`${server.url}/healthz`)).rejects.toThrow();
  });
});
