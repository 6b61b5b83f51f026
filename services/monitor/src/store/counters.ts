import type { Sql } from '@ballast/storage';

/** Named running totals (GetMonitorStatus): what was absorbed, skipped, joined, delivered. */

export async function addCounter(sql: Sql, name: string, by: number): Promise<void> {
  if (by === 0) return;
  await sql.query(
    `INSERT INTO counters (name, value) VALUES ($1, $2)
     ON CONFLICT (name) DO UPDATE SET value = counters.value + EXCLUDED.value`,
    [name, by],
  );
}

export async function readCounters(sql: Sql): Promise<Record<string, bigint>> {
  const { rows } = await sql.query<{ name: string; value: string | number }>(
    'SELECT name, value FROM counters',
  );
  return Object.fromEntries(rows.map((r) => [r.name, BigInt(r.value)]));
}
