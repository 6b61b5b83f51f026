import type { FeatureService } from '@ballast/contracts/ballast/feature/v1/feature_pb.js';
import type { ServiceImpl } from '@ballast/grpc-kit';
import type { ServiceStore } from '@ballast/storage';

/**
 * The feature service's RPC handlers, kept thin over the domain modules. The contract has
 * no RPCs yet: they arrive with the feature service's issue, and the compiler requires a
 * handler here for each one it adds.
 */
export function featureService(_store: ServiceStore): ServiceImpl<typeof FeatureService> {
  return {};
}
