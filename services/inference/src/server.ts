import type { InferenceService } from '@ballast/contracts/ballast/inference/v1/inference_pb.js';
import type { ServiceImpl } from '@ballast/grpc-kit';

/**
 * The inference service's RPC handlers, kept thin over the domain modules. The contract has
 * no RPCs yet: they arrive with the inference service's issue, and the compiler requires a
 * handler here for each one it adds.
 */
export function inferenceService(): ServiceImpl<typeof InferenceService> {
  return {};
}
