import { describe, expect, it } from 'vitest';
import { ballastResource, serviceNameFromEnv } from './resource.js';

describe('ballastResource', () => {
  it('names the service from OTEL_SERVICE_NAME first, then BALLAST_SERVICE', () => {
    expect(serviceNameFromEnv({ OTEL_SERVICE_NAME: 'ballast-ingest', BALLAST_SERVICE: 'ingest' })).toBe(
      'ballast-ingest',
    );
    expect(serviceNameFromEnv({ BALLAST_SERVICE: 'ingest' })).toBe('ingest');
    expect(serviceNameFromEnv({})).toBeUndefined();
  });

  it('carries version and environment, with defaults', () => {
    expect(ballastResource({ BALLAST_SERVICE: 'monitor' }).attributes).toMatchObject({
      'service.name': 'monitor',
      'service.version': '0.1.0',
      'deployment.environment': 'development',
      'deployment.environment.name': 'development',
      'telemetry.sdk.language': 'nodejs',
    });
    expect(ballastResource({ BALLAST_VERSION: '1.2.3', BALLAST_ENV: 'production' }).attributes).toMatchObject(
      {
        'service.version': '1.2.3',
        'deployment.environment': 'production',
      },
    );
  });
});
