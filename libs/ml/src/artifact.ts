/**
 * Model artifacts as plain files: path rules, content digests and the checks a TF.js
 * `model.json` must pass before any of its bytes reach TensorFlow.js.
 *
 * This module must not import TensorFlow.js, directly or through another module of this
 * package: the registry stores and verifies artifacts without ever running a model, and
 * imports it as `@ballast/ml/artifact` to stay light. (artifact.test.ts enforces this.)
 */
import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import secureJsonParse from 'secure-json-parse';
import { ArtifactError } from './artifact-error.js';
import {
  BYTES_PER_ELEMENT,
  checkWeightBudget,
  type WeightBudget,
  weightBudgetFromEnv,
} from './weight-budget.js';

export { ArtifactError } from './artifact-error.js';

/** One file of a model artifact, e.g. `model.json` or a weight shard. */
export interface ArtifactFile {
  path: string;
  data: Uint8Array;
}

/** What the registry records of each file: enough to verify the bytes later. */
export interface ManifestEntry {
  path: string;
  /** Bytes. */
  size: number;
  /** Lowercase hex SHA-256 of the bytes. */
  sha256: string;
}

export interface ArtifactManifest {
  /** Sorted by path (UTF-8 byte order). */
  files: ManifestEntry[];
  /** See {@link manifestDigest}. */
  digest: string;
}

/** A path's UTF-8 length limit: generous for `group1-shard12of40.bin` under a few folders,
 * short enough to embed in any object-store key. */
export const MAX_ARTIFACT_PATH_BYTES = 512;

/** The weight files model.json names do not match the artifact's files. */
export class IncompleteArtifactError extends ArtifactError {
  override readonly name: string = 'IncompleteArtifactError';

  constructor(
    /** Weight files model.json references that the artifact lacks (resolved paths). */
    readonly missing: readonly string[],
    /** Files in the artifact that model.json does not reference. */
    readonly extra: readonly string[],
    /** Weight paths, as written in model.json, that are absolute, URLs or leave the artifact. */
    readonly unsafe: readonly string[],
  ) {
    const parts = [
      missing.length > 0 ? `missing weight files ${missing.join(', ')}` : '',
      unsafe.length > 0 ? `unsafe weight paths ${unsafe.join(', ')}` : '',
      extra.length > 0 ? `files model.json does not reference ${extra.join(', ')}` : '',
    ];
    super('weightsManifest', 'complete', `artifact is incomplete: ${parts.filter(Boolean).join('; ')}`);
  }
}

const CONTROL = /\p{Cc}/u;
// In a `u` regex a well-formed surrogate pair reads as one code point; only a lone
// surrogate matches. Lone surrogates cannot be encoded as UTF-8, so two different JS
// strings could otherwise map to the same stored key.
const LONE_SURROGATE = /\p{Cs}/u;

/**
 * Checks that `path` is a canonical relative POSIX path inside an artifact: not empty, at
 * most {@link MAX_ARTIFACT_PATH_BYTES}, no leading `/`, no `\`, no empty, `.` or `..`
 * segments, no control characters or lone surrogates. Canonical matters as much as safe:
 * `a/./b` and `a//b` would name the same file as `a/b` under different digests.
 * Returns the path; throws {@link ArtifactError} naming `field` and the rule broken.
 */
export function validateArtifactPath(path: string, field = 'path'): string {
  const fail = (rule: string, message: string): never => {
    throw new ArtifactError(field, rule, `${message} (got ${JSON.stringify(path)})`);
  };
  if (typeof path !== 'string') fail('type', 'must be a string');
  if (path.length === 0) fail('required', 'must not be empty');
  if (Buffer.byteLength(path, 'utf8') > MAX_ARTIFACT_PATH_BYTES) {
    fail('max-length', `must be at most ${MAX_ARTIFACT_PATH_BYTES} bytes of UTF-8`);
  }
  if (CONTROL.test(path)) fail('no-control-characters', 'must not contain control characters');
  if (LONE_SURROGATE.test(path)) fail('well-formed-unicode', 'must be well-formed Unicode');
  if (path.includes('\\')) fail('no-backslash', 'must use / as separator, not \\');
  if (path.startsWith('/')) fail('relative', 'must be relative, not absolute');
  for (const segment of path.split('/')) {
    if (segment === '') fail('no-empty-segment', 'must not contain empty segments (//, trailing /)');
    if (segment === '.' || segment === '..') fail('no-dot-segment', 'must not contain . or .. segments');
  }
  return path;
}

/** Orders paths by their UTF-8 bytes (= code point order), which any language reproduces,
 * unlike JavaScript's default UTF-16 order. */
function compareUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

const SHA256_HEX = /^[0-9a-f]{64}$/;

/** Validates manifest entries and returns them as a fresh, sorted list of plain entries. */
function canonicalEntries(entries: readonly ManifestEntry[]): ManifestEntry[] {
  const seen = new Set<string>();
  const copies = entries.map((entry, index) => {
    const path = validateArtifactPath(entry.path, `files[${index}].path`);
    if (seen.has(path)) {
      throw new ArtifactError(`files[${index}].path`, 'unique', `${JSON.stringify(path)} appears twice`);
    }
    seen.add(path);
    if (!Number.isSafeInteger(entry.size) || entry.size < 0) {
      throw new ArtifactError(`files[${index}].size`, 'non-negative-integer', 'must be a byte count');
    }
    if (typeof entry.sha256 !== 'string' || !SHA256_HEX.test(entry.sha256)) {
      throw new ArtifactError(`files[${index}].sha256`, 'sha256-hex', 'must be 64 lowercase hex digits');
    }
    return { path, size: entry.size, sha256: entry.sha256 };
  });
  return copies.sort((a, b) => compareUtf8(a.path, b.path));
}

/**
 * The digest of an artifact, computed from its manifest alone so that the registry (which
 * has the bytes when they are uploaded, and only the manifest afterwards) and inference
 * (which has the bytes it downloaded) agree without sharing anything but this rule.
 *
 * Canonical form, exactly:
 *   1. entries sorted by `path`, comparing the paths' UTF-8 bytes;
 *   2. each entry written as an object with the keys `path`, `size`, `sha256` in that order
 *      and nothing else; `size` a JSON integer, `sha256` lowercase hex;
 *   3. the array serialised as JSON with no whitespace (JavaScript's `JSON.stringify`;
 *      paths are validated, so the only character it can escape is `"` as `\"`);
 *   4. digest = lowercase hex SHA-256 of that text's UTF-8 bytes.
 * e.g. `[{"path":"model.json","size":1523,"sha256":"9f86…"},{"path":"weights.bin","size":4096,"sha256":"2c26…"}]`
 *
 * Entries are validated first (paths, sizes, hex, no duplicate paths); order does not matter.
 */
export function manifestDigest(entries: readonly ManifestEntry[]): string {
  return digestOf(canonicalEntries(entries));
}

function digestOf(sorted: readonly ManifestEntry[]): string {
  return sha256Hex(JSON.stringify(sorted.map(({ path, size, sha256 }) => ({ path, size, sha256 }))));
}

/** Hashes every file and returns the sorted manifest with its {@link manifestDigest}. */
export function artifactManifest(files: readonly ArtifactFile[]): ArtifactManifest {
  const sorted = canonicalEntries(
    files.map((file) => ({ path: file.path, size: file.data.byteLength, sha256: sha256Hex(file.data) })),
  );
  return { files: sorted, digest: digestOf(sorted) };
}

/** A weight as model.json describes it (the fields Ballast checks; tfjs reads the rest). */
export interface WeightSpec {
  name: string;
  shape: number[];
  dtype: string;
  quantization?: { dtype: string; [key: string]: unknown };
  [key: string]: unknown;
}

export interface WeightGroup {
  /** Shard files, relative to model.json's folder, concatenated in this order. */
  paths: string[];
  weights: WeightSpec[];
}

/** The parts of a TF.js model.json Ballast relies on; everything else is passed through. */
export interface ModelJson {
  modelTopology: Record<string, unknown>;
  weightsManifest: WeightGroup[];
  format?: string;
  [key: string]: unknown;
}

export type ModelFormat = 'layers-model' | 'graph-model';

export interface ParsedModelJson {
  json: ModelJson;
  /** `layers-model` (tf.LayersModel, Keras-style) or `graph-model` (converted TensorFlow graph). */
  format: ModelFormat;
  /** Every weight path in manifest order, as written (relative to model.json's folder). */
  weightPaths: string[];
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

function modelFormat(json: Record<string, unknown>, topology: Record<string, unknown>, field: string) {
  if (json.format === 'layers-model' || json.format === 'graph-model') return json.format;
  if (json.format !== undefined) {
    throw new ArtifactError(`${field}.format`, 'format', `unknown format ${JSON.stringify(json.format)}`);
  }
  // model.json files from before TF.js 1.0 carry no format: a GraphDef has nodes, Keras has a class.
  if (Array.isArray(topology.node)) return 'graph-model';
  if (typeof topology.class_name === 'string') return 'layers-model';
  throw new ArtifactError(`${field}.modelTopology`, 'format', 'is neither a Keras model nor a GraphDef');
}

function weightGroup(group: unknown, field: string): WeightGroup {
  if (!isObject(group)) throw new ArtifactError(field, 'object', 'must be an object');
  const { paths, weights } = group;
  if (!Array.isArray(paths) || !paths.every((path) => typeof path === 'string')) {
    throw new ArtifactError(`${field}.paths`, 'string-array', 'must be an array of strings');
  }
  if (!Array.isArray(weights)) throw new ArtifactError(`${field}.weights`, 'array', 'must be an array');
  weights.forEach((weight: unknown, index) => {
    const ok =
      isObject(weight) &&
      typeof weight.name === 'string' &&
      typeof weight.dtype === 'string' &&
      Array.isArray(weight.shape) &&
      weight.shape.every((dim) => Number.isSafeInteger(dim) && dim >= 0);
    if (!ok) {
      throw new ArtifactError(
        `${field}.weights[${index}]`,
        'weight-spec',
        'needs a name, a dtype and a shape',
      );
    }
  });
  return group as unknown as WeightGroup;
}

/**
 * Parses model.json bytes with secure-json-parse, refusing `__proto__` keys and
 * `constructor.prototype` (the shapes that pollute prototypes once tfjs merges configs),
 * and checks that it is a TF.js model: an object `modelTopology` and a `weightsManifest`
 * of groups with `paths` and `weights` arrays.
 */
export function parseModelJson(bytes: Uint8Array | string, field = 'model.json'): ParsedModelJson {
  let text: string;
  try {
    text = typeof bytes === 'string' ? bytes : new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new ArtifactError(field, 'utf8', 'is not valid UTF-8');
  }
  let json: unknown;
  try {
    json = secureJsonParse(text, null, { protoAction: 'error', constructorAction: 'error' });
  } catch (error) {
    const forbidden = error instanceof SyntaxError && /forbidden prototype property/.test(error.message);
    throw forbidden
      ? new ArtifactError(
          field,
          'no-prototype-keys',
          'must not contain __proto__ or constructor.prototype keys',
        )
      : new ArtifactError(field, 'json', `is not valid JSON: ${(error as Error).message}`);
  }
  if (!isObject(json)) throw new ArtifactError(field, 'object', 'must be a JSON object');
  const topology = json.modelTopology;
  if (!isObject(topology)) throw new ArtifactError(`${field}.modelTopology`, 'object', 'must be an object');
  const format = modelFormat(json, topology, field);
  const manifest = json.weightsManifest;
  if (!Array.isArray(manifest)) {
    throw new ArtifactError(`${field}.weightsManifest`, 'array', 'must be an array of weight groups');
  }
  const groups = manifest.map((group, index) => weightGroup(group, `${field}.weightsManifest[${index}]`));
  return { json: json as ModelJson, format, weightPaths: groups.flatMap((group) => group.paths) };
}

/** A weight path from model.json, resolved against model.json's folder; null when unsafe. */
function resolveWeightPath(folder: string, path: string): string | null {
  // Absolute paths and URLs would make a loader look outside the artifact; posix.join
  // would silently turn `/etc/x` into `etc/x`, so refuse them before joining.
  if (path.startsWith('/') || path.includes('\\') || /^[a-z][a-z0-9+.-]*:/i.test(path)) return null;
  const resolved = posix.normalize(posix.join(folder, path));
  try {
    return validateArtifactPath(resolved);
  } catch {
    return null; // `..` left after normalising: the path climbs out of the artifact
  }
}

/** The bytes a group's weights need, or null when one of them has no fixed size (strings). */
function groupByteLength(group: WeightGroup): number | null {
  let total = 0;
  for (const weight of group.weights) {
    const size = BYTES_PER_ELEMENT[weight.quantization?.dtype ?? weight.dtype];
    if (size === undefined) return null;
    total += weight.shape.reduce((product, dim) => product * dim, 1) * size;
  }
  return total;
}

export interface CompleteArtifact {
  /** Where model.json is, e.g. `model.json` or `tfjs/model.json`. */
  modelJsonPath: string;
  model: ParsedModelJson;
  /** Per weight group, its shard files as artifact paths, in concatenation order. */
  weightFiles: string[][];
}

/**
 * Checks that an artifact is exactly one model.json plus the weight files it references:
 * every path valid and unique, every weight path resolved relative to model.json's folder
 * staying inside the artifact and present, no unreferenced files, and each group's shards
 * at least as long as its weights need. Throws {@link IncompleteArtifactError} listing
 * missing, extra and unsafe paths together, or {@link ArtifactError} for the rest, a
 * model over the weight budget (weight-budget.ts) included.
 */
export function checkArtifactComplete(
  files: readonly ArtifactFile[],
  budget: WeightBudget = weightBudgetFromEnv(),
): CompleteArtifact {
  const byPath = new Map<string, Uint8Array>();
  files.forEach((file, index) => {
    validateArtifactPath(file.path, `files[${index}].path`);
    if (byPath.has(file.path)) {
      throw new ArtifactError(`files[${index}].path`, 'unique', `${JSON.stringify(file.path)} appears twice`);
    }
    byPath.set(file.path, file.data);
  });
  const modelJsons = [...byPath.keys()].filter((path) => posix.basename(path) === 'model.json');
  const [modelJsonPath] = modelJsons;
  if (modelJsonPath === undefined || modelJsons.length > 1) {
    const found = modelJsons.length === 0 ? 'none' : modelJsons.join(', ');
    throw new ArtifactError('files', 'one-model-json', `needs exactly one model.json (found ${found})`);
  }
  const model = parseModelJson(byPath.get(modelJsonPath)!, modelJsonPath);
  // Before anything is allocated for it: a model.json can ask tfjs for terabytes.
  checkWeightBudget(model, budget, modelJsonPath);
  const folder = posix.dirname(modelJsonPath);
  const missing: string[] = [];
  const unsafe: string[] = [];
  const referenced = new Set<string>([modelJsonPath]);
  const weightFiles = model.json.weightsManifest.map((group) =>
    group.paths.flatMap((path) => {
      const resolved = resolveWeightPath(folder, path);
      if (resolved === null) {
        unsafe.push(path);
        return [];
      }
      referenced.add(resolved);
      if (!byPath.has(resolved)) missing.push(resolved);
      return [resolved];
    }),
  );
  const extra = [...byPath.keys()].filter((path) => !referenced.has(path));
  if (missing.length > 0 || unsafe.length > 0 || extra.length > 0) {
    throw new IncompleteArtifactError(missing, extra, unsafe);
  }
  model.json.weightsManifest.forEach((group, index) => {
    const needed = groupByteLength(group);
    const present = weightFiles[index]!.reduce((sum, path) => sum + byPath.get(path)!.byteLength, 0);
    if (needed !== null && present < needed) {
      throw new ArtifactError(
        `${modelJsonPath}.weightsManifest[${index}]`,
        'weights-size',
        `weights need ${needed} bytes but ${weightFiles[index]!.join(', ')} hold ${present}`,
      );
    }
  });
  return { modelJsonPath, model, weightFiles };
}

export {
  BYTES_PER_ELEMENT,
  checkWeightBudget,
  DEFAULT_WEIGHT_BUDGET,
  WEIGHT_BUDGET_ENV,
  type WeightBudget,
  weightBudgetFromEnv,
} from './weight-budget.js';
