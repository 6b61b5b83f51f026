import { execute, type PlanStep, plan } from './apply.js';
import type { BallastFile } from './ballast-file.js';
import { withClients } from './clients.js';
import { withTrainingQueue } from './training.js';

/**
 * `datasets create` and `models create`: `apply` for one object of one kind, so a create from
 * flags or from a file is as idempotent as `apply` (an unchanged object is left alone).
 * Resolves to what was done: created, updated or unchanged.
 */
export async function applyOne(
  env: NodeJS.ProcessEnv,
  file: BallastFile,
  kind: PlanStep['kind'],
): Promise<string> {
  return withClients(env, (clients) =>
    withTrainingQueue(env, async (queue) => {
      const steps = (await plan(file, clients, queue, false)).filter((s) => s.kind === kind);
      await execute(steps);
      const [step] = steps;
      return step?.action === 'unchanged' ? 'unchanged' : `${step?.action}d`;
    }),
  );
}
