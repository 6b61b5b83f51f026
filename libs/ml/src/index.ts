export {
  ArtifactError,
  type ArtifactFile,
  type ArtifactManifest,
  artifactManifest,
  type CompleteArtifact,
  checkArtifactComplete,
  IncompleteArtifactError,
  MAX_ARTIFACT_PATH_BYTES,
  type ManifestEntry,
  type ModelFormat,
  type ModelJson,
  manifestDigest,
  type ParsedModelJson,
  parseModelJson,
  validateArtifactPath,
  type WeightGroup,
  type WeightSpec,
} from './artifact.js';
export {
  BACKEND_PREFERENCES,
  type BackendName,
  type BackendPreference,
  type BackendSelection,
  BackendUnavailableError,
  parseBackendPreference,
  selectBackend,
} from './backend.js';
export {
  loadModelFromFiles,
  MODEL_JSON_PATH,
  saveModelFiles,
  type TfModel,
  WEIGHTS_PATH,
} from './model-io.js';
export { type ModelSignature, modelSignature, type TensorSpec } from './signature.js';
export {
  type EpochMetrics,
  type FeatureNormalization,
  TABULAR_INPUT,
  TABULAR_OUTPUT,
  type TabularTask,
  type TrainedTabularModel,
  TrainingInputError,
  type TrainTabularOptions,
  trainTabularModel,
} from './train.js';
