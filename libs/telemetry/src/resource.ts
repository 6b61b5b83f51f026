import { defaultResource, type Resource, resourceFromAttributes } from '@opentelemetry/resources';
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions';

export const DEFAULT_SERVICE_VERSION = '0.1.0';

/** OTEL_SERVICE_NAME wins (the standard), then BALLAST_SERVICE, the name a service's start script sets. */
export function serviceNameFromEnv(env: NodeJS.ProcessEnv = process.env): string | undefined {
  return env.OTEL_SERVICE_NAME || env.BALLAST_SERVICE || undefined;
}

/**
 * service.version and deployment.environment for every signal. Both the older
 * `deployment.environment` and its current semconv name `deployment.environment.name` are set, so
 * Jaeger/Grafana queries written for either find the service.
 */
export function ballastResource(env: NodeJS.ProcessEnv = process.env): Resource {
  const attributes: Record<string, string> = {
    [ATTR_SERVICE_VERSION]: env.BALLAST_VERSION || DEFAULT_SERVICE_VERSION,
  };
  const serviceName = serviceNameFromEnv(env);
  if (serviceName) attributes[ATTR_SERVICE_NAME] = serviceName;
  // 'development' is @ballast/config's default for BALLAST_ENV too.
  const environment = env.BALLAST_ENV || 'development';
  attributes['deployment.environment'] = environment;
  attributes['deployment.environment.name'] = environment;
  return defaultResource().merge(resourceFromAttributes(attributes));
}
