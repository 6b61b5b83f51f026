import { DEFAULT_JOIN_WINDOW_MS, DEFAULT_WINDOW_MS } from './model-baseline.js';
import { RETRAIN_DEFAULTS, type RetrainDefaults } from './retrain.js';

/**
 * The monitor's tunables, apart from the wiring (monitor.ts) and the RPC handlers
 * (server.ts), so that domain modules can read them without importing either.
 */
export interface MonitorSettings {
  /** Window length for baselines that do not set one. */
  windowMs: number;
  joinWindowMs: number;
  /** The default rule stored for every model with a new baseline and no rules; undefined: none. */
  defaultRule?: { windows: number; threshold: number } | undefined;
  retrain: RetrainDefaults;
  webhook: { attempts: number; backoffMs: number };
  minErrorCount: number;
  workerConcurrency: number;
  /** Least time between two alert evaluations of one model while predictions keep arriving. */
  evaluateIntervalMs: number;
  /** Window statistics and error are kept this long (by window time). */
  windowRetentionMs: number;
  /** How often old rows are pruned (see store/retention.ts); 0: never. */
  pruneIntervalMs: number;
  /** How soon WatchAlerts sees changes made by another replica. */
  watchPollMs: number;
}

export const DEFAULT_SETTINGS: MonitorSettings = {
  windowMs: DEFAULT_WINDOW_MS,
  joinWindowMs: DEFAULT_JOIN_WINDOW_MS,
  defaultRule: { windows: 2, threshold: 0.5 },
  retrain: { ...RETRAIN_DEFAULTS },
  webhook: { attempts: 5, backoffMs: 500 },
  minErrorCount: 1,
  workerConcurrency: 1,
  evaluateIntervalMs: 0,
  windowRetentionMs: 90 * 86_400_000,
  pruneIntervalMs: 0,
  watchPollMs: 1_000,
};
