export { type BallastClients, connect, serviceAddress, withClients } from './clients.js';
export { localEndpoints, probe, type Readiness, type ServiceEndpoints } from './health.js';
export { chooseRedis, HOW_TO_GET_REDIS, type RedisChoice } from './local-redis.js';
export {
  DAY_MS,
  type DemandShift,
  type ReferenceOptions,
  referenceSales,
  type SaleRecord,
  skuName,
  warehouseName,
} from './reference-data.js';
export { referenceDemandView, referenceSalesSchema, salesBatch } from './reference-workload.js';
export { SERVICE_DESCRIPTORS } from './services.js';
export { Supervisor, serviceEntry } from './supervisor.js';
export {
  cancelTraining,
  enqueueTraining,
  listTrainingJobs,
  listTrainingSchedules,
  removeTrainingSchedule,
  reproductionJob,
  scheduleTraining,
  type TrainingJobSummary,
  type TrainingProgress,
  type TrainingResult,
  type TrainingSchedule,
  waitForTraining,
} from './training.js';
export { parseServices, type UpOptions, up } from './up.js';
