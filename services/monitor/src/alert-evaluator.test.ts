import {
  type Alert,
  AlertMetric,
  type AlertRule,
  AlertRuleSchema,
  AlertState,
} from '@ballast/contracts/ballast/monitor/v1/monitor_pb.js';
import { create } from '@bufbuild/protobuf';
import { durationFromMs, timestampFromMs, timestampMs } from '@bufbuild/protobuf/wkt';
import { describe, expect, it } from 'vitest';
import { alertId, evaluate, type Point, type Series } from './alert-evaluator.js';

const W = 60_000;
const T0 = Date.UTC(2026, 0, 5);
const NOW = T0 + 100 * W;

/** Drift share at or above 0.5 for 2 windows (unless `forMs` says otherwise) in `segment`. */
function rule({ segment = '*', forMs = 2 * W }: { segment?: string; forMs?: number } = {}): AlertRule {
  return create(AlertRuleSchema, {
    model: 'demand',
    name: 'drift',
    metric: AlertMetric.DRIFT_SHARE,
    threshold: 0.5,
    ...(forMs > 0 ? { for: durationFromMs(forMs) } : {}),
    segment,
  });
}

/** One value per window from T0 on, all of version 1. */
function points(values: number[], version = 1): Point[] {
  return values.map((value, i) => ({ windowStart: T0 + i * W, value, version }));
}

function series(bySegment: Record<string, number[]>): Series {
  return { points: new Map(Object.entries(bySegment).map(([s, v]) => [s, points(v)])), width: W };
}

/** An alert `evaluate` fired on `segment`, as stored with its latest `value`. */
function firing(r: AlertRule, segment: string, value: number): Alert {
  const [verdict] = evaluate(r, series({ [segment]: [1, 1, 1] }), new Map(), T0);
  const alert = verdict?.transition?.alert;
  if (!alert) throw new Error('expected an alert to fire');
  return { ...alert, value };
}

describe('alert evaluator', () => {
  it('holds an alert back until the run at or above the threshold spans the rule’s for, then fires it', () => {
    const r = rule();
    // Two windows at or above 0.5 span 2 windows of time: the "for" of 2 windows is met.
    const pending = evaluate(r, series({ w1: [0.1, 0.6] }), new Map(), NOW);
    expect(pending).toEqual([{ segment: 'w1', value: 0.6, firing: false }]);

    const [verdict] = evaluate(r, series({ w1: [0.1, 0.6, 0.5] }), new Map(), NOW);
    expect(verdict?.firing).toBe(false);
    expect(verdict?.transition?.kind).toBe('fire');
    const alert = verdict?.transition?.alert as Alert;
    expect(alert.id).toBe(alertId('demand', 'drift', 'w1', T0 + W));
    expect(alert.state).toBe(AlertState.FIRING);
    expect(alert.value).toBe(0.5);
    expect(alert.threshold).toBe(0.5);
    expect(alert.version).toBe(1);
    expect(alert.firedVersion).toBe(1);
    expect(timestampMs(alert.activeSince as never)).toBe(T0 + W);
    expect(timestampMs(alert.firedAt as never)).toBe(NOW);
  });

  it('fires on the first window at or above the threshold when the rule has no for', () => {
    const [verdict] = evaluate(rule({ forMs: 0 }), series({ w1: [0.1, 0.9] }), new Map(), NOW);
    expect(verdict?.transition?.kind).toBe('fire');
  });

  it('starts the run again after a window below the threshold', () => {
    const verdicts = evaluate(rule(), series({ w1: [0.9, 0.9, 0.9, 0.2, 0.9] }), new Map(), NOW);
    expect(verdicts).toEqual([{ segment: 'w1', value: 0.9, firing: false }]);
  });

  it('keeps a firing alert while the latest window holds, however short the run has become', () => {
    const r = rule();
    const open = new Map([['w1', firing(r, 'w1', 0.9)]]);
    // The run is one window long now (below the for of 2), and the alert stays as it is.
    const same = evaluate(r, series({ w1: [0.1, 0.9] }), open, NOW);
    expect(same).toEqual([{ segment: 'w1', value: 0.9, firing: true }]);

    const [moved] = evaluate(r, series({ w1: [0.1, 0.7] }), open, NOW);
    expect(moved?.firing).toBe(true);
    expect(moved?.transition?.kind).toBe('update');
    expect(moved?.transition?.alert.value).toBe(0.7);
    expect(moved?.transition?.alert.state).toBe(AlertState.FIRING);
    expect(open.get('w1')?.value).toBe(0.9);
  });

  it('follows the latest window’s version while firing and keeps the version it fired on', () => {
    const r = rule();
    const open = new Map([['w1', firing(r, 'w1', 0.9)]]);
    // A hot swap: the run goes on with windows of version 2.
    const swapped: Series = {
      points: new Map([['w1', [...points([0.9, 0.9]), ...points([0.9], 2)]]]),
      width: W,
    };
    const [verdict] = evaluate(r, swapped, open, NOW);
    expect(verdict?.transition?.kind).toBe('update');
    expect(verdict?.transition?.alert.version).toBe(2);
    expect(verdict?.transition?.alert.firedVersion).toBe(1);
  });

  it('resolves when the latest window falls below the threshold, and only then', () => {
    const r = rule();
    const open = new Map([['w1', firing(r, 'w1', 0.9)]]);
    const [verdict] = evaluate(r, series({ w1: [0.9, 0.9, 0.49] }), open, NOW);
    expect(verdict?.firing).toBe(false);
    expect(verdict?.transition?.kind).toBe('resolve');
    const alert = verdict?.transition?.alert as Alert;
    expect(alert.state).toBe(AlertState.RESOLVED);
    expect(alert.value).toBe(0.49);
    expect(alert.resolvedAt).toEqual(timestampFromMs(NOW));
    expect(alert.id).toBe(open.get('w1')?.id);
    expect(open.get('w1')?.state).toBe(AlertState.FIRING);
  });

  it('leaves a firing alert alone while its segment has no values', () => {
    const r = rule();
    const open = new Map([['w2', firing(r, 'w2', 0.9)]]);
    expect(evaluate(r, series({ w1: [0.1] }), open, NOW)).toEqual([
      { segment: 'w1', value: 0.1, firing: false },
    ]);
  });

  it('judges each segment of "*" apart (all rows only without segments), or just the one named', () => {
    const data = { '': [0.9, 0.9], w1: [0.9, 0.9], w2: [0.1, 0.1] };
    const fired = (r: AlertRule, s: Series) =>
      evaluate(r, s, new Map(), NOW).map((v) => [v.segment, v.transition?.kind]);
    expect(fired(rule(), series(data))).toEqual([
      ['w1', 'fire'],
      ['w2', undefined],
    ]);
    expect(fired(rule(), series({ '': [0.9, 0.9] }))).toEqual([['', 'fire']]);
    expect(fired(rule({ segment: '' }), series(data))).toEqual([['', 'fire']]);
    expect(fired(rule({ segment: 'w2' }), series(data))).toEqual([['w2', undefined]]);
  });

  it('does not judge all rows under "*" when the segments are there but too small for a value', () => {
    // The demo's first windows: every warehouse below its minimum sample, all rows above it.
    const fired = (s: Series) => evaluate(rule(), s, new Map(), NOW).map((v) => v.segment);
    expect(fired({ ...series({ '': [0.9, 0.9] }), segmented: true })).toEqual([]);
    expect(fired({ ...series({ '': [0.9, 0.9] }), segmented: false })).toEqual(['']);
  });
});
