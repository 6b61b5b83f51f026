import { getMeter } from '@ballast/telemetry';
import type { MaterializeOutcome } from './materialize.js';
import type { NearCache } from './near-cache.js';
import type { OnlineReadStats } from './online.js';

/** The feature service's own instruments (RPC counts and latencies come from grpc-kit). */
export function featureMetrics(cache: NearCache | undefined) {
  const meter = getMeter('@ballast/feature');
  const vectors = meter.createCounter('ballast_feature_online_vectors_total', {
    description: 'Online vectors read, by where they came from (cache: the near cache; redis: an MGET).',
  });
  if (cache) {
    meter
      .createObservableGauge('ballast_feature_online_cache_entries', {
        description: 'Online vectors held in the near cache.',
      })
      .addCallback((result) => result.observe(cache.size));
  }
  const materializations = meter.createCounter('ballast_feature_materializations_total', {
    description:
      'Materialization runs ended, by outcome (succeeded, failed); a retried job counts each attempt.',
  });
  const fromCache = { source: 'cache' };
  const fromRedis = { source: 'redis' };
  return {
    onlineRead(stats: OnlineReadStats): void {
      if (stats.cached > 0) vectors.add(stats.cached, fromCache);
      if (stats.fetched > 0) vectors.add(stats.fetched, fromRedis);
    },
    materialized(outcome: MaterializeOutcome): void {
      materializations.add(1, { outcome });
    },
  };
}
