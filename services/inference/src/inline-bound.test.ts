import { saveModelFiles, selectBackend } from '@ballast/ml';
import { artifactManifest } from '@ballast/ml/artifact';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Executor } from './executor.js';
import { ModelPool } from './model-pool.js';
import { DEFAULT_INLINE_MAX_US, DEFAULT_MAX_ROWS_PER_REQUEST, type ServingConfig } from './serving-config.js';

/**
 * Which dense chains the pool times for the inline engine. Timing runs whole batches on the
 * event loop at load, so a chain with far too much arithmetic for the bound must go to the
 * worker untimed (a 32 -> 1024 -> 1024 -> 1 chain took ~70 ms a batch of 64, eight times over).
 */
const config: ServingConfig = {
  batcher: {
    max_batch_size: 64,
    max_queue_delay_microseconds: 0,
    preferred_batch_size: [],
    max_queue_size: 64,
    default_timeout_microseconds: 0,
    latency_objective_ms: 0,
  },
  canaryPercent: 0,
  shadow: false,
  allowNonFinite: false,
  maxRowsPerRequest: DEFAULT_MAX_ROWS_PER_REQUEST,
  inlineMaxUs: DEFAULT_INLINE_MAX_US,
};

function mlp(hidden: number[]): tf.LayersModel {
  const model = tf.sequential();
  hidden.forEach((units, i) => {
    model.add(tf.layers.dense({ units, activation: 'relu', ...(i === 0 ? { inputShape: [32] } : {}) }));
  });
  model.add(tf.layers.dense({ units: 1 }));
  return model;
}

let executor: Executor;
const logged: string[] = [];
const log = {
  info: (_fields: object, message?: string) => logged.push(message ?? ''),
  warn: (_fields: object, message?: string) => logged.push(message ?? ''),
  error: (_fields: object, message?: string) => logged.push(message ?? ''),
};

beforeAll(async () => {
  await selectBackend('cpu');
  executor = await Executor.start('wasm');
});

afterAll(async () => {
  await executor?.close();
});

async function load(pool: ModelPool, name: string, hidden: number[]) {
  const files = await saveModelFiles(mlp(hidden));
  return pool.load({ model: name, version: 1, digest: artifactManifest(files).digest, files, config });
}

describe('the inline bound', () => {
  it('sends a chain with too much arithmetic for the bound to the worker without timing it', async () => {
    logged.length = 0;
    const pool = new ModelPool(executor, config, log);
    // 64 rows x (32x1024 + 1024x1024 + 1024) multiply-adds: 69M, over 500 us x 10,000 a microsecond.
    const large = await load(pool, 'large', [1024, 1024]);
    expect(large.engine).toBe('wasm');
    expect(logged.some((m) => m.includes('too much arithmetic'))).toBe(true);
    expect(logged.some((m) => m.includes('takes longer than'))).toBe(false);
  });

  it('times a small chain and runs it inline', async () => {
    logged.length = 0;
    const pool = new ModelPool(executor, config, log);
    const small = await load(pool, 'small', [64]);
    expect(small.engine).toBe('js');
    expect(logged).toEqual(['model version loaded and warmed up']);
  });
});
