import { EventEmitter } from 'node:events';
import { type Alert, type AlertRule, AlertSchema } from '@ballast/contracts/ballast/monitor/v1/monitor_pb.js';
import type { Sql } from '@ballast/storage';
import { toJson } from '@bufbuild/protobuf';
import { stateName } from './alert-rules.js';
import type { MonitorMetrics } from './metrics.js';
import { addCounter } from './store/counters.js';

/**
 * Tells of an alert that fired or resolved: this replica's watchers at once, the metrics,
 * and the rule's webhook, POSTed in the background with retries (backing off, doubling)
 * so a slow receiver never holds up an evaluation.
 */

export interface NotifierOptions {
  /** Where delivered and failed attempts are counted. */
  sql: () => Sql;
  webhook?: { attempts: number; backoffMs: number; timeoutMs?: number } | undefined;
  metrics?: MonitorMetrics | undefined;
}

export class AlertNotifier {
  readonly #events = new EventEmitter();
  readonly #deliveries = new Set<Promise<void>>();

  constructor(private readonly options: NotifierOptions) {
    // One listener per open WatchAlerts stream: however many there are is fine.
    this.#events.setMaxListeners(0);
  }

  publish(alert: Alert, rule: AlertRule): void {
    this.#events.emit('alert', alert);
    this.options.metrics?.alerts.add(1, {
      model: alert.model,
      rule: rule.name,
      state: stateName(alert.state),
    });
    if (rule.webhookUrl) {
      const delivery = this.deliver(rule.webhookUrl, alert).finally(() => this.#deliveries.delete(delivery));
      this.#deliveries.add(delivery);
    }
  }

  /** Calls `listener` on every alert published here; the returned function stops it. */
  subscribe(listener: (alert: Alert) => void): () => void {
    this.#events.on('alert', listener);
    return () => this.#events.off('alert', listener);
  }

  /** Webhook deliveries in flight have finished (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.#deliveries.size > 0) await Promise.allSettled([...this.#deliveries]);
  }

  private async deliver(url: string, alert: Alert): Promise<void> {
    const { attempts = 5, backoffMs = 500, timeoutMs = 5_000 } = this.options.webhook ?? {};
    const body = JSON.stringify(toJson(AlertSchema, alert));
    for (let attempt = 1; attempt <= attempts; attempt++) {
      try {
        const res = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body,
          signal: AbortSignal.timeout(timeoutMs),
        });
        await res.body?.cancel();
        if (res.ok) {
          await addCounter(this.options.sql(), 'webhook_deliveries', 1).catch(() => {});
          return;
        }
      } catch {
        // retried below
      }
      await addCounter(this.options.sql(), 'webhook_failures', 1).catch(() => {});
      if (attempt < attempts) await new Promise((r) => setTimeout(r, backoffMs * 2 ** (attempt - 1)));
    }
  }
}
