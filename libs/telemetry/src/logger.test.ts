import { trace } from '@opentelemetry/api';
import { InMemorySpanExporter, NodeTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from './logger.js';

type Line = Record<string, unknown>;

function capture() {
  const lines: Line[] = [];
  return { lines, destination: { write: (line: string) => lines.push(JSON.parse(line) as Line) } };
}

describe('createLogger', () => {
  const spans = new InMemorySpanExporter();
  const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] });
  beforeAll(() => provider.register());
  afterAll(() => provider.shutdown());

  it('stamps trace_id and span_id of the active span, and service on every line', () => {
    const { lines, destination } = capture();
    const logger = createLogger({ service: 'ingest', destination });

    logger.info('outside');
    const ids = trace.getTracer('test').startActiveSpan('commit', (span) => {
      logger.info({ dataset: 'demand' }, 'inside');
      span.end();
      return span.spanContext();
    });

    expect(lines).toHaveLength(2);
    const [outside, inside] = lines;
    expect(outside).toMatchObject({ service: 'ingest', level: 'info', msg: 'outside' });
    expect(outside).not.toHaveProperty('trace_id');
    expect(inside).toMatchObject({
      service: 'ingest',
      msg: 'inside',
      dataset: 'demand',
      trace_id: ids.traceId,
      span_id: ids.spanId,
      trace_flags: '01',
    });
    expect(spans.getFinishedSpans().map((s) => s.spanContext().spanId)).toContain(ids.spanId);
  });

  it('honours the level', () => {
    const { lines, destination } = capture();
    const logger = createLogger({ service: 'monitor', level: 'warn', destination });
    logger.info('dropped');
    logger.warn('kept');
    expect(lines.map((l) => l.msg)).toEqual(['kept']);
  });

  it('redacts secrets and the password in connection strings', () => {
    const { lines, destination } = capture();
    const logger = createLogger({ service: 'registry', destination });
    logger.info(
      {
        token: 'tok-1',
        config: {
          BALLAST_AUTH_TOKEN: 'tok-2',
          BALLAST_DATABASE_URL: 'postgres://ballast:pw-3@db:5432/ballast',
          BALLAST_REDIS_URL: 'redis://127.0.0.1:6379',
        },
        metadata: { authorization: 'Bearer tok-4' },
        req: { headers: { authorization: 'Bearer tok-5', accept: 'text/html' } },
        password: 'pw-6',
      },
      'started',
    );
    const text = JSON.stringify(lines[0]);
    for (const secret of ['tok-1', 'tok-2', 'pw-3', 'tok-4', 'tok-5', 'pw-6'])
      expect(text).not.toContain(secret);
    expect(lines[0]).toMatchObject({
      token: '[Redacted]',
      config: {
        BALLAST_AUTH_TOKEN: '[Redacted]',
        BALLAST_DATABASE_URL: 'postgres://ballast:***@db:5432/ballast',
        BALLAST_REDIS_URL: 'redis://127.0.0.1:6379',
      },
      req: { headers: { authorization: '[Redacted]', accept: 'text/html' } },
    });
  });
});
