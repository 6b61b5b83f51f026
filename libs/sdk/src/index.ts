export { localEndpoints, probe, type Readiness, type ServiceEndpoints } from './health.js';
export { chooseRedis, HOW_TO_GET_REDIS, type RedisChoice } from './local-redis.js';
export { SERVICE_DESCRIPTORS } from './services.js';
export { Supervisor, serviceEntry } from './supervisor.js';
export { parseServices, type UpOptions, up } from './up.js';
