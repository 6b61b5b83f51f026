import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { BackendUnavailableError, parseBackendPreference, selectBackend } from './backend.js';

// Whether a native backend can load here, asked without selectBackend. On this project's
// CI machines tfjs-node-gpu's install cannot download libtensorflow, so npm leaves it out.
async function nativeLoads(): Promise<boolean> {
  for (const name of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
    try {
      await import(name);
      return true;
    } catch {}
  }
  return false;
}
const native = await nativeLoads();

const squares = () => tf.tidy(() => Array.from(tf.tensor([1, 2, 3]).square().dataSync()));

describe('parseBackendPreference', () => {
  it('defaults to auto and ignores case and spaces', () => {
    expect(parseBackendPreference(undefined)).toBe('auto');
    expect(parseBackendPreference('')).toBe('auto');
    expect(parseBackendPreference(' WASM ')).toBe('wasm');
    expect(parseBackendPreference('tensorflow')).toBe('tensorflow');
  });

  it('refuses anything else, naming the variable and the choices', () => {
    expect(() => parseBackendPreference('gpu')).toThrow(
      'BALLAST_TF_BACKEND must be one of auto, tensorflow, wasm, cpu (got "gpu")',
    );
  });
});

describe('selectBackend', () => {
  // One test per behaviour whichever machine runs it: native where tfjs-node(-gpu) loads
  // (the GPU image), wasm everywhere else (this project's CI), never a skipped test.
  it('auto picks the native backend where it loads, else wasm, saying why tensorflow was skipped', async () => {
    const selection = await selectBackend('auto');
    expect(selection.tfjsVersion).toBe('4.22.0');
    if (native) {
      expect(selection.backend).toBe('tensorflow');
      expect(tf.getBackend()).toBe('tensorflow');
    } else {
      expect(selection.backend).toBe('wasm');
      expect(selection.reason).toMatch(
        /^auto: tensorflow skipped \(@tensorflow\/tfjs-node-gpu: .+; @tensorflow\/tfjs-node: .+\); using WebAssembly \(SIMD, single-threaded\) from \/.+\/tfjs-backend-wasm\/dist\/$/,
      );
      expect(tf.getBackend()).toBe('wasm');
    }
    expect(squares()).toEqual([1, 4, 9]);
    expect(await selectBackend('auto')).toEqual(selection);
  });

  it('an explicit tensorflow preference loads it, or throws naming what is missing and changes nothing', async () => {
    await selectBackend('wasm');
    const attempt = selectBackend('tensorflow');
    if (native) {
      expect((await attempt).backend).toBe('tensorflow');
      return;
    }
    await expect(attempt).rejects.toBeInstanceOf(BackendUnavailableError);
    await expect(attempt).rejects.toThrow(
      /native TensorFlow backend cannot be loaded \(@tensorflow\/tfjs-node-gpu: .+\)\. Install @tensorflow\/tfjs-node-gpu/,
    );
    await expect(attempt).rejects.toThrow(/BALLAST_TF_BACKEND=auto, wasm or cpu/);
    expect(tf.getBackend()).toBe('wasm');
  });

  it('cpu works, and switching back and forth is fine', async () => {
    const cpu = await selectBackend('cpu');
    expect(cpu).toEqual({
      backend: 'cpu',
      tfjsVersion: '4.22.0',
      reason: 'cpu: using the plain JavaScript cpu backend',
    });
    expect(tf.getBackend()).toBe('cpu');
    expect(squares()).toEqual([1, 4, 9]);
    expect((await selectBackend('wasm')).backend).toBe('wasm');
    expect(squares()).toEqual([1, 4, 9]);
  });

  it('runs concurrent calls one after another, in call order', async () => {
    const [first, second] = await Promise.all([selectBackend('wasm'), selectBackend('cpu')]);
    expect([first.backend, second.backend]).toEqual(['wasm', 'cpu']);
    expect(tf.getBackend()).toBe('cpu');
  });
});
