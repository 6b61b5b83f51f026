import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { envPrefix, isGrpcService, SERVICES } from '@ballast/config';
import { connectRedis } from '@ballast/queue';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from './support.js';

// `ballast demo` as a newcomer runs it: no suite answers, so it starts one (`ballast up`),
// plays the whole loop and stops what it started. Every service gets free ports (and the
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

/** The final table's row for a warehouse: MAE before the shift, after it, after retraining. */
function row(output: string, warehouse: string): [number, number, number] {
  const match = output.match(new RegExp(`^\\s+${warehouse}\\s+([\\d.]+)\\s+([\\d.]+)\\s+([\\d.]+)`, 'm'));
  if (!match) throw new Error(`no row for ${warehouse} in:\n${output}`);
  return [Number(match[1]), Number(match[2]), Number(match[3])];
}

describe('ballast demo', () => {
  afterAll(async () => {
    const redis = connectRedis(REDIS_URL);
    await redis.flushdb();
    redis.disconnect();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('closes the loop: shift found in W4, retrained, swapped, error recovered', async () => {
    const redis = connectRedis(REDIS_URL);
    await redis.flushdb();
    redis.disconnect();
    const child = spawn(process.execPath, [cliPath, 'demo', '--seed', '42'], {
      env: { ...process.env, ...(await suiteEnv()) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
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
    expect(stdout).toMatch(/demand-drift (FIRING|fired and resolved) on warehouse_id=W4/);
    expect(stdout).toMatch(/monitor queued retraining retrain-/);
    expect(stdout).toMatch(/v2 registered; gate: promoted/);
    expect(stdout).toContain('inference hot-swapped to v2');
    expect(stdout).toMatch(/after retraining\): 672 forecasts by v2; actuals joined 672, unmatched 0/);
    expect(stdout).toContain('stopping the suite the demo started');

    // W4's error jumps with the shift and comes most of the way back after retraining;
    // the other warehouses barely move.
    const [before, shifted, retrained] = row(stdout, 'W4');
    expect(shifted).toBeGreaterThan(5 * before);
    expect(retrained).toBeLessThan(shifted / 2);
    for (const w of ['W1', 'W2', 'W3', 'W5', 'W6']) {
      const [b, s, r] = row(stdout, w);
      expect(s).toBeLessThan(1.5 * b);
      expect(r).toBeLessThan(1.5 * b);
    }
  }, 400_000);
});
