import type { Sql } from '@ballast/storage';
import type { AlertEngine } from './alerts.js';
import type { MonitorMetrics } from './metrics.js';
import type { OperationsScraper } from './operations.js';
import type { MonitorSettings } from './settings.js';
import type { BaselineCache } from './worker.js';

/**
 * What the RPC handlers and the domain modules behind them share. It lives apart from
 * server.ts so that a domain module (actuals.ts) can name it without importing the handlers
 * that call it.
 */
export interface MonitorDeps {
  /** The service's database (a getter: the store opens lazily). */
  sql: () => Sql;
  baselines: BaselineCache;
  alerts: AlertEngine;
  settings: Pick<MonitorSettings, 'windowMs' | 'joinWindowMs'>;
  metrics?: MonitorMetrics | undefined;
  /** Where failures of work done after an answer (alert evaluation) are reported. */
  onError?: ((error: unknown) => void) | undefined;
  /** Scraped /metrics of the services; undefined: none scraped. */
  operations?: OperationsScraper | undefined;
}
