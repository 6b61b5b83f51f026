import { describe, expect, expectTypeOf, it } from 'vitest';
import type { z } from 'zod';
import {
  addrConfig,
  bool,
  ConfigError,
  commonConfig,
  DEFAULT_PORTS,
  durationMs,
  hostPort,
  loadConfig,
  oneOf,
  port,
  REDIS_URL_FORMS,
  SERVICES,
  serviceConfig,
  url,
} from './index.js';

function configError(run: () => unknown): ConfigError {
  try {
    run();
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('commonConfig', () => {
  it('has the documented defaults when nothing is set', () => {
    const config = loadConfig(commonConfig, {});
    expect(config).toEqual({
      BALLAST_ENV: 'development',
      BALLAST_REDIS_URL: 'redis://127.0.0.1:6379',
      BALLAST_DATABASE_URL: undefined,
      BALLAST_DATA_DIR: '.ballast',
      BALLAST_AUTH_TOKEN: undefined,
      BALLAST_LOG_LEVEL: 'info',
      BALLAST_SHUTDOWN_GRACE_MS: 10_000,
      BALLAST_GRPC_MAX_MESSAGE_BYTES: 4 * 1024 * 1024,
      BALLAST_GRPC_HOST: '0.0.0.0',
    });
    expectTypeOf(config.BALLAST_DATABASE_URL).toEqualTypeOf<string | undefined>();
    expectTypeOf(config.BALLAST_SHUTDOWN_GRACE_MS).toEqualTypeOf<number>();
    expectTypeOf(config.BALLAST_LOG_LEVEL).toEqualTypeOf<
      'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'
    >();
  });

  it('takes overrides from the environment', () => {
    const config = loadConfig(commonConfig, {
      BALLAST_ENV: 'production',
      BALLAST_REDIS_URL: 'rediss://:pw@redis.internal:6380/2',
      BALLAST_DATABASE_URL: 'postgres://ballast:pw@db:5432/ballast',
      BALLAST_AUTH_TOKEN: 's3cret',
      BALLAST_LOG_LEVEL: 'debug',
      BALLAST_SHUTDOWN_GRACE_MS: '2.5s',
      BALLAST_GRPC_MAX_MESSAGE_BYTES: '67108864',
      BALLAST_GRPC_HOST: '127.0.0.1',
      UNRELATED: 'ignored',
    });
    expect(config).toMatchObject({
      BALLAST_ENV: 'production',
      BALLAST_REDIS_URL: 'rediss://:pw@redis.internal:6380/2',
      BALLAST_DATABASE_URL: 'postgres://ballast:pw@db:5432/ballast',
      BALLAST_AUTH_TOKEN: 's3cret',
      BALLAST_LOG_LEVEL: 'debug',
      BALLAST_SHUTDOWN_GRACE_MS: 2500,
      BALLAST_GRPC_MAX_MESSAGE_BYTES: 64 * 1024 * 1024,
      BALLAST_GRPC_HOST: '127.0.0.1',
    });
    expect(config).not.toHaveProperty('UNRELATED');
  });

  it('treats empty and blank values as unset', () => {
    const config = loadConfig(commonConfig, { BALLAST_DATABASE_URL: '', BALLAST_LOG_LEVEL: '  ' });
    expect(config.BALLAST_DATABASE_URL).toBeUndefined();
    expect(config.BALLAST_LOG_LEVEL).toBe('info');
  });
});

describe('loadConfig errors', () => {
  it('reports every bad variable at once, one per line, by name', () => {
    const shape = { ...commonConfig, BALLAST_GRPC_PORT: port(), BALLAST_DEBUG: bool() };
    const error = configError(() =>
      loadConfig(shape, {
        BALLAST_GRPC_PORT: 'abc',
        BALLAST_REDIS_URL: 'http://localhost:6379',
        BALLAST_LOG_LEVEL: 'loud',
        BALLAST_SHUTDOWN_GRACE_MS: '10 seconds',
        BALLAST_DEBUG: 'yes',
      }),
    );
    expect(error.problems.map((p) => p.variable)).toEqual([
      'BALLAST_REDIS_URL',
      'BALLAST_LOG_LEVEL',
      'BALLAST_SHUTDOWN_GRACE_MS',
      'BALLAST_GRPC_PORT',
      'BALLAST_DEBUG',
    ]);
    const lines = error.message.split('\n');
    expect(lines[0]).toBe('Invalid configuration (5 problems):');
    expect(lines.slice(1)).toEqual([
      `BALLAST_REDIS_URL: expected a Redis URL: ${REDIS_URL_FORMS}, got "http://localhost:6379"`,
      'BALLAST_LOG_LEVEL: expected one of fatal, error, warn, info, debug, trace, silent, got "loud"',
      'BALLAST_SHUTDOWN_GRACE_MS: expected a duration such as 500, 500ms, 10s, 2m or 1h, got "10 seconds"',
      'BALLAST_GRPC_PORT: expected an integer 1-65535, got "abc"',
      'BALLAST_DEBUG: expected true, false, 1 or 0, got "yes"',
    ]);
  });

  it('says a required variable is missing', () => {
    const error = configError(() => loadConfig({ BALLAST_MODEL_DIR: url() }, {}));
    expect(error.message).toContain('BALLAST_MODEL_DIR: required but not set');
  });

  it('never echoes secrets or URL credentials', () => {
    const error = configError(() =>
      loadConfig(
        { ...commonConfig, BALLAST_AUTH_TOKEN: port() },
        { BALLAST_AUTH_TOKEN: 'hunter2', BALLAST_DATABASE_URL: 'mysql://admin:hunter3@db/x' },
      ),
    );
    expect(error.message).not.toContain('hunter2');
    expect(error.message).not.toContain('hunter3');
    expect(error.message).toContain(
      'BALLAST_AUTH_TOKEN: expected an integer 1-65535, got <redacted, 7 characters>',
    );
    expect(error.message).toContain('got "mysql://***@db/x"');
  });
});

describe('field helpers', () => {
  const parse = <T extends z.ZodType>(schema: T, raw: string) => schema.safeParse(raw);

  it('port accepts 1-65535 only, as plain digits', () => {
    expect(parse(port(), '50051').data).toBe(50051);
    for (const bad of ['0', '65536', '-1', '1e3', '80.5', '0x50'])
      expect(parse(port(), bad).success).toBe(false);
  });

  it('durationMs understands units', () => {
    const cases: Record<string, number> = {
      '250': 250,
      '250ms': 250,
      '10s': 10_000,
      '1.5s': 1500,
      '2m': 120_000,
      '1h': 3_600_000,
    };
    for (const [raw, ms] of Object.entries(cases)) expect(parse(durationMs(), raw).data).toBe(ms);
    expect(parse(durationMs(), '-5s').success).toBe(false);
  });

  it('bool takes true/false/1/0', () => {
    expect(['true', 'TRUE', '1', 'false', '0'].map((raw) => parse(bool(), raw).data)).toEqual([
      true,
      true,
      true,
      false,
      false,
    ]);
    expect(parse(bool(), 'on').success).toBe(false);
  });

  it('oneOf keeps the literal type', () => {
    const backend = oneOf(['auto', 'tensorflow', 'wasm', 'cpu']);
    expectTypeOf<z.output<typeof backend>>().toEqualTypeOf<'auto' | 'tensorflow' | 'wasm' | 'cpu'>();
    expect(parse(backend, 'wasm').data).toBe('wasm');
    expect(parse(backend, 'gpu').success).toBe(false);
  });

  it('hostPort takes host:port, [ipv6]:port and grpc-js targets', () => {
    for (const good of [
      '127.0.0.1:50051',
      'registry:50053',
      '[::1]:50053',
      'dns:///registry:50053',
      'unix:/tmp/s',
    ]) {
      expect(parse(hostPort(), good).data).toBe(good);
    }
    for (const bad of ['registry', 'registry:abc', 'registry:70000', 'http://registry:50053']) {
      expect(parse(hostPort(), bad).success).toBe(false);
    }
  });
});

describe('serviceConfig', () => {
  it('gives each service its default ports and address', () => {
    const config = loadConfig(serviceConfig('ingest'), {});
    expect(config).toEqual({
      BALLAST_INGEST_GRPC_PORT: 50051,
      BALLAST_INGEST_HTTP_PORT: 9451,
      BALLAST_INGEST_ADDR: '127.0.0.1:50051',
    });
    expectTypeOf(config.BALLAST_INGEST_GRPC_PORT).toEqualTypeOf<number>();
  });

  it('matches the design table for every service', () => {
    const expected = {
      ingest: [50051, 9451],
      feature: [50052, 9452],
      registry: [50053, 9453],
      inference: [50054, 9454],
      monitor: [50055, 9455],
      trainer: [null, 9456],
    };
    for (const service of SERVICES) {
      const ports = DEFAULT_PORTS[service];
      expect([ports.grpc, ports.http]).toEqual(expected[service]);
    }
  });

  it('gives trainer an HTTP port and no gRPC', () => {
    const config = loadConfig(serviceConfig('trainer'), {});
    expect(config).toEqual({ BALLAST_TRAINER_HTTP_PORT: 9456 });
  });

  it('combines with commonConfig and peers, and takes overrides', () => {
    const shape = { ...commonConfig, ...serviceConfig('inference'), ...addrConfig('registry') };
    const config = loadConfig(shape, {
      BALLAST_INFERENCE_GRPC_PORT: '6000',
      BALLAST_REGISTRY_ADDR: 'registry:50053',
    });
    expect(config.BALLAST_INFERENCE_GRPC_PORT).toBe(6000);
    expect(config.BALLAST_INFERENCE_HTTP_PORT).toBe(9454);
    expect(config.BALLAST_REGISTRY_ADDR).toBe('registry:50053');
    expect(config.BALLAST_REDIS_URL).toBe('redis://127.0.0.1:6379');
    expectTypeOf(config.BALLAST_REGISTRY_ADDR).toEqualTypeOf<string>();
  });

  it('reports bad service ports alongside everything else', () => {
    const error = configError(() =>
      loadConfig(
        { ...serviceConfig('monitor'), ...addrConfig('feature') },
        {
          BALLAST_MONITOR_GRPC_PORT: '99999',
          BALLAST_MONITOR_HTTP_PORT: 'http',
          BALLAST_FEATURE_ADDR: 'feature',
        },
      ),
    );
    expect(error.problems.map((p) => p.variable).sort()).toEqual([
      'BALLAST_FEATURE_ADDR',
      'BALLAST_MONITOR_GRPC_PORT',
      'BALLAST_MONITOR_HTTP_PORT',
    ]);
  });
});
