import type { ErrorWindowSchema } from '@ballast/contracts/ballast/monitor/v1/monitor_pb.js';
import type { MessageInitShape } from '@bufbuild/protobuf';
import type { MonitorDeps } from './deps.js';
import { windowMs } from './model-baseline.js';
import { errorWindow } from './report.js';
import { addSums, type ErrorKey, type ErrorSums, readErrors } from './store/errors.js';

/** Error of joined actuals per window and segment (GetError). */

export interface ErrorQuery {
  model: string;
  /** 0: every version. */
  version: number;
  start?: number | undefined;
  end?: number | undefined;
  /** Undefined: every segment. */
  segment?: string | undefined;
  /** One window per segment spanning the whole range, versions added together. */
  mergeWindows: boolean;
}

export class ErrorWindows {
  constructor(private readonly deps: Pick<MonitorDeps, 'sql' | 'baselines' | 'settings'>) {}

  async read(q: ErrorQuery): Promise<MessageInitShape<typeof ErrorWindowSchema>[]> {
    const { model } = q;
    const sums = await readErrors(this.deps.sql(), {
      model,
      version: q.version,
      start: q.start,
      end: q.end,
      segment: q.segment,
    });
    const width = async (v: number) => {
      const b = await this.deps.baselines.get(model, v);
      return b ? windowMs(b.config) : this.deps.settings.windowMs;
    };
    if (q.mergeWindows) {
      const merged = new Map<string, { key: ErrorKey; s: ErrorSums; end: number }>();
      for (const [key, s] of sums) {
        const end = key.windowStart + (await width(key.version));
        const m = merged.get(key.segment);
        if (!m) merged.set(key.segment, { key: { ...key, version: 0 }, s: { ...s }, end });
        else {
          m.key.windowStart = Math.min(m.key.windowStart, key.windowStart);
          m.end = Math.max(m.end, end);
          addSums(m.s, s);
        }
      }
      return [...merged.values()]
        .sort((a, b) => (a.key.segment < b.key.segment ? -1 : 1))
        .map((m) => errorWindow(m.key, m.s, m.end - m.key.windowStart));
    }
    const windows = [];
    for (const [key, s] of sums) windows.push(errorWindow(key, s, await width(key.version)));
    return windows;
  }
}
