import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { VersionState } from '@ballast/contracts/ballast/inference/v1/inference_pb.js';
import type { TfModel } from '@ballast/ml';
import type { ArtifactFile } from '@ballast/ml/artifact';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  demandModelFiles,
  eventually,
  FEATURES,
  failure,
  referenceModel,
  referencePredict,
  startTestInference,
  type TestInference,
} from './test-support.js';

const ROWS = [
  [10, 1, 21.5],
  [12.5, 0, 18],
  [9.99, 1, -3],
];
const named = (row: number[]) => ({ features: Object.fromEntries(FEATURES.map((f, i) => [f, row[i] ?? 0])) });

let t: TestInference;
let v1Files: ArtifactFile[];
let v2Files: ArtifactFile[];
let v1: TfModel;
let v2: TfModel;

beforeAll(async () => {
  t = await startTestInference();
  v1Files = await demandModelFiles(1);
  v2Files = await demandModelFiles(2);
  v1 = await referenceModel(v1Files);
  v2 = await referenceModel(v2Files);
  t.registry.addVersion('demand', 1, v1Files);
  t.registry.addVersion('demand', 2, v2Files);
  t.registry.setAlias('demand', 'production', 1);
  await eventually(() => t.pool.find('demand')?.aliases.get('production'), 'demand v1 serving');
});

afterAll(async () => {
  await t?.close();
});

describe('Predict', () => {
  it('answers rows of named features with model.predict, naming the version and backend', async () => {
    const response = await t.client.predict({ model: 'demand', rows: ROWS.map(named), requestId: 'r-1' });
    expect(response.version).toBe(1);
    expect(response.alias).toBe('production');
    // A chain of dense layers this small runs inline (dense-chain.ts).
    expect(response.backend).toBe('js');
    expect(response.requestId).toBe('r-1');
    const got = response.predictions.map((p) => p.outputs.prediction?.values[0] ?? Number.NaN);
    const want = referencePredict(v1, ROWS);
    for (const [i, value] of (got ?? []).entries()) expect(value).toBeCloseTo(want[i] ?? Number.NaN, 4);
    expect(response.timings?.batchSize).toBeGreaterThanOrEqual(ROWS.length);
    expect(response.timings?.totalUs).toBeGreaterThan(0n);
  });

  it('runs the same model on the worker when inline is off or over its bound, with the same answers', async () => {
    // 0: inline off; 1 us: no batch of 32 rows runs that fast, so the bound sends it to the worker.
    for (const [name, bound] of [
      ['demand-worker', '0'],
      ['demand-bound', '1'],
    ] as const) {
      t.registry.tags.set(name, { 'inference.inline_max_us': bound });
      t.registry.addVersion(name, 1, v1Files);
      t.registry.setAlias(name, 'production', 1);
    }
    await eventually(
      () =>
        t.pool.find('demand-worker')?.aliases.get('production') &&
        t.pool.find('demand-bound')?.aliases.get('production'),
      'worker copies loaded',
    );
    const inline = await t.client.predict({ model: 'demand', rows: ROWS.map(named) });
    for (const name of ['demand-worker', 'demand-bound']) {
      const worker = await t.client.predict({ model: name, rows: ROWS.map(named) });
      expect(worker.backend).toBe('wasm');
      for (const [i, p] of worker.predictions.entries()) {
        const value = p.outputs.prediction?.values[0] ?? Number.NaN;
        expect(
          Math.abs(value - (inline.predictions[i]?.outputs.prediction?.values[0] ?? Number.NaN)),
        ).toBeLessThan(1e-5);
      }
      const config = await t.oip.modelConfig({ name, version: '' });
      expect(config.config?.parameters.engine?.stringValue).toBe('wasm');
    }
    const config = await t.oip.modelConfig({ name: 'demand', version: '' });
    expect(config.config?.parameters.engine?.stringValue).toBe('js');
  });

  it('takes whole per-row inputs by input name too', async () => {
    const response = await t.client.predict({
      model: 'demand',
      rows: ROWS.map((r) => ({ inputs: { features: { values: r } } })),
    });
    const want = referencePredict(v1, ROWS);
    for (const [i, p] of response.predictions.entries()) {
      expect(p.outputs.prediction?.values[0]).toBeCloseTo(want[i] ?? 0, 4);
    }
  });

  it('serves an exact version that is loaded, and refuses one that is not', async () => {
    expect(
      (await t.client.predict({ model: 'demand', version: 1, rows: [named(ROWS[0] ?? [])] })).version,
    ).toBe(1);
    const missing = await failure(
      t.client.predict({ model: 'demand', version: 7, rows: [named(ROWS[0] ?? [])] }),
    );
    expect(missing.code).toBe(status.NOT_FOUND);
    expect(missing.details).toContain('version 7 is not loaded');
  });

  it('refuses bad input with INVALID_ARGUMENT or NOT_FOUND naming the mismatch', async () => {
    const unknownModel = await failure(t.client.predict({ model: 'nope', rows: [named([1, 2, 3])] }));
    expect(unknownModel.code).toBe(status.NOT_FOUND);
    expect(unknownModel.details).toContain('"nope"');

    const empty = await failure(t.client.predict({ model: 'demand', rows: [] }));
    expect(empty.code).toBe(status.INVALID_ARGUMENT);
    expect(empty.field).toBe('rows');

    const unknownFeature = await failure(
      t.client.predict({
        model: 'demand',
        rows: [{ features: { ...named([1, 2, 3]).features, colour: 1 } }],
      }),
    );
    expect(unknownFeature.code).toBe(status.INVALID_ARGUMENT);
    expect(unknownFeature.field).toBe('rows[0].features.colour');

    const missingFeature = await failure(
      t.client.predict({ model: 'demand', rows: [named([1, 2, 3]), { features: { price: 1, promo: 0 } }] }),
    );
    expect(missingFeature.field).toBe('rows[1].features.temperature');

    const nan = await failure(t.client.predict({ model: 'demand', rows: [named([1, Number.NaN, 3])] }));
    expect(nan.code).toBe(status.INVALID_ARGUMENT);
    expect(nan.field).toBe('rows[0].features.promo');

    const wrongLength = await failure(
      t.client.predict({ model: 'demand', rows: [{ inputs: { features: { values: [1, 2] } } }] }),
    );
    expect(wrongLength.field).toBe('rows[0].inputs.features');
    expect(wrongLength.rule).toContain('must have 3 values');

    const entities = await failure(
      t.client.predict({ model: 'demand', entities: { entities: [{ keys: { warehouse: '7' } }] } }),
    );
    expect(entities.code).toBe(status.FAILED_PRECONDITION);
    expect(entities.details).toContain('feature service');
  });

  it('streams: each request answered under its id, a bad one failing alone', async () => {
    async function* requests() {
      for (let i = 0; i < 20; i++) {
        yield {
          request: { model: 'demand', requestId: `s-${i}`, rows: i === 7 ? [] : [named(ROWS[i % 3] ?? [])] },
        };
      }
    }
    const answers = new Map<string, unknown>();
    for await (const message of t.client.predictStream(requests()))
      answers.set(message.requestId, message.result);
    expect(answers.size).toBe(20);
    const bad = answers.get('s-7') as { case: string; value: { code: number; field: string } };
    expect(bad.case).toBe('error');
    expect(bad.value.code).toBe(status.INVALID_ARGUMENT);
    const good = answers.get('s-4') as {
      case: string;
      value: { predictions: { outputs: Record<string, { values: number[] }> }[] };
    };
    expect(good.case).toBe('response');
    expect(good.value.predictions[0]?.outputs.prediction?.values[0]).toBeCloseTo(
      referencePredict(v1, [ROWS[1] ?? []])[0] ?? 0,
      4,
    );
  });
});

describe('Open Inference Protocol v2', () => {
  const input = (rows: number[][]) => ({
    name: 'features',
    datatype: 'FP32',
    shape: [BigInt(rows.length), 3n],
    contents: { fp32Contents: rows.flat() },
  });

  it('answers ServerLive, ServerReady, ServerMetadata, ModelReady and ModelMetadata', async () => {
    expect((await t.oip.serverLive({})).live).toBe(true);
    expect((await t.oip.serverReady({})).ready).toBe(true);
    expect((await t.oip.serverMetadata({})).name).toBe('ballast-inference');
    expect((await t.oip.modelReady({ name: 'demand', version: '' })).ready).toBe(true);
    expect((await t.oip.modelReady({ name: 'demand', version: '1' })).ready).toBe(true);
    expect((await t.oip.modelReady({ name: 'demand', version: '9' })).ready).toBe(false);
    const metadata = await t.oip.modelMetadata({ name: 'demand', version: '' });
    expect(metadata.versions).toEqual(['1']);
    expect(metadata.platform).toBe('tensorflowjs_wasm');
    expect(metadata.inputs).toEqual([
      expect.objectContaining({ name: 'features', datatype: 'FP32', shape: [-1n, 3n] }),
    ]);
    expect(metadata.outputs).toEqual([
      expect.objectContaining({ name: 'prediction', datatype: 'FP32', shape: [-1n, 1n] }),
    ]);
    expect((await failure(t.oip.modelMetadata({ name: 'nope', version: '' }))).code).toBe(status.NOT_FOUND);
  });

  it('ModelInfer with typed contents matches model.predict', async () => {
    const response = await t.oip.modelInfer({ modelName: 'demand', id: 'x1', inputs: [input(ROWS)] });
    expect(response.modelVersion).toBe('1');
    expect(response.id).toBe('x1');
    const [output] = response.outputs;
    expect(output?.name).toBe('prediction');
    expect(output?.datatype).toBe('FP32');
    expect(output?.shape).toEqual([3n, 1n]);
    const want = referencePredict(v1, ROWS);
    for (const [i, v] of (output?.contents?.fp32Contents ?? []).entries())
      expect(v).toBeCloseTo(want[i] ?? 0, 4);
    expect(response.rawOutputContents).toEqual([]);
  });

  it('ModelInfer with raw contents answers raw, bit for bit what model.predict gives', async () => {
    const raw = new Uint8Array(new Float32Array(ROWS.flat()).buffer);
    const response = await t.oip.modelInfer({
      modelName: 'demand',
      modelVersion: '1',
      inputs: [{ name: 'features', datatype: 'FP32', shape: [3n, 3n] }],
      rawInputContents: [raw],
    });
    expect(response.outputs[0]?.contents).toBeUndefined();
    const bytes = response.rawOutputContents[0] ?? new Uint8Array();
    const values = new Float32Array(Uint8Array.from(bytes).buffer);
    const want = referencePredict(v1, ROWS);
    expect(values.length).toBe(3);
    for (const [i, v] of (values ?? []).entries()) expect(v).toBeCloseTo(want[i] ?? 0, 4);
  });

  it('refuses wrong names, datatypes, shapes, byte lengths and mixed contents, naming the mismatch', async () => {
    const cases: [object, string, string][] = [
      [{ inputs: [{ ...input(ROWS), name: 'x' }] }, 'inputs[0].name', 'unknown input "x"'],
      [{ inputs: [{ ...input(ROWS), datatype: 'FP64' }] }, 'inputs[0].datatype', 'is FP32'],
      [{ inputs: [{ ...input(ROWS), shape: [3n, 4n] }] }, 'inputs[0].shape', 'must have shape [-1, 3]'],
      [{ inputs: [{ ...input(ROWS), shape: [0n, 3n], contents: {} }] }, 'inputs[0].shape', 'empty request'],
      [
        { inputs: [{ ...input(ROWS), contents: { fp32Contents: [1, 2] } }] },
        'inputs[0].contents.fp32_contents',
        'needs 9',
      ],
      [
        { inputs: [{ ...input(ROWS), contents: { fp64Contents: ROWS.flat() } }] },
        'inputs[0].contents',
        'fp32_contents',
      ],
      [
        { inputs: [{ ...input([[1, Number.POSITIVE_INFINITY, 3]]) }] },
        'inputs[0].contents.fp32_contents[1]',
        'finite',
      ],
      [
        {
          inputs: [{ name: 'features', datatype: 'FP32', shape: [3n, 3n] }],
          rawInputContents: [new Uint8Array(35)],
        },
        'raw_input_contents[0]',
        'has 35 bytes; shape [3, 3] of FP32 needs 9 x 4 = 36',
      ],
      [
        { inputs: [input(ROWS)], rawInputContents: [new Uint8Array(36)] },
        'inputs[0].contents',
        'cannot be mixed',
      ],
      [{ inputs: [input(ROWS)], outputs: [{ name: 'nope' }] }, 'outputs[0].name', 'unknown output "nope"'],
      [{ inputs: [] }, 'inputs', 'at least one'],
    ];
    for (const [request, field, rule] of cases) {
      const error = await failure(t.oip.modelInfer({ modelName: 'demand', ...request }));
      expect(error.code, `${field}: ${error.details}`).toBe(status.INVALID_ARGUMENT);
      expect(error.field).toBe(field);
      expect(error.details).toContain(rule);
    }
    expect((await failure(t.oip.modelInfer({ modelName: 'nope', inputs: [input(ROWS)] }))).code).toBe(
      status.NOT_FOUND,
    );
    expect(
      (await failure(t.oip.modelInfer({ modelName: 'demand', modelVersion: '5', inputs: [input(ROWS)] })))
        .code,
    ).toBe(status.NOT_FOUND);
    expect(
      (await failure(t.oip.modelInfer({ modelName: 'demand', modelVersion: 'v1', inputs: [input(ROWS)] })))
        .field,
    ).toBe('model_version');
  });
});

describe('hot swap', () => {
  it('moves production between versions under continuous load with no failed request and no mixed answer, memory flat', async () => {
    const want = new Map([
      [1, referencePredict(v1, [ROWS[0] ?? []])[0] ?? 0],
      [2, referencePredict(v2, [ROWS[0] ?? []])[0] ?? 0],
    ]);
    const baseline = await t.executor.memory();
    let stop = false;
    let answered = 0;
    const failures: unknown[] = [];
    const seen = new Set<number>();
    const load = Array.from({ length: 8 }, async () => {
      while (!stop) {
        try {
          const response = await t.client.predict({ model: 'demand', rows: [named(ROWS[0] ?? [])] });
          seen.add(response.version);
          const value = response.predictions[0]?.outputs.prediction?.values[0] ?? Number.NaN;
          if (Math.abs(value - (want.get(response.version) ?? Number.NaN)) > 1e-3) {
            failures.push(`version ${response.version} answered ${value}`);
          }
          answered++;
        } catch (error) {
          failures.push(error);
        }
      }
    });
    for (let swap = 1; swap <= 100; swap++) {
      const target = swap % 2 === 1 ? 2 : 1;
      t.registry.setAlias('demand', 'production', target);
      await eventually(
        () => t.pool.find('demand')?.aliases.get('production')?.version === target,
        `swap ${swap}`,
      );
    }
    stop = true;
    await Promise.all(load);
    expect(failures).toEqual([]);
    expect(seen).toEqual(new Set([1, 2]));
    expect(answered).toBeGreaterThan(100);
    // The replaced versions drained and were disposed: the worker holds what it held before.
    const after = await eventually(async () => {
      const memory = await t.executor.memory();
      return memory.models === baseline.models ? memory : undefined;
    }, 'old versions disposed');
    expect(after.numTensors).toBe(baseline.numTensors);
  });

  it('refuses a corrupt artifact at load while the current version keeps serving', async () => {
    const current = t.pool.find('demand')?.aliases.get('production')?.version ?? 0;
    const corrupt = v2Files.map((f) =>
      f.path === 'weights.bin' ? { ...f, data: f.data.subarray(0, 10) } : f,
    );
    t.registry.addVersion('demand', 3, corrupt);
    t.registry.setAlias('demand', 'production', 3);
    const status3 = await eventually(async () => {
      const s = await t.client.getServingStatus({ model: 'demand' });
      return s.models[0]?.versions.find((v) => v.version === 3 && v.state === VersionState.FAILED);
    }, 'v3 failed');
    expect(status3.error).toMatch(/weights|bytes|shard|size/i);
    const details = await t.client.getServingStatus({ model: 'demand' });
    expect(details.backend).toBe('wasm');
    expect(details.backendReason).toContain('WebAssembly');
    expect(details.registryConnected).toBe(true);
    expect(details.models[0]?.versions.find((v) => v.state === VersionState.READY)?.version).toBe(current);
    const response = await t.client.predict({ model: 'demand', rows: [named(ROWS[0] ?? [])] });
    expect(response.version).toBe(current);
    // An incompatible model (its signature does not match the registry's record) is refused too.
    t.registry.addVersion('demand', 4, v2Files, {
      inputs: [{ name: 'x', dtype: 'float32', shape: [-1n, 3n] }],
    });
    t.registry.setAlias('demand', 'production', 4);
    const status4 = await eventually(async () => {
      const s = await t.client.getServingStatus({ model: 'demand' });
      return s.models[0]?.versions.find((v) => v.version === 4 && v.state === VersionState.FAILED);
    }, 'v4 failed');
    expect(status4.error).toContain('input "x"');
    expect((await t.client.predict({ model: 'demand', rows: [named(ROWS[0] ?? [])] })).version).toBe(current);
  });
});

describe('a client outside Node', () => {
  it("calls ModelInfer with Debian's python3-grpcio, typed and raw, and gets model.predict's answers", async () => {
    const here = dirname(fileURLToPath(import.meta.url));
    const proto = join(here, '..', '..', '..', 'proto', 'inference', 'grpc_predict_v2.proto');
    // Asynchronously: the server answering it runs in this process's event loop.
    const result = await promisify(execFile)(
      '/usr/bin/python3',
      [join(here, 'oip_client.py'), t.address, proto, 'demand'],
      {
        encoding: 'utf8',
        timeout: 60_000,
      },
    );
    expect(result.stderr).toBe('');
    const answer = JSON.parse(result.stdout) as {
      ready: boolean;
      typed: number[];
      raw: number[];
      shape: number[];
      missing: string;
    };
    const want = referencePredict(
      await referenceModel(
        t.pool.find('demand')?.aliases.get('production')?.version === 1 ? v1Files : v2Files,
      ),
      [
        [10, 1, 21.5],
        [12.5, 0, 18],
      ],
    );
    expect(answer.ready).toBe(true);
    expect(answer.shape).toEqual([2, 1]);
    for (const [i, v] of answer.typed.entries()) expect(v).toBeCloseTo(want[i] ?? 0, 4);
    for (const [i, v] of answer.raw.entries()) expect(v).toBeCloseTo(want[i] ?? 0, 4);
    expect(answer.missing).toBe('NOT_FOUND');
  });
});
