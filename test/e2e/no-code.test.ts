import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { connectRedis } from '@ballast/queue';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliRunner, eventually, type RunningProcess, startSuite } from './support.js';

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
  let redis: ReturnType<typeof connectRedis>;
  const { cli, ok } = cliRunner(cliPath, dir, () => env);

  beforeAll(async () => {
    redis = connectRedis(REDIS_URL);
    await redis.flushdb();
    env = {
      BALLAST_DATA_DIR: join(dir, 'data'),
      BALLAST_DATABASE_URL: '',
      BALLAST_REDIS_URL: REDIS_URL,
      BALLAST_TF_BACKEND: 'wasm',
    };
    running.push(...Object.values(await startSuite(env)));
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

  it('shows the models, creates one from flags, and names what is missing in one line with exit code 1', () => {
    const shown = ok('models', 'show', MODEL);
    expect(shown).toMatch(/^seattle_weather: regression, team weather-team$/m);
    expect(shown).toMatch(/^ {2}aliases: .*production=v1/m);
    expect(shown).toMatch(
      /^v1\s+\S+ \S+\s+[0-9a-f]{12}\s+seattle_weather@[0-9a-f]{12}\s+seattle_weather@[0-9a-f]{12}\s+.*mae=[\d.]+.*production/m,
    );
    expect(ok('models', 'show', MODEL, '--version', '1')).toMatch(/^mae\s+\S+\s+all rows\s+[\d.]+$/m);
    const json = JSON.parse(ok('models', 'show', MODEL, '--json')) as { versions: { version: number }[] };
    expect(json.versions.map((v) => v.version)).toEqual([1]);

    expect(
      ok('models', 'create', 'seattle_rain', '--task', 'classification', '--owner', 'weather-team'),
    ).toBe('model seattle_rain: created\n');
    expect(ok('models', 'create', 'seattle_rain', '--task', 'classification')).toBe(
      'model seattle_rain: unchanged\n',
    );
    expect(ok('models')).toMatch(/^seattle_rain\s+classification\s+-\s+\(no aliases\)\s+weather-team$/m);

    for (const [args, message] of [
      [
        ['models', 'show', 'no_such_model'],
        /^ballast: unknown model "no_such_model" \(NOT_FOUND: .*\); `ballast models` lists/,
      ],
      [
        ['versions', 'list', 'no_such_data'],
        /^ballast: unknown dataset "no_such_data" \(NOT_FOUND: .*\); `ballast datasets` lists/,
      ],
      [
        ['features', 'show', 'no_such_view'],
        /^ballast: unknown feature view "no_such_view" \(NOT_FOUND: .*\); `ballast features list`/,
      ],
      [
        ['versions', 'diff', MODEL, '1', '9'],
        /^ballast: dataset seattle_weather has no version "9" \(its versions: v1 [0-9a-f]{12}\)/,
      ],
    ] as const) {
      const r = cli(...args);
      expect({ code: r.code, lines: r.err.trimEnd().split('\n').length, out: r.out }).toEqual({
        code: 1,
        lines: 1,
        out: '',
      });
      expect(r.err).toMatch(message);
    }
  }, 300_000);

  it('lists versions and views, diffs two versions, and shows a failed materialization in jobs, status and the dataset', async () => {
    expect(ok('versions', 'list', MODEL)).toMatch(
      /^v1\s+[0-9a-f]{12}\s+1461\s+\+1461\s+2012-01-01\.\.2015-12-31\s+v1\.0\s+.*seattle_weather succeeded$/m,
    );
    expect(ok('features', 'list')).toMatch(
      /^seattle_weather\s+[0-9a-f]{12}\s+seattle_weather\s+weather\s+3\s+temp_max\s+[0-9a-f]{12} succeeded$/m,
    );
    const view = ok('features', 'show', MODEL);
    expect(view).toMatch(
      /^seattle_weather@[0-9a-f]{12}: reads seattle_weather \(event time date\), entity weather/m,
    );
    expect(view).toMatch(/^ {2}wind\s+wind$/m);
    expect(view).toMatch(/^[0-9a-f]{12}\s+succeeded\s+\d+\s+5\s+0\s+job /m);
    const stats = ok('features', 'stats', MODEL);
    expect(stats).toMatch(/^seattle_weather@[0-9a-f]{12} on seattle_weather@[0-9a-f]{12}: \d+ rows$/m);
    expect(stats).toMatch(/^ {2}temp_max \(label\)\s+\d+\s+0\s+[\d.]+/m);

    // A view whose source declares wind as text: the dataset's floats break it at materialization.
    const broken = `  - name: seattle_weather_broken
    source:
      dataset: seattle_weather
      eventTimeField: date
      fields:
        - { name: weather, type: categorical }
        - { name: wind, type: string }
        - { name: temp_max, type: float }
        - { name: date, type: timestamp }
    entityFields: [weather]
    label: { name: temp_max, field: temp_max }
    features:
      - name: wind_code
        encoding: { field: wind, kind: index }
`;
    const file = readFileSync(join(dir, 'ballast.yaml'), 'utf8');
    writeFileSync(join(dir, 'broken.yaml'), file.replace(/^models:/m, `${broken}models:`));
    expect(ok('apply', '-f', 'broken.yaml')).toMatch(/^featureView\s+seattle_weather_broken\s+create/m);

    // A second version: the last 100 days again, measured by a wind gauge reading half.
    const lines = readFileSync(WEATHER, 'utf8').trim().split('\n');
    const halved = lines.slice(-100).map((line) => {
      const cells = line.split(',');
      cells[4] = String(Number(cells[4]) / 2);
      return cells.join(',');
    });
    writeFileSync(join(dir, 'more.csv'), `${lines[0]}\n${halved.join('\n')}\n`);
    expect(ok('ingest', MODEL, 'more.csv', '--commit')).toMatch(
      /100 accepted[\s\S]*committed version [0-9a-f]{12} \(1561 records\)/,
    );

    const diff = ok('versions', 'diff', MODEL, '1', 'latest');
    expect(diff).toMatch(/^seattle_weather: v1 \([0-9a-f]{12}\) -> v2 \([0-9a-f]{12}\)$/m);
    expect(diff).toMatch(/^ {2}version\s+records\s+1461\s+1561$/m);
    expect(diff).toMatch(/^ {2}wind\s+mean\s+[\d.]+\s+[\d.]+$/m);
    const json = JSON.parse(ok('versions', 'diff', MODEL, 'v1', 'v2', '--json')) as {
      fields: { subject: string; what: string }[];
    };
    expect(json.fields).toContainEqual({
      subject: 'wind',
      what: 'mean',
      a: expect.any(String),
      b: expect.any(String),
    });
    expect(json.fields.some((f) => f.subject === 'precipitation')).toBe(true);
    expect(ok('versions', 'show', MODEL, 'latest')).toMatch(
      /^seattle_weather v2 \([0-9a-f]{64}\): 1561 records, 100 added/m,
    );

    // The commit's features.materialize job fails on the broken view: background work nobody
    // waits on, so jobs, status and the dataset name it.
    const failed =
      /^materialize seattle_weather@[0-9a-f]{12} failed: dataset field wind does not match the view's source: declared STRING, got number .*\(view seattle_weather_broken, job seattle_weather\.[0-9a-f]{64}, 1 attempt\)$/m;
    await eventually(
      async () => (failed.test(ok('jobs')) ? true : undefined),
      'the failed materialization in jobs',
      300,
    );
    expect(ok('status')).toMatch(failed);
    expect(ok('datasets', 'show', MODEL)).toMatch(
      /^v2\s+[0-9a-f]{12}\s+1561\s+\+100\s+.*seattle_weather_broken failed: dataset field wind does not match/m,
    );
  }, 600_000);
});
