import type { RegistryService } from '@ballast/contracts/ballast/registry/v1/registry_pb.js';
import type { ServiceClient } from '@ballast/grpc-kit';
import { isNotFound } from './rpc-errors.js';

/** A command named a model no service knows: the CLI says which, and exits non-zero. */
export class UnknownModelError extends Error {
  override name = 'UnknownModelError';
  constructor(
    readonly model: string,
    detail: string,
  ) {
    super(`unknown model "${model}" (NOT_FOUND: ${detail}); \`ballast models\` lists the registered ones`);
  }
}

/** Throws UnknownModelError unless the registry knows `model`. */
export async function requireModel(
  registry: ServiceClient<typeof RegistryService>,
  model: string,
): Promise<void> {
  try {
    await registry.getModel({ name: model });
  } catch (err) {
    throw isNotFound(err) ? new UnknownModelError(model, err.details) : err;
  }
}

/**
 * What a call about `model` that failed should throw: UnknownModelError when it failed NOT_FOUND
 * because the registry does not know the model; otherwise (a version, an alias, an entity that is
 * missing; a registry that does not answer) the call's own error.
 */
export async function explainNotFound(
  err: unknown,
  registry: ServiceClient<typeof RegistryService>,
  model: string,
): Promise<unknown> {
  if (!isNotFound(err)) return err;
  try {
    await registry.getModel({ name: model });
  } catch (lookup) {
    if (isNotFound(lookup)) return new UnknownModelError(model, err.details);
  }
  return err;
}
