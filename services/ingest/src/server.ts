import type { IngestService } from '@ballast/contracts/ballast/ingest/v1/ingest_pb.js';
import type { ServiceImpl } from '@ballast/grpc-kit';
import type { ServiceStore } from '@ballast/storage';

/**
 * The ingest service's RPC handlers, kept thin over the domain modules. The contract has
 * no RPCs yet: they arrive with the ingest service's issue, and the compiler requires a
 * handler here for each one it adds.
 */
export function ingestService(_store: ServiceStore): ServiceImpl<typeof IngestService> {
  return {};
}
