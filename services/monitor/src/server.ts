import type { MonitorService } from '@ballast/contracts/ballast/monitor/v1/monitor_pb.js';
import type { ServiceImpl } from '@ballast/grpc-kit';
import { recordActuals } from './actuals.js';
import { Baselines } from './baselines.js';
import type { MonitorDeps } from './deps.js';
import { DriftWindows } from './drift-windows.js';
import { ErrorWindows } from './error-windows.js';
import { durationMs } from './model-baseline.js';
import { monitorStatus, operationsReport } from './operations.js';
import { actualsInput, baselineInput, driftQuery, errorQuery } from './requests.js';

const counts = (c: { matched: number; unmatched: number; duplicates: number }) => ({
  matched: BigInt(c.matched),
  unmatched: BigInt(c.unmatched),
  duplicates: BigInt(c.duplicates),
});

/** The monitor's RPC handlers, kept thin: requests.ts checks, the domain modules answer. */
export function monitorService(deps: MonitorDeps): ServiceImpl<typeof MonitorService> {
  const { sql, alerts } = deps;
  const baselines = new Baselines(deps);
  const drift = new DriftWindows(sql, baselines);
  const errors = new ErrorWindows(deps);
  return {
    setBaseline: async (req) => ({ features: await baselines.set(baselineInput(req)) }),
    getDrift: async (req) => drift.read(driftQuery(req)),
    recordActuals: async (req) => counts(await recordActuals(deps, ...actualsInput(req))),
    getError: async (req) => ({ windows: await errors.read(errorQuery(req)) }),
    putAlertRule: async (req) => ({ rule: await alerts.putRule(req.rule) }),
    listAlerts: async (req) => ({ alerts: await alerts.list(req.model, req.state) }),
    async *watchAlerts(req, ctx) {
      for await (const alert of alerts.watch(req.model, ctx.signal)) yield { alert };
    },
    getOperations: (req) =>
      operationsReport(sql(), deps.operations, req.model.trim(), durationMs(req.range, 3_600_000)),
    getMonitorStatus: () => monitorStatus(sql()),
  };
}
