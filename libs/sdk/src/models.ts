import type { RegistryService } from '@ballast/contracts/ballast/registry/v1/registry_pb.js';
import { RpcError, type ServiceClient } from '@ballast/grpc-kit';
import { status } from '@grpc/grpc-js';

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

/** A NOT_FOUND answer to a call about `model` as an UnknownModelError; any other error as it is. */
export function unknownModel(err: unknown, model: string): unknown {
  return err instanceof RpcError && err.code === status.NOT_FOUND
    ? new UnknownModelError(model, err.details)
    : err;
}

/** Throws UnknownModelError unless the registry knows `model`. */
export async function requireModel(
  registry: ServiceClient<typeof RegistryService>,
  model: string,
): Promise<void> {
  try {
    await registry.getModel({ name: model });
  } catch (err) {
    throw unknownModel(err, model);
  }
}
