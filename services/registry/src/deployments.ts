import {
  type Deployment,
  DeploymentAction,
  GateVerdictSchema,
} from '@ballast/contracts/ballast/registry/v1/registry_pb.js';
import { failedPrecondition, invalidArgument, notFound } from '@ballast/grpc-kit';
import type { Sql } from '@ballast/storage';
import { create } from '@bufbuild/protobuf';
import type { Caller } from './auth.js';
import { effectivePolicy, evaluateGate } from './gate.js';
import {
  aliasVersion,
  getModel,
  getVersion,
  listDeployments,
  lockDeployments,
  recordDeployment,
} from './store.js';
import { PRODUCTION } from './validation.js';

/**
 * Alias changes: Promote (through the gate), Rollback, SetAlias and DeleteAlias. Each runs in
 * one transaction under the deployments lock, so racing calls apply one after another and
 * leave one consistent history; a refused or failed change writes nothing.
 */

export interface PromoteInput {
  model: string;
  version: number;
  reason: string;
  force: boolean;
}

export async function promote(sql: Sql, input: PromoteInput, caller: Caller): Promise<Deployment> {
  if (input.force && !input.reason.trim())
    throw invalidArgument(
      'reason',
      'is required when force is set: the history records why the gate was overridden',
    );
  return sql.transaction(async (tx) => {
    await lockDeployments(tx);
    const model = await getModel(tx, input.model);
    const candidate = await getVersion(tx, input.model, input.version);
    const current = await aliasVersion(tx, input.model, PRODUCTION);
    // A retried or racing promotion of the version already serving changes nothing.
    if (current === input.version) return latestChange(tx, input.model, PRODUCTION);

    const production = current === undefined ? undefined : await getVersion(tx, input.model, current);
    const verdict = evaluateGate(effectivePolicy(model.task, model.policy), production, candidate);
    if (!verdict.passed && !input.force)
      throw failedPrecondition(`promotion of ${input.model} ${verdict.summary}`);
    return recordDeployment(tx, {
      model: input.model,
      alias: PRODUCTION,
      fromVersion: current ?? 0,
      toVersion: input.version,
      action: DeploymentAction.PROMOTE,
      actor: caller.actor,
      reason: input.reason,
      verdict: create(GateVerdictSchema, { ...verdict, forced: !verdict.passed }),
    });
  });
}

/**
 * Production goes back to the version the current one replaced. The history is read as a
 * stack (a promotion pushes, a rollback pops), so rolling back twice from v3 (after v1 -> v2
 * -> v3) lands on v1, not back on v3.
 */
export async function rollback(
  sql: Sql,
  input: { model: string; reason: string },
  caller: Caller,
): Promise<Deployment> {
  return sql.transaction(async (tx) => {
    await lockDeployments(tx);
    await getModel(tx, input.model);
    const history = await listDeployments(tx, {
      model: input.model,
      alias: PRODUCTION,
      order: 'asc',
      limit: 1_000_000,
    });
    const stack: number[] = [];
    for (const change of history) {
      if (change.action === DeploymentAction.ROLLBACK) stack.pop();
      else stack.push(change.toVersion);
    }
    const current = stack.at(-1);
    const target = stack.at(-2);
    if (!current || !target)
      throw failedPrecondition(
        `model ${input.model} has no earlier production version to roll back to${current ? ` (v${current} is the first)` : ''}`,
      );
    return recordDeployment(tx, {
      model: input.model,
      alias: PRODUCTION,
      fromVersion: current,
      toVersion: target,
      action: DeploymentAction.ROLLBACK,
      actor: caller.actor,
      reason: input.reason,
      verdict: create(GateVerdictSchema, {
        passed: true,
        baselineVersion: current,
        summary: `rollback to v${target}, which served before v${current}: the gate is not applied`,
      }),
    });
  });
}

export interface SetAliasInput {
  model: string;
  alias: string;
  version: number;
  reason: string;
}

export async function setAlias(sql: Sql, input: SetAliasInput, caller: Caller): Promise<Deployment> {
  if (input.alias === PRODUCTION)
    throw failedPrecondition(`alias ${PRODUCTION} moves only through Promote (behind the gate) and Rollback`);
  return sql.transaction(async (tx) => {
    await lockDeployments(tx);
    await getVersion(tx, input.model, input.version);
    const current = await aliasVersion(tx, input.model, input.alias);
    if (current === input.version) return latestChange(tx, input.model, input.alias);
    return recordDeployment(tx, {
      model: input.model,
      alias: input.alias,
      fromVersion: current ?? 0,
      toVersion: input.version,
      action: DeploymentAction.SET_ALIAS,
      actor: caller.actor,
      reason: input.reason,
    });
  });
}

export async function deleteAlias(
  sql: Sql,
  input: { model: string; alias: string; reason: string },
  caller: Caller,
): Promise<Deployment> {
  if (input.alias === PRODUCTION && !input.reason.trim())
    throw invalidArgument('reason', `is required to delete ${PRODUCTION}: nothing will be served`);
  return sql.transaction(async (tx) => {
    await lockDeployments(tx);
    await getModel(tx, input.model);
    const current = await aliasVersion(tx, input.model, input.alias);
    if (current === undefined) throw notFound(`model ${input.model} has no alias ${input.alias}`);
    return recordDeployment(tx, {
      model: input.model,
      alias: input.alias,
      fromVersion: current,
      toVersion: 0,
      action: DeploymentAction.DELETE_ALIAS,
      actor: caller.actor,
      reason: input.reason,
    });
  });
}

async function latestChange(tx: Sql, model: string, alias: string): Promise<Deployment> {
  const [latest] = await listDeployments(tx, { model, alias, order: 'desc', limit: 1 });
  if (!latest) throw new Error(`alias ${alias} of ${model} is set but has no deployment record`);
  return latest;
}
