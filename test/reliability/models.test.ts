// A malicious model.json (issue 17, item 9): layers that would make TensorFlow.js allocate
// terabytes. The registry refuses it at upload, and inference, given one anyway (a registry
// whose bound was raised, or one from before the check), refuses it at load by the weight
// budget, before tfjs allocates, and keeps serving its other models.
import { InferenceService } from '@ballast/contracts/ballast/inference/v1/inference_pb.js';
import { RegistryService } from '@ballast/contracts/ballast/registry/v1/registry_pb.js';
import { createClient, RpcError } from '@ballast/grpc-kit';
import { type ArtifactFile, modelSignature, saveModelFiles, selectBackend } from '@ballast/ml';
import { status } from '@grpc/grpc-js';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { suiteRecorder } from './report.js';
import {
  artifactUploadParts,
  rssKiB,
  ServingStatus,
  startService,
  suiteParts,
  tempDir,
  waitHealth,
} from './support.js';
import { predictRequest, registerDemandModel, registerFilesAndPromote } from './workload.js';

const record = suiteRecorder('models', 'Models: a model.json that would allocate terabytes');
const parts = suiteParts('models');

const WIDE = 1_000_000;

/**
 * A real 3 -> 4 -> 4 -> 1 model whose model.json is then edited so its two hidden layers
 * have a million units each: 1e12 parameters (4 TB of float32) for tfjs to create, while
 * weights.bin and the weightsManifest stay those of the small model.
 */
async function hugeModel(): Promise<{ files: ArtifactFile[]; signature: ReturnType<typeof modelSignature> }> {
  await selectBackend('cpu');
  const input = tf.input({ shape: [3], name: 'features' });
  const a = tf.layers.dense({ units: 4, name: 'wide_a' }).apply(input) as tf.SymbolicTensor;
  const b = tf.layers.dense({ units: 4, name: 'wide_b' }).apply(a) as tf.SymbolicTensor;
  const out = tf.layers.dense({ units: 1, name: 'prediction' }).apply(b) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: out });
  model.setUserDefinedMetadata({ featureNames: { features: ['price', 'promo', 'temperature'] } });
  const files = await saveModelFiles(model);
  const signature = modelSignature(model);
  model.dispose();
  const json = JSON.parse(new TextDecoder().decode(files[0]?.data));
  for (const layer of json.modelTopology.config.layers)
    if (String(layer.name).startsWith('wide_')) layer.config.units = WIDE;
  return {
    files: [
      { path: 'model.json', data: new TextEncoder().encode(JSON.stringify(json)) },
      files[1] as ArtifactFile,
    ],
    signature,
  };
}

describe('a model.json whose layers would allocate terabytes', () => {
  it('is refused by the registry at upload and by inference at load, which keeps serving the others', async () => {
    const { files, signature } = await hugeModel();
    const env = {
      BALLAST_REDIS_URL: parts.redis.url,
      BALLAST_DATABASE_URL: parts.db.url,
    };
    // 1. The registry with the default bound (1 GiB of weights).
    const registry = await startService('registry', { ...env, BALLAST_DATA_DIR: tempDir('models-registry') });
    parts.procs.push(registry);
    await waitHealth(registry, RegistryService.typeName);
    const client = createClient(RegistryService, { address: registry.address, deadlineMs: 30_000 });
    const refused = await client.uploadArtifact(artifactUploadParts(files)).then(
      () => undefined,
      (e: unknown) => e,
    );
    client.close();
    const upload = refused instanceof RpcError ? refused : undefined;

    // 2. A registry whose operator raised the bound to 10 TB accepts it; inference keeps the default.
    await registry.kill('SIGKILL');
    const lax = await startService('registry', {
      ...env,
      BALLAST_DATA_DIR: tempDir('models-registry-lax'),
      BALLAST_MODEL_MAX_WEIGHT_BYTES: String(10 * 1024 ** 4),
    });
    parts.procs.push(lax);
    await waitHealth(lax, RegistryService.typeName);
    const laxClient = createClient(RegistryService, { address: lax.address, deadlineMs: 30_000 });
    await registerDemandModel(laxClient);
    const inference = await startService('inference', {
      ...env,
      BALLAST_DATA_DIR: tempDir('models-inference'),
      BALLAST_REGISTRY_ADDR: lax.address,
      BALLAST_TF_BACKEND: 'cpu',
    });
    parts.procs.push(inference);
    await waitHealth(inference, InferenceService.typeName, ServingStatus.SERVING, 120_000);
    const predict = createClient(InferenceService, { address: inference.address, deadlineMs: 10_000 });
    await predict.predict(predictRequest('demand', 0));
    const rssBefore = rssKiB(inference.child.pid);
    await registerFilesAndPromote(laxClient, 'huge', files, signature, {
      seed: 1,
      reason: 'malicious model.json',
    });
    laxClient.close();
    const refusedAt = /model huge version 1 refused at load[^\n]*/;
    const logged = async () => {
      for (let i = 0; i < 1_200 && !refusedAt.test(inference.output()); i++) {
        if (!inference.alive()) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      return inference.output().match(refusedAt)?.[0] ?? '';
    };
    const loadLine = await logged();
    const errorLine = inference
      .output()
      .split('\n')
      .find((l) => l.includes('refused at load') && l.includes('"huge"'));
    let demandOk = 0;
    for (let i = 0; i < 50; i++) {
      await predict.predict(predictRequest('demand', i));
      demandOk++;
    }
    const huge = await predict.predict(predictRequest('huge', 0)).then(
      () => 'OK',
      (e: unknown) => (e instanceof RpcError ? `${status[e.code]}: ${e.details}` : String(e)),
    );
    predict.close();
    const rssAfter = rssKiB(inference.child.pid);
    const bound = 'over the bound of 1073741824 bytes (BALLAST_MODEL_MAX_WEIGHT_BYTES)';
    const namesBound = (errorLine ?? loadLine).includes(bound);
    const pass = record({
      scenario:
        'a model.json of two Dense layers of 1,000,000 units (1e12 parameters): registry upload, inference load',
      headline: `malicious model.json (1e12 parameters, 4 TB): registry UploadArtifact ${upload ? status[upload.code] : 'OK'}${upload?.details.includes('BALLAST_MODEL_MAX_WEIGHT_BYTES') ? ' naming the bound' : ''}; inference refused it at load ${namesBound ? 'naming the bound' : 'without naming the bound'}, alive, ${demandOk} of 50 Predicts of the other model OK, RSS ${Math.round(rssBefore / 1024)} -> ${Math.round(rssAfter / 1024)} MiB`,
      injected:
        "a real 3 -> 4 -> 4 -> 1 model whose model.json says the two hidden Dense layers have 1,000,000 units (its weights.bin the small model's); uploaded to a registry with the default bound, then to one with BALLAST_MODEL_MAX_WEIGHT_BYTES=10 TiB, registered and promoted beside a good model while inference (default bound) serves it",
      measured: {
        'registry (default bound): UploadArtifact': upload
          ? `${status[upload.code]}: ${upload.details}`
          : 'OK',
        'field / rule trailers': upload ? `${upload.field ?? ''} / ${upload.rule ?? ''}` : 'n/a',
        'inference: the load refusal it logged': (errorLine ?? loadLine).slice(0, 600),
        'inference alive afterwards': inference.alive(),
        'Predict on the good model after it (OK of 50)': demandOk,
        'Predict on the refused model': huge,
        'inference RSS before / after (MiB)': `${Math.round(rssBefore / 1024)} / ${Math.round(rssAfter / 1024)}`,
      },
      pass:
        upload?.code === status.INVALID_ARGUMENT &&
        upload.details.includes(bound) &&
        namesBound &&
        inference.alive() &&
        demandOk === 50 &&
        rssAfter - rssBefore < 256 * 1024,
    });
    expect(upload?.code).toBe(status.INVALID_ARGUMENT);
    expect(upload?.details).toContain('model.json.modelTopology.config.layers[2]');
    expect(upload?.details).toContain(bound);
    expect(errorLine ?? loadLine).toContain(bound);
    expect(inference.alive()).toBe(true);
    expect(demandOk).toBe(50);
    expect(huge).not.toBe('OK');
    expect(rssAfter - rssBefore).toBeLessThan(256 * 1024);
    expect(pass).toBe(true);
  }, 300_000);
});
