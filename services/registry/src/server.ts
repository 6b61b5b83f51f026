import type { RegistryService } from '@ballast/contracts/ballast/registry/v1/registry_pb.js';
import type { ServiceImpl } from '@ballast/grpc-kit';
import type { ServiceStore } from '@ballast/storage';

/**
 * The registry service's RPC handlers, kept thin over the domain modules. The contract has
 * no RPCs yet: they arrive with the registry service's issue, and the compiler requires a
 * handler here for each one it adds.
 */
export function registryService(_store: ServiceStore): ServiceImpl<typeof RegistryService> {
  return {};
}
