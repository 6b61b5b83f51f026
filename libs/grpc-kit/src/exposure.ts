import { tokenMatches } from './interceptors.js';

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|\[::1\]|localhost)$/i;

export function isLoopback(host: string): boolean {
  return LOOPBACK.test(host);
}

/**
 * Why a service is open to its network, or undefined when it is not: a port bound beyond
 * loopback with no token lets anyone on that network call every RPC.
 */
export function exposureWarning(hosts: string[], authToken: string | undefined): string | undefined {
  if (authToken) return undefined;
  const exposed = hosts.filter((host) => !isLoopback(host));
  if (exposed.length === 0) return undefined;
  return `listening on ${[...new Set(exposed)].join(', ')} without BALLAST_AUTH_TOKEN: anyone who can reach this address can call every RPC; set BALLAST_AUTH_TOKEN or bind 127.0.0.1 (BALLAST_GRPC_HOST)`;
}

/**
 * The check /metrics and the service's pages run when BALLAST_METRICS_AUTH=true: the same
 * bearer token as gRPC. Off by default so an existing Prometheus keeps scraping.
 */
export function metricsAuthorizer(
  env: NodeJS.ProcessEnv,
  authToken: string | undefined,
): ((authorization: string | undefined) => boolean) | undefined {
  if (env.BALLAST_METRICS_AUTH !== 'true') return undefined;
  if (!authToken)
    throw new Error('BALLAST_METRICS_AUTH=true needs BALLAST_AUTH_TOKEN: there is no token to check');
  return (authorization) => {
    const match = /^Bearer\s+(.+)$/i.exec(authorization?.trim() ?? '');
    return match?.[1] !== undefined && tokenMatches(match[1], authToken);
  };
}
