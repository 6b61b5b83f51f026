import { createHash } from 'node:crypto';
import {
  type Alert,
  type AlertRule,
  AlertSchema,
  AlertState,
} from '@ballast/contracts/ballast/monitor/v1/monitor_pb.js';
import { clone, create } from '@bufbuild/protobuf';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { durationMs } from './model-baseline.js';

/**
 * A rule's verdict over its series, without I/O. The condition is recomputed from the
 * windows every time (so a restart loses nothing): per segment, the run of consecutive
 * windows whose value is at or above the threshold, ending at the latest window. The alert
 * fires once that run spans the rule's `for` (window time), stays one alert while the run
 * lasts (however short it has become), and resolves when the latest window no longer meets
 * the threshold.
 */

export interface Point {
  windowStart: number;
  value: number;
  version: number;
}

/** A rule's values per segment ('' = all rows), oldest window first, and the window length. */
export interface Series {
  points: Map<string, Point[]>;
  width: number;
  /**
   * Whether the data has segments, whatever had enough values to judge: segment windows too
   * small for a verdict leave only all rows with points, and "*" must not judge all rows then.
   * Unset: whether any segment has points.
   */
  segmented?: boolean;
}

export type Transition =
  /** A new alert; it still has to win the insert (another replica may have fired it). */
  | { kind: 'fire'; alert: Alert }
  /** A firing alert whose latest value or version changed. */
  | { kind: 'update'; alert: Alert }
  | { kind: 'resolve'; alert: Alert };

export interface Verdict {
  segment: string;
  /** The latest window's value. */
  value: number;
  /** The condition holds and the segment's alert was firing before this evaluation. */
  firing: boolean;
  transition?: Transition | undefined;
}

/** The same alert for the same run, whichever replica computes it. */
export function alertId(model: string, rule: string, segment: string, activeSince: number): string {
  return createHash('sha256')
    .update(`${model}\u0000${rule}\u0000${segment}\u0000${activeSince}`)
    .digest('hex')
    .slice(0, 24);
}

/**
 * Empty scope: all rows only; "*": each segment separately (all rows only when the data has
 * no segments); else that segment.
 */
export function inScope(scope: string, segment: string, segmented: boolean): boolean {
  if (scope === '*') return segment !== '' || !segmented;
  return scope === segment;
}

/**
 * One verdict per segment in the rule's scope that has a value, given the rule's firing
 * alerts by segment (`open`) and the time (`now`, ms) to stamp on what fires or resolves. A
 * segment with a firing alert and no values keeps its alert as it is.
 */
export function evaluate(
  rule: AlertRule,
  series: Series,
  open: ReadonlyMap<string, Alert>,
  now: number,
): Verdict[] {
  const { points, width } = series;
  const forMs = durationMs(rule.for, 0);
  const segmented = series.segmented ?? [...points.keys()].some((s) => s !== '');
  const verdicts: Verdict[] = [];
  for (const segment of new Set([...points.keys(), ...open.keys()])) {
    if (!inScope(rule.segment, segment, segmented)) continue;
    const list = points.get(segment) ?? [];
    const last = list[list.length - 1];
    if (!last) continue;
    const current = open.get(segment);
    let first = list.length;
    while (first > 0 && (list[first - 1] as Point).value >= rule.threshold) first--;
    const holding = first < list.length;
    const activeSince = holding ? (list[first] as Point).windowStart : 0;
    const spans = holding && last.windowStart + width - activeSince >= forMs;
    const verdict: Verdict = { segment, value: last.value, firing: holding && !!current };
    if (holding && spans && !current) {
      const alert = create(AlertSchema, {
        id: alertId(rule.model, rule.name, segment, activeSince),
        model: rule.model,
        rule: rule.name,
        segment,
        state: AlertState.FIRING,
        metric: rule.metric,
        value: last.value,
        threshold: rule.threshold,
        version: last.version,
        firedVersion: last.version,
        activeSince: timestampFromMs(activeSince),
        firedAt: timestampFromMs(now),
      });
      verdict.transition = { kind: 'fire', alert };
    } else if (holding && current) {
      if (current.value !== last.value || current.version !== last.version) {
        const alert = clone(AlertSchema, current);
        alert.value = last.value;
        alert.version = last.version;
        verdict.transition = { kind: 'update', alert };
      }
    } else if (!holding && current) {
      const alert = clone(AlertSchema, current);
      alert.state = AlertState.RESOLVED;
      alert.value = last.value;
      alert.resolvedAt = timestampFromMs(now);
      verdict.transition = { kind: 'resolve', alert };
    }
    verdicts.push(verdict);
  }
  return verdicts;
}
