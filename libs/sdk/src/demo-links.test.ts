import { SERVICES } from '@ballast/config';
import { describe, expect, it } from 'vitest';
import { demoTraceLines } from './demo-links.js';

describe("the demo's trace lines", () => {
  const link = 'http://jaeger.test:16686/trace/0af7651916cd43dd8448eb211c80319c';

  it('search Jaeger by the names the services export as (ballast-<service>)', () => {
    const lines = demoTraceLines(
      {
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4317',
        BALLAST_JAEGER_URL: 'http://jaeger.test:16686/',
      },
      link,
    );
    expect(lines[0]).toContain(link);
    const searched = lines.flatMap((line) => [...line.matchAll(/[?&]service=([^&\s]+)/g)].map((m) => m[1]));
    expect(searched).toEqual(['ballast-trainer']);
    expect(SERVICES.map((s) => `ballast-${s}`)).toEqual(expect.arrayContaining(searched));
    expect(lines[1]).toMatch(/^traces: {4}http:\/\/jaeger\.test:16686\/search\?service=ballast-trainer /);
  });

  it('say how to export spans when none are exported', () => {
    for (const env of [
      {},
      { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4317', OTEL_TRACES_EXPORTER: 'none' },
    ]) {
      const lines = demoTraceLines(env, link);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain('set OTEL_EXPORTER_OTLP_ENDPOINT');
    }
  });
});
