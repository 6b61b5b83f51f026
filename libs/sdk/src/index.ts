export { type BallastClients, connect, serviceAddress } from './clients.js';
export { localEndpoints, probe, type Readiness, type ServiceEndpoints } from './health.js';
export { chooseRedis, HOW_TO_GET_REDIS, type RedisChoice } from './local-redis.js';
export { SERVICE_DESCRIPTORS } from './services.js';
export { Supervisor, serviceEntry } from './supervisor.js';
export {
  enqueueTraining,
  listTrainingSchedules,
  removeTrainingSchedule,
  reproductionJob,
  scheduleTraining,
  type TrainingProgress,
  type TrainingResult,
  type TrainingSchedule,
  waitForTraining,
} from './training.js';
export { parseServices, type UpOptions, up } from './up.js';
