import type { Sql } from '@ballast/storage';

/**
 * The state of each (view version, dataset version)'s latest materialization run (table
 * `materialization_runs`): a background job that fails is recorded here with its reason, so
 * a failure is visible through the API rather than only in the queue's retention.
 */

export type RunState = 'running' | 'succeeded' | 'failed';

export interface MaterializationRun {
  view: string;
  viewVersion: string;
  datasetVersion: string;
  state: RunState;
  reason: string;
  attempts: number;
  trigger: string;
  records: number;
  rows: number;
  entities: number;
  skipped: number;
  startedAt: Date;
  finishedAt: Date | null;
}

export interface RunFilter {
  view: string;
  viewVersion: string;
  datasetVersion: string;
  state: RunState | undefined;
  limit: number;
}

interface RunRow {
  view_name: string;
  view_version: string;
  dataset_version: string;
  state: RunState;
  reason: string;
  attempts: number;
  trigger: string;
  records: string;
  row_count: string;
  entities: string;
  skipped: string;
  started_at: Date;
  finished_at: Date | null;
}

function fromRow(row: RunRow): MaterializationRun {
  return {
    view: row.view_name,
    viewVersion: row.view_version,
    datasetVersion: row.dataset_version,
    state: row.state,
    reason: row.reason,
    attempts: Number(row.attempts),
    trigger: row.trigger,
    records: Number(row.records),
    rows: Number(row.row_count),
    entities: Number(row.entities),
    skipped: Number(row.skipped),
    startedAt: row.started_at,
    finishedAt: row.finished_at,
  };
}

export class MaterializationRuns {
  constructor(private readonly sql: () => Sql) {}

  /** Marks a run started (one more attempt); counts and reason of the previous run are cleared. */
  async start(
    view: { name: string; version: string },
    datasetVersion: string,
    trigger: string,
  ): Promise<MaterializationRun> {
    const { rows } = await this.sql().query<RunRow>(
      `INSERT INTO materialization_runs (view_name, view_version, dataset_version, state, trigger, attempts)
       VALUES ($1, $2, $3, 'running', $4, 1)
       ON CONFLICT (view_version, dataset_version) DO UPDATE SET
         state = 'running', reason = '', trigger = excluded.trigger,
         attempts = materialization_runs.attempts + 1, records = 0, row_count = 0, entities = 0,
         skipped = 0, started_at = now(), finished_at = NULL
       RETURNING *`,
      [view.name, view.version, datasetVersion, trigger],
    );
    return fromRow(rows[0] as RunRow);
  }

  async succeed(
    viewVersion: string,
    datasetVersion: string,
    counts: { records: number; rows: number; entities: number; skipped: number },
  ): Promise<MaterializationRun> {
    const { rows } = await this.sql().query<RunRow>(
      `UPDATE materialization_runs SET state = 'succeeded', reason = '', records = $3, row_count = $4,
         entities = $5, skipped = $6, finished_at = now()
       WHERE view_version = $1 AND dataset_version = $2 RETURNING *`,
      [viewVersion, datasetVersion, counts.records, counts.rows, counts.entities, counts.skipped],
    );
    return fromRow(rows[0] as RunRow);
  }

  async fail(viewVersion: string, datasetVersion: string, reason: string): Promise<void> {
    await this.sql().query(
      `UPDATE materialization_runs SET state = 'failed', reason = $3, finished_at = now()
       WHERE view_version = $1 AND dataset_version = $2`,
      [viewVersion, datasetVersion, reason],
    );
  }

  /** Newest first. */
  async list(filter: RunFilter): Promise<MaterializationRun[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    const match = (column: string, value: string | undefined) => {
      if (!value) return;
      params.push(value);
      where.push(`${column} = $${params.length}`);
    };
    match('view_name', filter.view);
    match('view_version', filter.viewVersion);
    match('dataset_version', filter.datasetVersion);
    match('state', filter.state);
    params.push(filter.limit);
    const { rows } = await this.sql().query<RunRow>(
      `SELECT * FROM materialization_runs ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
       ORDER BY started_at DESC, view_version, dataset_version LIMIT $${params.length}`,
      params,
    );
    return rows.map(fromRow);
  }
}
