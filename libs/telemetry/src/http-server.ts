import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { handleMetricsRequest } from './metrics.js';

export type RouteHandler = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

export interface HttpServerOptions {
  /** Default 0.0.0.0, so Prometheus can scrape from another container. */
  host?: string;
  /** 0 picks a free port; the bound one is on the result. */
  port: number;
  /** Readiness for /readyz; a throw counts as not ready. */
  ready: () => boolean | Promise<boolean>;
  /** Extra routes by exact path (`/`, `/dashboard`); they see every method. */
  routes?: Record<string, RouteHandler>;
  /**
   * When set, every path but /healthz and /readyz (which probes reach without credentials)
   * answers 401 unless this accepts the request's `authorization` header.
   */
  authorize?: (authorization: string | undefined) => boolean;
}

export interface RunningHttpServer {
  readonly server: Server;
  readonly host: string;
  readonly port: number;
  /** `http://host:port`, with a wildcard host shown as 127.0.0.1 so it can be dialled. */
  readonly url: string;
  /** Stops accepting connections and resolves once requests in flight have finished. */
  close(): Promise<void>;
}

const BUILT_IN = ['/metrics', '/healthz', '/readyz'];
const OPEN = ['/healthz', '/readyz'];

function sendText(
  res: ServerResponse,
  status: number,
  body: string,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', ...headers });
  res.end(`${body}\n`);
}

async function isReady(ready: HttpServerOptions['ready']): Promise<boolean> {
  try {
    return (await ready()) === true;
  } catch {
    return false;
  }
}

/** The HTTP side of a service: /metrics (Prometheus), /healthz (liveness), /readyz, and its own pages. */
export async function startHttpServer(options: HttpServerOptions): Promise<RunningHttpServer> {
  const { host = '0.0.0.0', port, ready, routes = {} } = options;
  const clash = BUILT_IN.find((path) => path in routes);
  if (clash) throw new Error(`startHttpServer: route ${clash} is built in and cannot be replaced`);

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    const method = req.method ?? 'GET';
    if (options.authorize && !OPEN.includes(path) && !options.authorize(req.headers.authorization)) {
      return sendText(res, 401, 'unauthorized: send "authorization: Bearer <token>"', {
        'www-authenticate': 'Bearer',
      });
    }
    if (BUILT_IN.includes(path)) {
      if (method !== 'GET' && method !== 'HEAD')
        return sendText(res, 405, 'method not allowed', { allow: 'GET, HEAD' });
      if (path === '/metrics') return handleMetricsRequest(req, res);
      if (path === '/healthz') return sendText(res, 200, 'ok');
      return (await isReady(ready)) ? sendText(res, 200, 'ready') : sendText(res, 503, 'not ready');
    }
    const route = Object.hasOwn(routes, path) ? routes[path] : undefined;
    if (route) return route(req, res);
    return sendText(res, 404, 'not found');
  };

  const server = createServer((req, res) => {
    // A failing page must not take the process (or its metrics endpoint) down with it.
    handle(req, res).catch(() => {
      if (!res.headersSent) sendText(res, 500, 'internal error');
      else res.destroy();
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });

  const bound = (server.address() as AddressInfo).port;
  const dialHost =
    host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  return {
    server,
    host,
    port: bound,
    url: `http://${dialHost}:${bound}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        // Keep-alive connections (Prometheus keeps one open) would otherwise hold close() forever.
        server.closeIdleConnections();
      }),
  };
}
