// Real Redis deployments on loopback for tests (imported as @ballast/queue/testing).
export { type LocalRedisCluster, type RedisClusterOptions, startRedisCluster } from './redis-cluster.js';
export { type LocalRedisSentinel, startRedisSentinel } from './redis-sentinel.js';
export { infoFields, redisCli, waitFor } from './redis-servers.js';
