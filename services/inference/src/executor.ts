import { Worker } from 'node:worker_threads';
import type { BackendSelection } from '@ballast/ml';
import type {
  LoadResult,
  OutputData,
  TensorData,
  WorkerRequest,
  WorkerResponse,
} from './executor-protocol.js';

export type { LoadResult, NumericArray, OutputData, TensorData } from './executor-protocol.js';

/** Outputs of one execution and how long the worker spent on it. */
export interface RunResult {
  outputs: OutputData[];
  execUs: number;
}

/** A load, warm-up or run that the worker refused: a corrupt or incompatible model. */
export class ExecutorError extends Error {
  override name = 'ExecutorError';
}

type Pending = { resolve: (r: { result: unknown; execUs: number }) => void; reject: (e: Error) => void };

/** Tests run the TypeScript sources; the worker runs from the build (nx builds before test). */
function workerUrl(): URL {
  const here = import.meta.url;
  return here.endsWith('.ts')
    ? new URL('../dist/executor-worker.js', here)
    : new URL('./executor-worker.js', here);
}

/**
 * Runs models on a worker thread with its own TensorFlow.js, so that model execution never
 * blocks the event loop that serves gRPC. Requests are answered in the order the worker
 * finishes them; inputs and outputs move as transferred buffers, not copies.
 */
export class Executor {
  readonly #worker: Worker;
  readonly #pending = new Map<number, Pending>();
  #next = 1;
  #dead: Error | undefined;
  backend: BackendSelection | undefined;

  private constructor() {
    this.#worker = new Worker(workerUrl());
    this.#worker.on('message', (response: WorkerResponse) => {
      const pending = this.#pending.get(response.id);
      if (!pending) return;
      this.#pending.delete(response.id);
      if (response.ok) pending.resolve({ result: response.result, execUs: response.execUs ?? 0 });
      else pending.reject(new ExecutorError(response.error));
    });
    const fail = (error: Error) => {
      this.#dead = error;
      for (const pending of this.#pending.values()) pending.reject(error);
      this.#pending.clear();
    };
    this.#worker.on('error', fail);
    this.#worker.on('exit', (code) => fail(new Error(`model worker exited (code ${code})`)));
  }

  /** Starts the worker and selects its TensorFlow.js backend (`auto|tensorflow|wasm|cpu`). */
  static async start(backend: string): Promise<Executor> {
    const executor = new Executor();
    try {
      executor.backend = (await executor.#call({ op: 'init', backend })).result as BackendSelection;
    } catch (error) {
      await executor.close();
      throw error;
    }
    return executor;
  }

  #call(request: DistributiveOmit<WorkerRequest, 'id'>, transfer: ArrayBuffer[] = []) {
    if (this.#dead) return Promise.reject(this.#dead);
    const id = this.#next++;
    return new Promise<{ result: unknown; execUs: number }>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#worker.postMessage({ ...request, id }, transfer);
    });
  }

  async load(key: string, files: { path: string; data: Uint8Array }[]): Promise<LoadResult> {
    return (await this.#call({ op: 'load', key, files })).result as LoadResult;
  }

  async warmup(key: string, sizes: number[]): Promise<void> {
    await this.#call({ op: 'warmup', key, sizes });
  }

  /** Runs a batch; the input buffers are transferred to the worker (unusable here afterwards). */
  async run(key: string, inputs: TensorData[]): Promise<RunResult> {
    const { result, execUs } = await this.#call(
      { op: 'run', key, inputs },
      inputs.map((i) => i.data.buffer as ArrayBuffer),
    );
    return { outputs: result as OutputData[], execUs };
  }

  async unload(key: string): Promise<void> {
    await this.#call({ op: 'unload', key });
  }

  /** The worker's TensorFlow.js memory: tensors held (should return to its baseline after swaps). */
  async memory(): Promise<{ numTensors: number; numBytes: number; models: number }> {
    return (await this.#call({ op: 'memory' })).result as {
      numTensors: number;
      numBytes: number;
      models: number;
    };
  }

  async close(): Promise<void> {
    this.#dead ??= new Error('executor closed');
    await this.#worker.terminate();
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
