import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { envPrefix, isGrpcService } from '@ballast/config';
import { connectRedis } from '@ballast/queue';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, type RunningProcess, startServiceProcess } from './support.js';

// The README's quick start for your own data, with no code: `schema infer` on a real public
// data set (vega-datasets' Seattle weather, 1,461 days), `apply`, `ingest --commit`, `train`,
// `predict`, `drift`, and the read-only views, each as a user types it: the built CLI as a
// child process against the six services as processes. Redis DB 5 and a temporary PGlite
// directory keep it apart from every other test.
const REDIS_URL = 'redis://127.0.0.1:6379/5';
const require = createRequire(import.meta.url);
// The package exports only its build (build/index.js); its data files sit beside it.
const WEATHER = join(dirname(require.resolve('vega-datasets')), '..', 'data', 'seattle-weather.csv');
const cliPath = join(dirname(require.resolve('@ballast/sdk/package.json')), 'dist', 'cli.js');
const dir = mkdtempSync(join(tmpdir(), 'ballast-no-code-e2e-'));
const MODEL = 'seattle_weather';

describe('the no-code quick start on Seattle weather', () => {
  const running: RunningProcess[] = [];
  let env: Record<string, string>;
  let redis: Redis;

  const cli = (...args: string[]) => {
    const result = spawnSync(process.execPath, [cliPath, ...args], {
      encoding: 'utf8',
      timeout: 240_000,
      cwd: dir,
      env: { ...process.env, ...env },
    });
    return { code: result.status, out: result.stdout, err: result.stderr };
  };
  /** Runs a command that must succeed; its stdout. */
  const ok = (...args: string[]) => {
    const r = cli(...args);
    if (r.code !== 0) throw new Error(`ballast ${args.join(' ')} exited ${r.code}:\n${r.out}\n${r.err}`);
    return r.out;
  };

  beforeAll(async () => {
    redis = connectRedis(REDIS_URL);
    await redis.flushdb();
    env = {
      BALLAST_DATA_DIR: join(dir, 'data'),
      BALLAST_DATABASE_URL: '',
      BALLAST_REDIS_URL: REDIS_URL,
      BALLAST_TF_BACKEND: 'wasm',
    };
    // In the order they need each other: each started knowing where the earlier ones are.
    for (const service of ['ingest', 'registry', 'feature', 'monitor', 'inference', 'trainer'] as const) {
      const proc = await startServiceProcess(service, env);
      running.push(proc);
      // Where the CLI (status) finds it too.
      const prefix = envPrefix(service);
      env[`${prefix}_HTTP_PORT`] = String(proc.httpPort);
      if (isGrpcService(service)) {
        env[`${prefix}_GRPC_PORT`] = String(proc.grpcPort);
        env[`${prefix}_ADDR`] = proc.address;
      }
    }
    await eventually(async () => (cli('status').code === 0 ? true : undefined), 'the suite ready', 900);
  }, 240_000);

  afterAll(async () => {
    await Promise.all(running.map((p) => p.stop()));
    await redis?.flushdb();
    redis?.disconnect();
    rmSync(dir, { recursive: true, force: true });
  });

  it('infers, applies, ingests, trains, predicts and reports drift from the CLI alone', async () => {
    // schema infer: a dataset, a view predicting temp_max per weather kind, and a model.
    ok(
      'schema',
      'infer',
      WEATHER,
      '--dataset',
      MODEL,
      '--label',
      'temp_max',
      '--entity',
      'weather',
      '-o',
      'ballast.yaml',
    );
    const inferred = readFileSync(join(dir, 'ballast.yaml'), 'utf8');
    expect(inferred).toMatch(/eventIdField: event_id/);
    expect(inferred).toMatch(/eventTimeField: date/);
    // The edit a user makes: the model's owner team.
    writeFileSync(
      join(dir, 'ballast.yaml'),
      inferred.replace('ownerTeam: default', 'ownerTeam: weather-team'),
    );

    const applied = ok('apply', '-f', 'ballast.yaml');
    expect(applied).toMatch(/^dataset\s+seattle_weather\s+create/m);
    expect(applied).toMatch(/^featureView\s+seattle_weather\s+create/m);
    expect(applied).toMatch(/^model\s+seattle_weather\s+create/m);
    expect(ok('apply', '-f', 'ballast.yaml', '--dry-run')).toMatch(/^no changes/m);
    const plan = JSON.parse(ok('apply', '-f', 'ballast.yaml', '--dry-run', '--json')) as { changes: number };
    expect(plan.changes).toBe(0);

    // What export writes applies unchanged, the view included.
    ok('export', '-o', 'exported.yaml');
    expect(readFileSync(join(dir, 'exported.yaml'), 'utf8')).toMatch(
      /featureViews:\n\s+- name: seattle_weather/,
    );
    expect(ok('apply', '-f', 'exported.yaml', '--dry-run')).toMatch(/^no changes/m);

    expect(ok('ingest', MODEL, WEATHER, '--commit')).toMatch(
      /1461 records, 1461 accepted, 0 duplicates dropped, 0 quarantined[\s\S]*committed version [0-9a-f]{12} \(1461 records\)/,
    );
    // The same file again: every record's content hash is a known event id.
    expect(ok('ingest', MODEL, WEATHER, '--commit')).toMatch(/0 accepted, 1461 duplicates dropped/);

    expect(ok('train', MODEL, '--view', MODEL, '--epochs', '10', '--promote', '--wait')).toMatch(
      /seattle_weather v1 registered[\s\S]*promot/,
    );

    // Rows from the file itself, as a caller would send them.
    const rows = readFileSync(WEATHER, 'utf8').trim().split('\n').slice(1, 13);
    for (const row of rows) {
      const [, precipitation, , tempMin, wind] = row.split(',').map(Number);
      const out = ok(
        'predict',
        MODEL,
        '--features',
        JSON.stringify({ precipitation, temp_min: tempMin, wind }),
      );
      expect(out).toMatch(/^prediction: -?[\d.]+$/m);
      expect(out).toMatch(/seattle_weather v1 \(production\)/);
    }

    type Drift = { version: number; windows: { rows: string; features: { feature: string }[] }[] };
    const drift = await eventually(
      async () => {
        const report = JSON.parse(ok('drift', MODEL, '--json')) as Drift;
        const rowsSeen = report.windows.reduce((n, w) => n + Number(w.rows), 0);
        return rowsSeen >= rows.length ? report : undefined;
      },
      'the predictions in a drift report',
      300,
    );
    expect(drift.version).toBe(1);
    expect(drift.windows[0]?.features.map((f) => f.feature)).toEqual(
      expect.arrayContaining(['precipitation', 'temp_min', 'wind']),
    );
    expect(ok('drift', MODEL)).toMatch(/^seattle_weather v1 all rows, \d+ rows: /m);
  }, 600_000);
});
