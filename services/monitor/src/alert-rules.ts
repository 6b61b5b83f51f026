import {
  AlertMetric,
  type AlertRule,
  AlertRuleSchema,
  AlertState,
} from '@ballast/contracts/ballast/monitor/v1/monitor_pb.js';
import { invalidArgument } from '@ballast/grpc-kit';
import { create } from '@bufbuild/protobuf';
import { durationFromMs } from '@bufbuild/protobuf/wkt';

/** What a rule may say, and the rule every model gets when it has none. */

export const DEFAULT_RULE_NAME = 'default_drift';

export function validateRule(rule: AlertRule | undefined): AlertRule {
  if (!rule) throw invalidArgument('rule', 'is required');
  if (!rule.model.trim()) throw invalidArgument('rule.model', 'must not be empty');
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(rule.name))
    throw invalidArgument('rule.name', 'must be 1-64 letters, digits, "_", "." or "-"');
  if (rule.metric === AlertMetric.UNSPECIFIED || !AlertMetric[rule.metric])
    throw invalidArgument('rule.metric', 'must be a known metric');
  if (!Number.isFinite(rule.threshold)) throw invalidArgument('rule.threshold', 'must be a finite number');
  if (rule.for && (rule.for.seconds < 0n || rule.for.nanos < 0))
    throw invalidArgument('rule.for', 'must be >= 0');
  if (rule.webhookUrl) {
    let url: URL;
    try {
      url = new URL(rule.webhookUrl);
    } catch {
      throw invalidArgument('rule.webhook_url', 'must be an absolute http(s) URL');
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:')
      throw invalidArgument('rule.webhook_url', 'must be an absolute http(s) URL');
  }
  return { ...rule, model: rule.model.trim() };
}

/**
 * Drift share at or above `threshold` in any segment for `windows` windows (sustained: one
 * noisy window does not retrain), asking for a retraining.
 */
export function defaultRule(
  model: string,
  windowMs: number,
  d: { windows: number; threshold: number },
): AlertRule {
  return create(AlertRuleSchema, {
    model,
    name: DEFAULT_RULE_NAME,
    metric: AlertMetric.DRIFT_SHARE,
    threshold: d.threshold,
    for: durationFromMs(d.windows * windowMs),
    segment: '*',
    retrain: true,
  });
}

/** An alert state as stored and as a metric label. */
export function stateName(state: AlertState): string {
  return state === AlertState.FIRING ? 'firing' : state === AlertState.RESOLVED ? 'resolved' : '';
}
