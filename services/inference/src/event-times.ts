import { invalidArgument } from '@ballast/grpc-kit';
import { type Timestamp, timestampMs } from '@bufbuild/protobuf/wkt';

/**
 * How far ahead of this server's clock a row's timestamp may be. Past it the time is a
 * mistake (seconds read as milliseconds, a wrong year), not clock skew between hosts, and
 * monitor would file the row in a window that has not happened yet.
 */
export const MAX_FUTURE_MS = 5 * 60_000;

/**
 * Each row's event time in milliseconds since the epoch, for the prediction log: the row's
 * `timestamp`, or `now` where it has none. Undefined when no row has one, so that live
 * traffic logs no per-row times at all (the record's own time says it).
 */
export function rowEventTimes(
  rows: readonly { timestamp?: Timestamp | undefined }[],
  now: number,
): number[] | undefined {
  if (!rows.some((row) => row.timestamp)) return undefined;
  return rows.map((row, i) => {
    if (!row.timestamp) return now;
    const ms = timestampMs(row.timestamp);
    if (!Number.isFinite(ms)) throw invalidArgument(`rows[${i}].timestamp`, 'must be a valid time');
    if (ms > now + MAX_FUTURE_MS) {
      throw invalidArgument(
        `rows[${i}].timestamp`,
        `must be at most ${MAX_FUTURE_MS / 60_000} minutes in the future (got ${new Date(ms).toISOString()})`,
      );
    }
    return ms;
  });
}
