/**
 * Which TensorFlow.js backend runs the models: native TensorFlow where its package could
 * be installed (the GPU image), else WebAssembly, else plain JavaScript. Chosen by
 * `BALLAST_TF_BACKEND=auto|tensorflow|wasm|cpu` (see DESIGN.md, "TensorFlow.js backends").
 */
import { createRequire } from 'node:module';
import { dirname, sep } from 'node:path';
import * as tf from '@tensorflow/tfjs';

export const BACKEND_PREFERENCES = ['auto', 'tensorflow', 'wasm', 'cpu'] as const;
export type BackendPreference = (typeof BACKEND_PREFERENCES)[number];
export type BackendName = Exclude<BackendPreference, 'auto'>;

export interface BackendSelection {
  backend: BackendName;
  /** The @tensorflow/tfjs version (tfjs-node-gpu and tfjs-backend-wasm are pinned to it). */
  tfjsVersion: string;
  /** Why this backend: for the start-up log, ServerMetadata and health details. */
  reason: string;
}

/** An explicitly requested backend cannot run here; the message says what is missing. */
export class BackendUnavailableError extends Error {
  override readonly name: string = 'BackendUnavailableError';

  constructor(
    readonly backend: BackendName,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Reads `BALLAST_TF_BACKEND`: unset or empty means `auto`; case and surrounding spaces
 * are ignored; anything else throws naming the variable and the allowed values.
 */
export function parseBackendPreference(value: string | undefined): BackendPreference {
  const normalised = (value ?? '').trim().toLowerCase();
  if (normalised === '') return 'auto';
  const preference = BACKEND_PREFERENCES.find((name) => name === normalised);
  if (preference === undefined) {
    throw new Error(
      `BALLAST_TF_BACKEND must be one of ${BACKEND_PREFERENCES.join(', ')} (got ${JSON.stringify(value)})`,
    );
  }
  return preference;
}

// GPU build first: where both are installed the GPU image wants CUDA. tfjs-node-gpu
// itself runs on the CPU when it finds no GPU.
const NATIVE_PACKAGES = ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'] as const;

type NativeProbe = { ok: true; from: string } | { ok: false; failures: string[] };

function firstLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return (message.split('\n')[0] ?? '').slice(0, 300);
}

/**
 * Importing tfjs-node(-gpu) registers the `tensorflow` backend. Either package may be
 * absent (an optional dependency whose install failed is removed) or present without its
 * native addon (installed with scripts disabled): both show up as an import error here.
 * The variable specifier keeps TypeScript from requiring the packages at build time.
 */
async function probeNative(): Promise<NativeProbe> {
  const failures: string[] = [];
  for (const specifier of NATIVE_PACKAGES) {
    try {
      await import(specifier);
      if (tf.findBackendFactory('tensorflow') !== null) return { ok: true, from: specifier };
      failures.push(`${specifier}: loaded but registered no "tensorflow" backend`);
    } catch (error) {
      failures.push(`${specifier}: ${firstLine(error)}`);
    }
  }
  return { ok: false, failures };
}

/**
 * Registers the wasm backend and points it at the package's own dist folder, where its
 * .wasm binaries sit beside the Node entry point. Plain Node would find them there too
 * (the loader looks beside its own script), but a bundler moves the script and not the
 * binaries, so the location is set explicitly and reported in the reason. It must be set
 * before the backend first starts: setWasmPaths throws after a failed start.
 */
async function registerWasm(): Promise<string> {
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  const folder = dirname(createRequire(import.meta.url).resolve('@tensorflow/tfjs-backend-wasm')) + sep;
  wasm.setWasmPaths(folder);
  return folder;
}

// Each probe runs once per process: a package does not appear while the process runs,
// and registering a backend twice makes tfjs warn.
let nativeProbe: Promise<NativeProbe> | undefined;
let wasmFolder: Promise<string> | undefined;

async function activate(name: BackendName): Promise<void> {
  if (!(await tf.setBackend(name))) throw new Error(`tf.setBackend('${name}') reported failure`);
  await tf.ready();
}

type Attempt = { ok: true; reason: string } | { ok: false; why: string };

async function tryNative(): Promise<Attempt> {
  nativeProbe ??= probeNative();
  const probe = await nativeProbe;
  if (!probe.ok) return { ok: false, why: probe.failures.join('; ') };
  try {
    await activate('tensorflow');
    return { ok: true, reason: `native TensorFlow from ${probe.from}` };
  } catch (error) {
    return { ok: false, why: `${probe.from}: ${firstLine(error)}` };
  }
}

async function tryWasm(): Promise<Attempt> {
  try {
    wasmFolder ??= registerWasm();
    const folder = await wasmFolder;
    await activate('wasm');
    const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
    // tfjs-backend-wasm never starts threads under Node (tfjs issue 3830): one core per process.
    return { ok: true, reason: `WebAssembly (${simd ? 'SIMD' : 'no SIMD'}, single-threaded) from ${folder}` };
  } catch (error) {
    return { ok: false, why: `@tensorflow/tfjs-backend-wasm: ${firstLine(error)}` };
  }
}

async function select(preference: BackendPreference): Promise<BackendSelection> {
  const chosen = (backend: BackendName, reason: string): BackendSelection => ({
    backend,
    tfjsVersion: tf.version.tfjs,
    reason,
  });
  const skipped: string[] = [];
  if (preference === 'auto' || preference === 'tensorflow') {
    const native = await tryNative();
    if (native.ok) return chosen('tensorflow', `${preference}: ${native.reason}`);
    if (preference === 'tensorflow') {
      throw new BackendUnavailableError(
        'tensorflow',
        `the native TensorFlow backend cannot be loaded (${native.why}). Install ` +
          '@tensorflow/tfjs-node-gpu (CUDA) or @tensorflow/tfjs-node where its install script may run ' +
          'and can download libtensorflow (e.g. `npm install-scripts approve @tensorflow/tfjs-node-gpu ' +
          '&& npm rebuild @tensorflow/tfjs-node-gpu`), or set BALLAST_TF_BACKEND=auto, wasm or cpu.',
      );
    }
    skipped.push(`tensorflow skipped (${native.why})`);
  }
  if (preference === 'auto' || preference === 'wasm') {
    const wasm = await tryWasm();
    if (wasm.ok) return chosen('wasm', `${preference}: ${[...skipped, `using ${wasm.reason}`].join('; ')}`);
    if (preference === 'wasm') {
      throw new BackendUnavailableError(
        'wasm',
        `the wasm backend cannot start (${wasm.why}). Its .wasm files ship in ` +
          '@tensorflow/tfjs-backend-wasm/dist: reinstall it (npm ci), or set BALLAST_TF_BACKEND=auto or cpu.',
      );
    }
    skipped.push(`wasm skipped (${wasm.why})`);
  }
  await activate('cpu');
  return chosen('cpu', `${preference}: ${[...skipped, 'using the plain JavaScript cpu backend'].join('; ')}`);
}

// Calls run one after another so that two callers cannot interleave setBackend calls.
let queue: Promise<unknown> = Promise.resolve();

/**
 * Makes `preference` the active TensorFlow.js backend and says which one runs and why.
 * `auto` tries `tensorflow`, then `wasm`, then `cpu`, recording why each was skipped; an
 * explicit preference that cannot be met throws {@link BackendUnavailableError}. Safe to
 * call again, with the same or another preference.
 */
export function selectBackend(preference: BackendPreference): Promise<BackendSelection> {
  const run = queue.then(() => select(preference));
  queue = run.catch(() => undefined);
  return run;
}
