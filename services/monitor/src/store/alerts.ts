import {
  type Alert,
  type AlertRule,
  AlertRuleSchema,
  AlertSchema,
  AlertState,
} from '@ballast/contracts/ballast/monitor/v1/monitor_pb.js';
import type { Sql } from '@ballast/storage';
import { fromJson, type JsonValue, toJson } from '@bufbuild/protobuf';
import { stateName } from '../alert-rules.js';

/**
 * Alert rules and alerts, each kept as its message's JSON beside the columns it is looked up
 * by. An alert's row is unique per rule and segment while firing (the table's partial
 * index), which is what keeps two replicas from firing it twice.
 */

export async function putRule(sql: Sql, rule: AlertRule): Promise<void> {
  await sql.query(
    `INSERT INTO alert_rules (model, name, rule) VALUES ($1, $2, $3)
       ON CONFLICT (model, name) DO UPDATE SET rule = EXCLUDED.rule`,
    [rule.model, rule.name, JSON.stringify(toJson(AlertRuleSchema, rule))],
  );
}

/** Stores `rule` only when its model has no rule at all (a user's rules are never joined by a default). */
export async function putFirstRule(sql: Sql, rule: AlertRule): Promise<void> {
  await sql.query(
    `INSERT INTO alert_rules (model, name, rule)
       SELECT $1, $2, $3 WHERE NOT EXISTS (SELECT 1 FROM alert_rules WHERE model = $1)
       ON CONFLICT DO NOTHING`,
    [rule.model, rule.name, JSON.stringify(toJson(AlertRuleSchema, rule))],
  );
}

export async function readRules(sql: Sql, model: string): Promise<AlertRule[]> {
  const { rows } = await sql.query<{ rule: JsonValue }>(
    'SELECT rule FROM alert_rules WHERE model = $1 ORDER BY name',
    [model],
  );
  return rows.map((r) => fromJson(AlertRuleSchema, r.rule));
}

/** Alerts newest first, of one model (empty: all) in one state (UNSPECIFIED: any); at most 1000. */
export async function listAlerts(sql: Sql, model: string, state: AlertState): Promise<Alert[]> {
  const { rows } = await sql.query<{ alert: JsonValue }>(
    `SELECT alert FROM alerts WHERE ($1 = '' OR model = $1) AND ($2 = '' OR state = $2)
     ORDER BY updated_at DESC, id LIMIT 1000`,
    [model, state === AlertState.UNSPECIFIED ? '' : stateName(state)],
  );
  return rows.map((r) => fromJson(AlertSchema, r.alert));
}

/** The firing alerts of a model, newest first (the dashboard's list). */
export async function firingAlerts(sql: Sql, model: string, limit: number): Promise<Alert[]> {
  const { rows } = await sql.query<{ alert: JsonValue }>(
    `SELECT alert FROM alerts WHERE model = $1 AND state = 'firing' ORDER BY updated_at DESC LIMIT $2`,
    [model, limit],
  );
  return rows.map((r) => fromJson(AlertSchema, r.alert));
}

/** The database's clock (ms): `updated_at` is set by it, so changes are read back against it. */
export async function databaseNow(sql: Sql): Promise<number> {
  const { rows } = await sql.query<{ t: string }>(
    'SELECT (extract(epoch from clock_timestamp()) * 1000)::bigint AS t',
  );
  return Number(rows[0]?.t);
}

/** Alerts of a model (empty: all) updated after `sinceMs`, oldest change first, with when (ms). */
export async function alertsUpdatedSince(
  sql: Sql,
  model: string,
  sinceMs: number,
): Promise<{ alert: Alert; at: number }[]> {
  const { rows } = await sql.query<{ alert: JsonValue; at: string }>(
    `SELECT alert, (extract(epoch from updated_at) * 1000)::bigint AS at FROM alerts
     WHERE ($1 = '' OR model = $1) AND updated_at > to_timestamp($2 / 1000.0) ORDER BY updated_at, id`,
    [model, sinceMs],
  );
  return rows.map((r) => ({ alert: fromJson(AlertSchema, r.alert), at: Number(r.at) }));
}

/** A rule's firing alerts by segment. */
export async function firingAlertsOf(sql: Sql, rule: AlertRule): Promise<Map<string, Alert>> {
  const { rows } = await sql.query<{ segment: string; alert: JsonValue }>(
    `SELECT segment, alert FROM alerts WHERE model = $1 AND rule = $2 AND state = 'firing'`,
    [rule.model, rule.name],
  );
  return new Map(rows.map((r) => [r.segment, fromJson(AlertSchema, r.alert)]));
}

/** False when an open alert for the rule and segment exists already (another replica fired it). */
export async function insertAlert(sql: Sql, alert: Alert): Promise<boolean> {
  const { rows } = await sql.query(
    `INSERT INTO alerts (id, model, rule, segment, state, alert) VALUES ($1, $2, $3, $4, 'firing', $5)
     ON CONFLICT DO NOTHING RETURNING 1`,
    [alert.id, alert.model, alert.rule, alert.segment, JSON.stringify(toJson(AlertSchema, alert))],
  );
  return rows.length > 0;
}

export async function updateAlert(sql: Sql, alert: Alert): Promise<void> {
  await sql.query(`UPDATE alerts SET state = $2, alert = $3, updated_at = now() WHERE id = $1`, [
    alert.id,
    stateName(alert.state),
    JSON.stringify(toJson(AlertSchema, alert)),
  ]);
}
