/**
 * Models to artifact files and back, entirely in memory: the trainer uploads the files to
 * the registry, inference downloads and loads them. No file system, no HTTP loader.
 */
import * as tf from '@tensorflow/tfjs';
import { type ArtifactFile, checkArtifactComplete, type WeightBudget } from './artifact.js';

/** A model Ballast can serve: trained here (layers) or converted from TensorFlow (graph). */
export type TfModel = tf.LayersModel | tf.GraphModel;

export const MODEL_JSON_PATH = 'model.json';
export const WEIGHTS_PATH = 'weights.bin';

function toFiles(artifacts: tf.io.ModelArtifacts): ArtifactFile[] {
  if (artifacts.modelTopology instanceof ArrayBuffer) {
    throw new Error('cannot save a model whose topology is a binary GraphDef; Ballast stores model.json');
  }
  // The same keys, in the same order, as tfjs's own model.json writer, with one shard:
  // Ballast models are small, and object stores do not need 4 MB shards.
  const modelJson: tf.io.ModelJSON = {
    modelTopology: artifacts.modelTopology ?? {},
    ...(artifacts.format === undefined ? {} : { format: artifacts.format }),
    ...(artifacts.generatedBy === undefined ? {} : { generatedBy: artifacts.generatedBy }),
    ...(artifacts.convertedBy === undefined ? {} : { convertedBy: artifacts.convertedBy }),
    weightsManifest: [{ paths: [WEIGHTS_PATH], weights: artifacts.weightSpecs ?? [] }],
  };
  if (artifacts.signature != null) modelJson.signature = artifacts.signature;
  if (artifacts.userDefinedMetadata != null) modelJson.userDefinedMetadata = artifacts.userDefinedMetadata;
  if (artifacts.modelInitializer != null) modelJson.modelInitializer = artifacts.modelInitializer;
  if (artifacts.initializerSignature != null) modelJson.initializerSignature = artifacts.initializerSignature;
  if (artifacts.trainingConfig != null) modelJson.trainingConfig = artifacts.trainingConfig;
  const weights = tf.io.CompositeArrayBuffer.join(artifacts.weightData ?? new ArrayBuffer(0));
  return [
    { path: MODEL_JSON_PATH, data: new TextEncoder().encode(JSON.stringify(modelJson)) },
    { path: WEIGHTS_PATH, data: new Uint8Array(weights) },
  ];
}

/**
 * Serialises a model to artifact files: `model.json` and one `weights.bin`. The bytes
 * depend only on the model (topology, layer names, weights) and the tfjs version named in
 * `generatedBy`, so saving the same model twice yields the same artifact digest.
 */
export async function saveModelFiles(model: TfModel): Promise<ArtifactFile[]> {
  let files: ArtifactFile[] | undefined;
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      files = toFiles(artifacts);
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
    }),
  );
  if (files === undefined) throw new Error('tfjs finished saving without handing over the model');
  return files;
}

/**
 * Loads a model from artifact files: a tf.LayersModel for `layers-model` artifacts, a
 * tf.GraphModel for `graph-model` ones (tensorflowjs_converter output). The artifact is
 * validated with artifact.ts first, so unsafe or missing weight paths, extra files,
 * truncated shards, prototype-polluting JSON and weights over the budget
 * (BALLAST_MODEL_MAX_WEIGHT_BYTES, 1 GiB by default) are refused with an ArtifactError
 * before tfjs parses anything. Weight shards are copied once into tfjs-owned buffers.
 */
export async function loadModelFromFiles(
  files: readonly ArtifactFile[],
  budget?: WeightBudget,
): Promise<TfModel> {
  const { model, weightFiles } = checkArtifactComplete(files, budget);
  const byPath = new Map(files.map((file) => [file.path, file.data]));
  // Groups are concatenated in manifest order, shards within a group in path order: the
  // same layout tfjs's HTTP and file loaders build before decoding the weight specs.
  const shards = weightFiles.flat().map((path) => new Uint8Array(byPath.get(path)!).buffer);
  const specs = model.json.weightsManifest.flatMap((group) => group.weights);
  const artifacts = tf.io.getModelArtifactsForJSONSync(
    model.json as unknown as tf.io.ModelJSON,
    specs as unknown as tf.io.WeightsManifestEntry[],
    shards,
  );
  const handler = tf.io.fromMemory(artifacts);
  return model.format === 'graph-model' ? tf.loadGraphModel(handler) : tf.loadLayersModel(handler);
}
