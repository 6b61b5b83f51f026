import type { GetDriftResponseSchema } from '@ballast/contracts/ballast/monitor/v1/monitor_pb.js';
import { invalidArgument, notFound } from '@ballast/grpc-kit';
import type { Sql } from '@ballast/storage';
import type { MessageInitShape } from '@bufbuild/protobuf';
import type { Baselines } from './baselines.js';
import { windowMs } from './model-baseline.js';
import { driftReport } from './report.js';
import { latestWindow, newestVersion, readWindows } from './store/windows.js';

/** Drift of a model version's stored windows (GetDrift), judged when asked. */

export interface DriftQuery {
  model: string;
  /** 0: the version with the newest window. */
  version: number;
  /** Inclusive; undefined with `end`: the latest window only. */
  start?: number | undefined;
  end?: number | undefined;
  /** Undefined: every segment. */
  segment?: string | undefined;
}

const MAX_DRIFT_WINDOWS = 2_000;

export class DriftWindows {
  constructor(
    private readonly sql: () => Sql,
    private readonly baselines: Baselines,
  ) {}

  async read(q: DriftQuery): Promise<MessageInitShape<typeof GetDriftResponseSchema>> {
    const sql = this.sql;
    let version = q.version;
    if (version === 0) {
      version = (await newestVersion(sql(), q.model)) ?? 0;
      if (!version) throw notFound(`model ${q.model} has no logged predictions`);
    }
    const model = await this.baselines.require(q.model, version);
    // Each window is judged when asked: a range is bounded so an answer stays bounded.
    if (q.start !== undefined) {
      const last = q.end ?? (await latestWindow(sql(), model.model, model.version)) ?? q.start;
      if ((last - q.start) / windowMs(model.config) > MAX_DRIFT_WINDOWS)
        throw invalidArgument('start_time', `the range spans more than ${MAX_DRIFT_WINDOWS} windows`);
    }
    const windows = await readWindows(sql(), {
      model: model.model,
      version: model.version,
      start: q.start,
      end: q.end,
      segment: q.segment,
    });
    return { windows: driftReport(model, windows), version };
  }
}
