import type { MonitorService } from '@ballast/contracts/ballast/monitor/v1/monitor_pb.js';
import type { ServiceImpl } from '@ballast/grpc-kit';
import type { ServiceStore } from '@ballast/storage';

/**
 * The monitor service's RPC handlers, kept thin over the domain modules. The contract has
 * no RPCs yet: they arrive with the monitor service's issue, and the compiler requires a
 * handler here for each one it adds.
 */
export function monitorService(_store: ServiceStore): ServiceImpl<typeof MonitorService> {
  return {};
}
