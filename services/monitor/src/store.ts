/**
 * Persistence for the monitor, over Postgres or PGlite (the same SQL on both). Every
 * statement lives in a module of store/, named for the tables it holds; this module gathers
 * them for callers that use several (tests, the benchmark).
 */
export * from './store/actuals.js';
export * from './store/alerts.js';
export * from './store/baselines.js';
export * from './store/counters.js';
export * from './store/errors.js';
export * from './store/retention.js';
export * from './store/retrain.js';
export * from './store/windows.js';
