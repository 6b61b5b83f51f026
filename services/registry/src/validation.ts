import type {
  Lineage,
  Metric,
  PromotionPolicy,
  ServingProfile,
  Signature,
} from '@ballast/contracts/ballast/registry/v1/registry_pb.js';
import { Task } from '@ballast/contracts/ballast/registry/v1/registry_pb.js';
import { invalidArgument } from '@ballast/grpc-kit';

/**
 * Input rules for the registry's requests. Each check throws INVALID_ARGUMENT naming the
 * field path and the rule, before anything is written.
 */

const NAME = /^[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?$/;
const NAME_RULE =
  'must be 1-64 characters of a-z, 0-9, ".", "_" or "-", starting and ending with a letter or digit';
const ALIAS = /^[a-z][a-z0-9_-]{0,62}$/;
// Content hashes from ingest and feature; hex today, but any opaque token of these characters.
const CONTENT_VERSION = /^[A-Za-z0-9._:-]{1,128}$/;
const DTYPES = new Set(['float32', 'int32', 'bool', 'string']);

export const PRODUCTION = 'production';

/**
 * The one rule for names of models and of teams: requests (name, owner_team, model) and
 * BALLAST_REGISTRY_TEAM_TOKENS are checked by it alike. What `value` breaks, or undefined.
 */
export function nameProblem(value: string): string | undefined {
  return NAME.test(value) ? undefined : `${NAME_RULE}, got ${JSON.stringify(value.slice(0, 80))}`;
}

export function checkName(field: string, value: string): string {
  const problem = nameProblem(value);
  if (problem) throw invalidArgument(field, problem);
  return value;
}

export function checkAlias(field: string, value: string): string {
  if (!ALIAS.test(value))
    throw invalidArgument(
      field,
      `must be 1-63 characters of a-z, 0-9, "_" or "-", starting with a letter, got ${JSON.stringify(value.slice(0, 80))}`,
    );
  return value;
}

export function checkVersionNumber(field: string, value: number): number {
  if (!Number.isInteger(value) || value < 1)
    throw invalidArgument(field, `must be a version number >= 1, got ${value}`);
  return value;
}

export function checkText(field: string, value: string, max: number): string {
  if (value.length > max)
    throw invalidArgument(field, `must be at most ${max} characters, got ${value.length}`);
  return value;
}

export function checkTask(field: string, task: Task): Task {
  if (task !== Task.REGRESSION && task !== Task.CLASSIFICATION)
    throw invalidArgument(field, 'must be TASK_REGRESSION or TASK_CLASSIFICATION');
  return task;
}

export function checkTags(field: string, tags: Record<string, string>): Record<string, string> {
  const entries = Object.entries(tags);
  if (entries.length > 64)
    throw invalidArgument(field, `must have at most 64 entries, got ${entries.length}`);
  for (const [key, value] of entries) {
    if (!/^[A-Za-z0-9._/-]{1,63}$/.test(key))
      throw invalidArgument(
        `${field}[${key}]`,
        'keys must be 1-63 characters of A-Z, a-z, 0-9, ".", "_", "/" or "-"',
      );
    checkText(`${field}[${key}]`, value, 256);
  }
  return tags;
}

function checkFinite(field: string, value: number, min: number, max = Number.POSITIVE_INFINITY): void {
  if (!Number.isFinite(value) || value < min || value > max)
    throw invalidArgument(
      field,
      `must be a finite number ${max === Number.POSITIVE_INFINITY ? `>= ${min}` : `between ${min} and ${max}`}, got ${value}`,
    );
}

export function checkPolicy(field: string, policy: PromotionPolicy | undefined): void {
  if (!policy) return;
  if (policy.primaryMetric) checkText(`${field}.primary_metric`, policy.primaryMetric, 64);
  if (policy.evalSet) checkText(`${field}.eval_set`, policy.evalSet, 64);
  if (policy.minImprovement !== undefined)
    checkFinite(`${field}.min_improvement`, policy.minImprovement, -1, 10);
  if (policy.maxP99LatencyIncrease !== undefined)
    checkFinite(`${field}.max_p99_latency_increase`, policy.maxP99LatencyIncrease, 0);
  if (policy.maxCostIncrease !== undefined)
    checkFinite(`${field}.max_cost_increase`, policy.maxCostIncrease, 0);
  if (policy.maxSegmentRegression !== undefined)
    checkFinite(`${field}.max_segment_regression`, policy.maxSegmentRegression, 0);
  if (policy.latencyBatchSize < 0 || !Number.isInteger(policy.latencyBatchSize))
    throw invalidArgument(`${field}.latency_batch_size`, 'must be 0 (default 1) or a positive batch size');
}

function required(field: string, value: string, max = 256): void {
  if (!value) throw invalidArgument(field, 'is required');
  checkText(field, value, max);
}

/** Lineage is what makes a version reproducible, so its parts are required, not advisory. */
export function checkLineage(field: string, lineage: Lineage | undefined): Lineage {
  if (!lineage)
    throw invalidArgument(field, 'is required: dataset, feature view, training config and environment');
  for (const [part, ref] of [
    ['dataset', lineage.dataset],
    ['feature_view', lineage.featureView],
  ] as const) {
    if (!ref) throw invalidArgument(`${field}.${part}`, 'is required (name and version)');
    required(`${field}.${part}.name`, ref.name, 128);
    if (!CONTENT_VERSION.test(ref.version))
      throw invalidArgument(
        `${field}.${part}.version`,
        `must be the content hash it was read at (1-128 characters of A-Z, a-z, 0-9, ".", "_", ":" or "-"), got ${JSON.stringify(ref.version.slice(0, 80))}`,
      );
  }
  if (!lineage.config) throw invalidArgument(`${field}.config`, 'is required (hyperparameters and seed)');
  checkTags(`${field}.config.hyperparameters`, lineage.config.hyperparameters);
  const env = lineage.environment;
  if (!env)
    throw invalidArgument(`${field}.environment`, 'is required (node, tfjs and backend versions at least)');
  required(`${field}.environment.node_version`, env.nodeVersion, 64);
  required(`${field}.environment.tfjs_version`, env.tfjsVersion, 64);
  required(`${field}.environment.backend`, env.backend, 64);
  checkText(`${field}.environment.platform`, env.platform, 128);
  checkText(`${field}.environment.code_commit`, env.codeCommit, 128);
  checkText(`${field}.environment.lockfile_hash`, env.lockfileHash, 128);
  checkText(`${field}.training_job_id`, lineage.trainingJobId, 256);
  return lineage;
}

export function checkMetrics(field: string, metrics: Metric[]): Metric[] {
  if (metrics.length > 10_000)
    throw invalidArgument(field, `must have at most 10000 entries, got ${metrics.length}`);
  const seen = new Set<string>();
  metrics.forEach((metric, index) => {
    const at = `${field}[${index}]`;
    required(`${at}.name`, metric.name, 64);
    required(`${at}.eval_set`, metric.evalSet, 64);
    checkText(`${at}.segment`, metric.segment, 256);
    if (!Number.isFinite(metric.value))
      throw invalidArgument(`${at}.value`, `must be finite, got ${metric.value}`);
    const key = `${metric.name}\u0000${metric.evalSet}\u0000${metric.segment}`;
    if (seen.has(key))
      throw invalidArgument(
        at,
        `duplicates ${metric.name} on eval set ${metric.evalSet}${metric.segment ? ` segment ${metric.segment}` : ''}`,
      );
    seen.add(key);
  });
  return metrics;
}

export function checkServingProfile(field: string, profile: ServingProfile | undefined): void {
  if (!profile)
    throw invalidArgument(field, 'is required: latency per batch size and cost per 1M predictions');
  required(`${field}.backend`, profile.backend, 64);
  if (profile.latency.length === 0)
    throw invalidArgument(`${field}.latency`, 'must have at least one batch size');
  const sizes = new Set<number>();
  profile.latency.forEach((point, index) => {
    const at = `${field}.latency[${index}]`;
    if (!Number.isInteger(point.batchSize) || point.batchSize < 1)
      throw invalidArgument(`${at}.batch_size`, `must be >= 1, got ${point.batchSize}`);
    if (sizes.has(point.batchSize))
      throw invalidArgument(`${at}.batch_size`, `duplicates batch size ${point.batchSize}`);
    sizes.add(point.batchSize);
    checkFinite(`${at}.p50_ms`, point.p50Ms, 0);
    checkFinite(`${at}.p99_ms`, point.p99Ms, 0);
    if (point.p99Ms < point.p50Ms)
      throw invalidArgument(`${at}.p99_ms`, `must be >= p50_ms (${point.p50Ms}), got ${point.p99Ms}`);
  });
  // Zero would read as "free" to the gate; an unmeasured cost is an error, not a bargain.
  if (!(profile.costPerMillion > 0) || !Number.isFinite(profile.costPerMillion))
    throw invalidArgument(
      `${field}.cost_per_million`,
      `must be a finite estimate > 0, got ${profile.costPerMillion}`,
    );
  checkText(`${field}.cost_currency`, profile.costCurrency, 8);
}

export function checkSignature(field: string, signature: Signature | undefined): void {
  if (!signature) throw invalidArgument(field, 'is required (input and output names, dtypes and shapes)');
  for (const [part, specs] of [
    ['inputs', signature.inputs],
    ['outputs', signature.outputs],
  ] as const) {
    if (specs.length === 0) throw invalidArgument(`${field}.${part}`, 'must have at least one tensor');
    const names = new Set<string>();
    specs.forEach((spec, index) => {
      const at = `${field}.${part}[${index}]`;
      required(`${at}.name`, spec.name, 128);
      if (names.has(spec.name)) throw invalidArgument(`${at}.name`, `duplicates ${spec.name}`);
      names.add(spec.name);
      if (!DTYPES.has(spec.dtype))
        throw invalidArgument(
          `${at}.dtype`,
          `must be one of ${[...DTYPES].join(', ')}, got ${JSON.stringify(spec.dtype)}`,
        );
      if (spec.shape.length > 8) throw invalidArgument(`${at}.shape`, 'must have at most 8 dimensions');
      spec.shape.forEach((dim, d) => {
        if (dim < -1n || dim === 0n)
          throw invalidArgument(`${at}.shape[${d}]`, `must be -1 (any) or >= 1, got ${dim}`);
      });
    });
  }
}

const MAX_PAGE = 1000;

export function pageSize(field: string, requested: number, fallback: number): number {
  if (requested < 0) throw invalidArgument(field, `must be >= 0, got ${requested}`);
  return requested === 0 ? fallback : Math.min(requested, MAX_PAGE);
}

/** Page tokens are the offset as text: opaque to clients, simple to check. */
export function pageOffset(field: string, token: string): number {
  if (!token) return 0;
  if (!/^\d{1,9}$/.test(token))
    throw invalidArgument(field, 'must be a next_page_token from an earlier response');
  return Number(token);
}
