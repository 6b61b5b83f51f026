import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import { type RunningHttpServer, startHttpServer } from '@ballast/telemetry';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dashboardRoutes } from './dashboard.js';
import { OperationsScraper, parsePrometheus, parseTargets } from './operations.js';
import { retailStatistics, startTestMonitor, T0, type TestMonitor, traffic, WINDOW } from './test-monitor.js';

const run = promisify(execFile);

/** Debian's chromium, headless, printing the DOM after the page's scripts ran. */
async function dumpDom(url: string): Promise<string> {
  const { stdout } = await run(
    'chromium',
    ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--dump-dom', url],
    { maxBuffer: 32 * 1024 * 1024, timeout: 60_000 },
  );
  return stdout;
}

/** A service's /metrics: prom-client's process metrics and inference's request counter, growing per scrape. */
function fakeMetrics(): Promise<Server> {
  let scrapes = 0;
  const server = createServer((_req, res) => {
    scrapes++;
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
    res.end(
      [
        '# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.',
        '# TYPE process_cpu_seconds_total counter',
        `process_cpu_seconds_total ${scrapes * 0.5}`,
        `process_resident_memory_bytes ${100 * 2 ** 20 + scrapes}`,
        'nodejs_eventloop_lag_seconds 0.004',
        `ballast_inference_requests_total{model="demand",version="1",status="OK"} ${90 * scrapes}`,
        `ballast_inference_requests_total{model="demand",version="1",status="RESOURCE_EXHAUSTED"} ${10 * scrapes}`,
        'not a sample line {',
      ].join('\n'),
    );
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

describe('operations', () => {
  it('parses the Prometheus text format and refuses bad scrape targets', () => {
    expect(parsePrometheus('# c\na_total{x="1",y="q\\"z"} 3\nb 4.5 1700000000\n{bad} 1\n')).toEqual([
      { name: 'a_total', labels: { x: '1', y: 'q"z' }, value: 3 },
      { name: 'b', labels: {}, value: 4.5 },
    ]);
    expect(parseTargets(undefined).map((t) => t.url)).toContain('http://127.0.0.1:9455/metrics');
    expect(parseTargets('none')).toEqual([]);
    expect(() => parseTargets('x=file:///etc/passwd')).toThrow(/http/);
    expect(() => parseTargets('nourl')).toThrow(/name=url/);
  });
});

describe('dashboard', () => {
  let m: TestMonitor;
  let http: RunningHttpServer;
  let metrics: Server;
  let scraper: OperationsScraper;

  beforeAll(async () => {
    metrics = await fakeMetrics();
    const port = (metrics.address() as AddressInfo).port;
    scraper = new OperationsScraper([
      { service: 'inference', url: `http://127.0.0.1:${port}/metrics` },
      { service: 'gone', url: 'http://127.0.0.1:1/metrics' },
    ]);
    m = await startTestMonitor('postgres', { settings: { windowMs: WINDOW }, operations: scraper });
    http = await startHttpServer({
      host: '127.0.0.1',
      port: 0,
      ready: () => true,
      routes: dashboardRoutes({
        sql: () => m.sql,
        deployments: async () => [{ time: T0 + 2 * WINDOW, label: 'production v1' }],
        operations: scraper,
      }),
    });
  });
  afterAll(async () => {
    await http?.close();
    await m?.close();
    metrics?.close();
  });

  it('answers GetOperations with latency per model, inference error rates and resources per service', async () => {
    await m.client.setBaseline({ model: 'demand', version: 1, statistics: retailStatistics() });
    await m.log([0, 1, 2, 3].map((w) => traffic(T0 + w * WINDOW, 60, 40 + w, w >= 2 ? ['w3'] : [])));
    await scraper.scrapeOnce();
    await scraper.scrapeOnce();
    const ops = await m.client.getOperations({});
    const demand = ops.models.find((x) => x.model === 'demand');
    expect(demand).toMatchObject({ version: 1, requestsByStatus: { OK: 180n, RESOURCE_EXHAUSTED: 20n } });
    expect(demand?.loggedRequests).toBe(720n);
    expect(demand?.latencyP50Ms).toBeCloseTo(1, 0);
    expect(demand?.errorRate).toBeCloseTo(0.1, 12);
    const inference = ops.services.find((s) => s.service === 'inference');
    expect(inference).toMatchObject({ up: true, memoryBytes: 100 * 2 ** 20 + 2, eventLoopLagMs: 4 });
    expect(inference?.cpuPercent).toBeGreaterThan(0);
    const gone = ops.services.find((s) => s.service === 'gone');
    expect(gone?.up).toBe(false);
    expect(gone?.error).not.toBe('');
  });

  it('draws drift per feature and segment, error with deployment markers, latency and resources in headless Chromium', async () => {
    const actuals = [0, 1, 2, 3].flatMap((w) =>
      ['w1', 'w2', 'w3'].flatMap((wh) =>
        Array.from({ length: 10 }, (_, i) => ({
          entityKey: `${wh}:sku${i}`,
          time: timestampFromMs(T0 + w * WINDOW + 59_000),
          value: 50 + (wh === 'w3' && w >= 2 ? 25 : 1),
        })),
      ),
    );
    await m.client.recordActuals({ model: 'demand', actuals });
    const index = await dumpDom(`${http.url}/`);
    expect(index).toContain('/dashboard?model=demand');

    const dom = await dumpDom(`${http.url}/dashboard?model=demand`);
    expect(dom).toContain('data-measured="true"');
    const charts = [...dom.matchAll(/<svg id="([^"]+)" class="chart"/g)].map((x) => x[1]);
    expect(charts).toEqual(
      expect.arrayContaining([
        'drift-share',
        'psi-price',
        'psi-lag_units',
        'psi-prediction',
        'error',
        'latency',
        'cpu',
        'memory',
        'lag',
      ]),
    );
    const paths = [
      ...dom.matchAll(
        /<path class="series" data-series="([^"]+)" data-points="(\d+)" d="([^"]+)"[^>]*data-length="([\d.]+)"/g,
      ),
    ];
    expect(paths.length).toBeGreaterThanOrEqual(20);
    // Every line of two points or more was laid out by the browser with a length (a single
    // point is a dot), and the drift lines span the 4 windows.
    const lines = paths.filter((p) => Number(p[2]) >= 2);
    expect(lines.length).toBeGreaterThanOrEqual(20);
    for (const p of lines) expect(Number(p[4])).toBeGreaterThan(0);
    const w3Share = paths.find(
      (p) => p[1] === 'warehouse_id=w3' && dom.indexOf(p[0]) > dom.indexOf('id="drift-share"'),
    );
    expect(w3Share?.[2]).toBe('4');
    // The deployment marker sits on the error chart.
    const errorChart = dom.slice(
      dom.indexOf('<svg id="error"'),
      dom.indexOf('</svg>', dom.indexOf('<svg id="error"')),
    );
    expect(errorChart).toContain('production v1');
    expect(errorChart).toContain('data-series="warehouse_id=w3"');

    // The default rule fired for w3 (shifted in windows 2 and 3): listed with its retraining.
    const alerts = dom.slice(
      dom.indexOf('<ul id="alerts">'),
      dom.indexOf('</ul>', dom.indexOf('<ul id="alerts">')),
    );
    expect(alerts).toContain('default_drift on warehouse_id=w3');
    expect(alerts).toContain('retraining retrain-');
    const missing = await fetch(`${http.url}/dashboard?model=nobody`);
    expect(missing.status).toBe(404);
    expect(await missing.text()).toContain('nobody');
    const escaped = await (
      await fetch(`${http.url}/dashboard?model=${encodeURIComponent('<script>')}`)
    ).text();
    expect(escaped).not.toContain('<script>"');
    expect(escaped).toContain('&#60;script&#62;');
  });
});
