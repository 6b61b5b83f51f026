import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { envPrefix, isGrpcService, SERVICES } from '@ballast/config';
import { connectRedis } from '@ballast/queue';
import { afterAll, describe, expect, it } from 'vitest';
import { expectDemoStory } from './demo-story.js';
import { freePort } from './support.js';

// `ballast demo` as a newcomer runs it: no suite answers, so it starts one (`ballast up`)
// and plays the whole loop; with --keep the suite stays up for the rest of the CLI. Every service gets free ports (and the
// callers their addresses), Redis DB 11 and a temporary PGlite directory, so a suite a
// developer has running on the design's ports is neither used nor disturbed.
const REDIS_URL = 'redis://127.0.0.1:6379/11';
const dataDir = mkdtempSync(join(tmpdir(), 'ballast-demo-e2e-'));
const cliPath = join(
  dirname(createRequire(import.meta.url).resolve('@ballast/sdk/package.json')),
  'dist',
  'cli.js',
);

async function suiteEnv(): Promise<Record<string, string>> {
  const env: Record<string, string> = {
    BALLAST_DATA_DIR: dataDir,
    BALLAST_DATABASE_URL: '',
    BALLAST_REDIS_URL: REDIS_URL,
    BALLAST_TF_BACKEND: 'wasm',
  };
  for (const service of SERVICES) {
    const prefix = envPrefix(service);
    env[`${prefix}_HTTP_PORT`] = String(await freePort());
    if (isGrpcService(service)) {
      const grpc = await freePort();
      env[`${prefix}_GRPC_PORT`] = String(grpc);
      env[`${prefix}_ADDR`] = `127.0.0.1:${grpc}`;
    }
  }
  return env;
}

describe('ballast demo', () => {
  let env: Record<string, string>;
  let suitePid = 0;
  let demo: ChildProcess | undefined;
  let model = '';
  const cli = (...args: string[]) =>
    spawnSync(process.execPath, [cliPath, ...args], {
      encoding: 'utf8',
      timeout: 120_000,
      env: { ...process.env, ...env },
    });

  afterAll(async () => {
    demo?.kill('SIGKILL');
    if (suitePid) {
      try {
        process.kill(suitePid, 'SIGTERM');
      } catch {
        // Already gone.
      }
      // `ballast up` stops its services before it exits.
      for (let i = 0; i < 300; i++) {
        try {
          process.kill(suitePid, 0);
        } catch {
          break;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    const redis = connectRedis(REDIS_URL);
    await redis.flushdb();
    redis.disconnect();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('closes the loop: shift found in W4, retrained, swapped, error recovered', async () => {
    const redis = connectRedis(REDIS_URL);
    await redis.flushdb();
    redis.disconnect();
    env = await suiteEnv();
    const child = spawn(process.execPath, [cliPath, 'demo', '--seed', '42', '--keep'], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    demo = child;
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
      // The suite the demo starts is this test's to stop, whatever happens next: a suite
      // left running on this Redis DB would take the next run's jobs.
      suitePid ||= Number(stdout.match(/starting one \(ballast up, pid (\d+);/)?.[1] ?? 0);
    });
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    const [code] = (await once(child, 'exit')) as [number | null];
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });

    expect(stdout).toContain('no suite answers: starting one');
    expect(stdout).toMatch(
      /ingested 80 days: 3840 accepted, 12 quarantined \(6x units: min, 6x warehouse_id: allowed_values\), 96 duplicates dropped/,
    );
    expect(stdout).toMatch(/v1 registered .*promotion: promoted/);
    // Polled, so an alert may be seen only after it resolved again.
    expect(stdout).toMatch(/forecast-error (FIRING|fired and resolved) on warehouse_id=W4/);
    expect(stdout).toMatch(/monitor queued retraining retrain-/);
    expect(stdout).toMatch(/v2 registered; gate: promoted/);
    expect(stdout).toContain('inference hot-swapped to v2');
    expect(stdout).toMatch(/after retraining\): 672 forecasts by v2; actuals joined 672, unmatched 0/);
    const kept = stdout.match(/keeps running \(pid (\d+);/);
    expect(Number(kept?.[1] ?? 0)).toBe(suitePid);
    expect(suitePid).toBeGreaterThan(0);
    model = stdout.match(/story (\S+):/)?.[1] ? `demand-${stdout.match(/story (\S+):/)?.[1]}` : '';

    expectDemoStory(stdout);
  }, 400_000);

  it('answers the CLI a newcomer uses next: status, jobs, alerts, predict (by features and by entity), trace, ingest, features apply', () => {
    const status = cli('status');
    expect(status.status).toBe(0);
    expect(status.stdout.match(/ ready /g)).toHaveLength(6);
    expect(status.stdout).toMatch(new RegExp(`${model}\\s+v2\\s+.*production=v2`));
    expect(status.stdout).toMatch(/training\.run\s+0 \/ 0 \/ 0 \/ 0/);

    const jobs = cli('jobs');
    expect(jobs.stdout).toMatch(new RegExp(`retrain-\\S+\\s+completed\\s+${model}.*v2 promoted`));

    // Fired on v1's windows; v2's windows, if they came before it resolved, show as its latest.
    const alerts = cli('alerts', model);
    expect(alerts.stdout).toMatch(
      new RegExp(`${model} forecast-error on warehouse_id=W4 v1( \\(latest v2\\))?: .*retraining retrain-`),
    );

    // One forecast for W4's first SKU on a Monday at the new price, by name.
    const features: Record<string, number> = { price: 7.5, promo: 0, dow: 1 };
    for (let i = 0; i < 6; i++) features[`warehouse_${i}`] = i === 3 ? 1 : 0;
    for (let i = 0; i < 8; i++) features[`sku_${i}`] = i === 0 ? 1 : 0;
    const predicted = cli('predict', model, '--features', JSON.stringify(features));
    expect(predicted.stderr).toBe('');
    // js: the trained model, a chain of dense layers, runs inline when a full batch is cheap
    // enough on the machine's event loop (measured at load); wasm otherwise, on the model worker.
    expect(predicted.stdout).toMatch(new RegExp(`${model} v2 \\(production\\) on (js|wasm)`));
    const link = predicted.stdout.match(/trace: (http:\/\/localhost:16686\/trace\/([0-9a-f]{32}))/);
    expect(link).not.toBeNull();
    expect(cli('trace', link?.[2] ?? '').stdout.trim()).toBe(link?.[1]);
    expect(cli('predict', model, '--features', '{"price": "cheap"}').stderr).toContain('ballast: ');

    // The same warehouse and SKU by key: inference reads their latest features from the
    // feature service's online store, in the view v2 was trained on.
    const byKey = cli('predict', model, '--keys', 'warehouse_id=W4,sku=S01');
    expect(byKey.stderr).toBe('');
    expect(byKey.stdout).toMatch(new RegExp(`${model} v2 \\(production\\) on (js|wasm)`));
    const forecast = Number(byKey.stdout.match(/^\w+: (-?[\d.e+-]+)$/m)?.[1]);
    // Units a day for one SKU in one warehouse: the reference data has 10 to 200 (garbage bytes
    // read as doubles would be far out).
    expect(forecast).toBeGreaterThan(2);
    expect(forecast).toBeLessThan(1_000);
    // An entity the store has never seen is reported, not invented; a key the view does not use is refused.
    expect(cli('predict', model, '--keys', 'warehouse_id=W9,sku=S01').stderr).toMatch(
      /entity warehouse_id=W9\/sku=S01 has no features in the online store/,
    );
    expect(cli('predict', model, '--keys', 'store=W4').stderr).toMatch(
      /store, which view \S+ does not key on/,
    );
    expect(
      cli('predict', model, '--keys', 'warehouse_id=W4,sku=S01', '--view', 'no-such-view').stderr,
    ).toMatch(/feature service: .*no-such-view/);

    // A CSV with two good rows and one that breaks the schema's range.
    const dataset = model.replace(/^demand-/, 'sales-');
    const csv = join(dataDir, 'more.csv');
    writeFileSync(
      csv,
      'event_id,day,warehouse_id,sku,units,price,promo\n' +
        'cli-1,2024-05-06,W1,S01,40,9.5,false\n' +
        'cli-2,2024-05-06,W2,S01,38,9.5,true\n' +
        'cli-3,2024-05-06,W2,S02,-4,9.5,false\n',
    );
    const ingested = cli('ingest', dataset, csv, '--commit');
    expect(ingested.stderr).toBe('');
    expect(ingested.stdout).toContain(
      `${dataset}: 3 records, 2 accepted, 0 duplicates dropped, 1 quarantined`,
    );
    expect(ingested.stdout).toMatch(/quarantined cli-3: units min/);
    expect(ingested.stdout).toMatch(/committed version [0-9a-f]{12}/);
    expect(cli('ingest', dataset, csv).stdout).toContain('0 accepted, 2 duplicates dropped, 1 quarantined');

    const view = join(dataDir, 'view.json');
    writeFileSync(
      view,
      JSON.stringify({
        name: `${model}-price`,
        source: {
          dataset,
          eventTimeField: 'day',
          fields: [
            { name: 'day', type: 'SOURCE_FIELD_TYPE_TIMESTAMP' },
            { name: 'warehouse_id', type: 'SOURCE_FIELD_TYPE_STRING' },
            { name: 'units', type: 'SOURCE_FIELD_TYPE_FLOAT' },
            { name: 'price', type: 'SOURCE_FIELD_TYPE_FLOAT' },
          ],
        },
        entityFields: ['warehouse_id'],
        label: { name: 'units', field: 'units' },
        features: [{ name: 'price', raw: { field: 'price' } }],
      }),
    );
    expect(cli('features', 'apply', view).stdout).toMatch(new RegExp(`${model}-price@[0-9a-f]{12} applied`));
    expect(cli('features', 'apply', view).stdout).toContain('unchanged');
  }, 120_000);
});
