export { commonConfig, DEFAULT_GRPC_MAX_MESSAGE_BYTES, LOG_LEVELS } from './common.js';
export type { IntOptions, UrlOptions } from './fields.js';
export { bool, durationMs, hostPort, int, oneOf, port, redisUrl, str, url } from './fields.js';
export type { ConfigOf, ConfigProblem, EnvSource } from './load.js';
export { ConfigError, loadConfig } from './load.js';
export { parseRedisUrl, REDIS_URL_FORMS, type RedisAddress, type RedisTarget } from './redis-url.js';
export type { AddrConfigShape, GrpcServiceName, ServiceConfigShape, ServiceName } from './services.js';
export {
  addrConfig,
  DEFAULT_PORTS,
  defaultAddr,
  envPrefix,
  GRPC_SERVICES,
  isGrpcService,
  SERVICES,
  serviceConfig,
} from './services.js';
