import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  ArtifactError,
  type ArtifactFile,
  artifactManifest,
  checkArtifactComplete,
  IncompleteArtifactError,
  manifestDigest,
  parseModelJson,
  validateArtifactPath,
} from './artifact.js';

const sha256 = (data: Uint8Array | string) => createHash('sha256').update(data).digest('hex');
const bytes = (text: string) => new TextEncoder().encode(text);

/** Runs `action` and returns the ArtifactError it throws. */
function artifactError(action: () => unknown): ArtifactError {
  try {
    action();
  } catch (error) {
    if (error instanceof ArtifactError) return error;
    throw error;
  }
  throw new Error('expected an ArtifactError, but nothing was thrown');
}

const layersModelJson = (paths: string[], extra: Record<string, unknown> = {}) => ({
  format: 'layers-model',
  modelTopology: { class_name: 'Model', config: { layers: [] } },
  weightsManifest: [{ paths, weights: [{ name: 'dense/kernel', shape: [2, 2], dtype: 'float32' }] }],
  ...extra,
});

/** model.json with one group of weights in two 8-byte shards: 16 bytes for a 2x2 float32. */
function sampleArtifact(): ArtifactFile[] {
  return [
    {
      path: 'model.json',
      data: bytes(JSON.stringify(layersModelJson(['group1-shard1of2.bin', 'group1-shard2of2.bin']))),
    },
    { path: 'group1-shard1of2.bin', data: new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]) },
    { path: 'group1-shard2of2.bin', data: new Uint8Array([9, 10, 11, 12, 13, 14, 15, 16]) },
  ];
}

describe('artifact.ts stays free of TensorFlow.js', () => {
  it('imports only node built-ins and secure-json-parse (and its weight budget, which imports no more)', () => {
    const LOCAL = ['./artifact.js', './artifact-error.js', './weight-budget.js'];
    for (const file of ['./artifact.ts', './artifact-error.ts', './weight-budget.ts']) {
      const source = readFileSync(new URL(file, import.meta.url), 'utf8');
      const specifiers = [...source.matchAll(/(?:from|import)\s*\(?\s*'([^']+)'/g)].map((match) => match[1]);
      if (file === './artifact.ts') expect(specifiers.length).toBeGreaterThan(0);
      expect(
        specifiers.filter(
          (name) => !name?.startsWith('node:') && name !== 'secure-json-parse' && !LOCAL.includes(name ?? ''),
        ),
      ).toEqual([]);
    }
  });
});

describe('validateArtifactPath', () => {
  it('accepts relative POSIX paths', () => {
    for (const path of [
      'model.json',
      'tfjs/group1-shard1of2.bin',
      'a b/ü-😀.bin',
      '..weights',
      'x'.repeat(512),
    ]) {
      expect(validateArtifactPath(path)).toBe(path);
    }
  });

  it.each([
    ['../x.bin', 'no-dot-segment'],
    ['a/../../x.bin', 'no-dot-segment'],
    ['a/./b', 'no-dot-segment'],
    ['/abs', 'relative'],
    ['/etc/passwd', 'relative'],
    ['a//b', 'no-empty-segment'],
    ['dir/', 'no-empty-segment'],
    ['a\\b', 'no-backslash'],
    ['..\\x.bin', 'no-backslash'],
    ['', 'required'],
    ['a\u0000b', 'no-control-characters'],
    ['line\nbreak', 'no-control-characters'],
    ['\uD800.bin', 'well-formed-unicode'],
    ['x'.repeat(513), 'max-length'],
    ['é'.repeat(257), 'max-length'],
  ])('refuses %j (%s)', (path, rule) => {
    const error = artifactError(() => validateArtifactPath(path, 'files[3].path'));
    expect(error.rule).toBe(rule);
    expect(error.field).toBe('files[3].path');
    expect(error.message).toMatch(/^files\[3\]\.path: /);
  });
});

describe('artifactManifest and manifestDigest', () => {
  it('hashes every file and sorts by path', () => {
    const manifest = artifactManifest([
      { path: 'b.bin', data: bytes('abc') },
      { path: 'a.json', data: bytes('') },
    ]);
    expect(manifest.files).toEqual([
      { path: 'a.json', size: 0, sha256: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855' },
      { path: 'b.bin', size: 3, sha256: 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad' },
    ]);
  });

  it('is the SHA-256 of the canonical JSON documented in artifact.ts', () => {
    const manifest = artifactManifest([
      { path: 'b.bin', data: bytes('abc') },
      { path: 'a "quoted".json', data: bytes('{}') },
    ]);
    const canonical =
      `[{"path":"a \\"quoted\\".json","size":2,"sha256":"${sha256('{}')}"},` +
      `{"path":"b.bin","size":3,"sha256":"${sha256('abc')}"}]`;
    expect(manifest.digest).toBe(sha256(canonical));
  });

  it('orders paths by UTF-8 bytes, not UTF-16 code units', () => {
    const paths = ['😀', '\uFFFD', 'é', 'a', 'Z'];
    const manifest = artifactManifest(paths.map((path) => ({ path, data: bytes(path) })));
    // JavaScript's default sort would put 😀 (surrogates D83D DE00) before U+FFFD.
    expect(manifest.files.map((file) => file.path)).toEqual(['Z', 'a', 'é', '\uFFFD', '😀']);
  });

  it('does not depend on file order', () => {
    const files = sampleArtifact();
    const digest = artifactManifest(files).digest;
    expect(artifactManifest([...files].reverse()).digest).toBe(digest);
    expect(artifactManifest([files[1]!, files[2]!, files[0]!]).digest).toBe(digest);
  });

  it('changes when any bit of any file changes, or a path does', () => {
    const files = sampleArtifact();
    const original = artifactManifest(files).digest;
    const digests = new Set([original]);
    let variants = 0;
    files.forEach((file, index) => {
      for (let offset = 0; offset < file.data.length; offset++) {
        const data = Uint8Array.from(file.data);
        data[offset]! ^= 1 << (offset % 8);
        const changed = files.map((other, at) => (at === index ? { path: other.path, data } : other));
        digests.add(artifactManifest(changed).digest);
        variants++;
      }
    });
    expect(digests.size).toBe(variants + 1);
    const renamed = files.map((file, at) => (at === 1 ? { ...file, path: 'group1-shard1of2.bim' } : file));
    expect(artifactManifest(renamed).digest).not.toBe(original);
    const appended = [...files.slice(0, 2), { ...files[2]!, data: Uint8Array.from([...files[2]!.data, 0]) }];
    expect(artifactManifest(appended).digest).not.toBe(original);
  });

  it('computes the same digest from the entries alone, in any order', () => {
    const manifest = artifactManifest(sampleArtifact());
    expect(manifestDigest(manifest.files)).toBe(manifest.digest);
    expect(manifestDigest([...manifest.files].reverse())).toBe(manifest.digest);
    // Extra properties (e.g. a storage key kept beside an entry) are not part of the digest.
    expect(manifestDigest(manifest.files.map((entry) => ({ ...entry, key: 'blobs/x' })))).toBe(
      manifest.digest,
    );
  });

  it('refuses entries that could not describe real files', () => {
    const entry = { path: 'w.bin', size: 4, sha256: sha256('abcd') };
    expect(artifactError(() => manifestDigest([entry, { ...entry }])).rule).toBe('unique');
    expect(artifactError(() => manifestDigest([{ ...entry, size: -1 }])).field).toBe('files[0].size');
    expect(artifactError(() => manifestDigest([{ ...entry, size: 1.5 }])).rule).toBe('non-negative-integer');
    expect(artifactError(() => manifestDigest([{ ...entry, sha256: entry.sha256.toUpperCase() }])).rule).toBe(
      'sha256-hex',
    );
    expect(artifactError(() => manifestDigest([{ ...entry, path: '../w.bin' }])).field).toBe('files[0].path');
    expect(artifactError(() => artifactManifest([...sampleArtifact(), sampleArtifact()[0]!])).rule).toBe(
      'unique',
    );
  });
});

describe('parseModelJson', () => {
  it('returns the format and the weight paths in manifest order', () => {
    const parsed = parseModelJson(bytes(JSON.stringify(layersModelJson(['b.bin', 'a.bin']))));
    expect(parsed.format).toBe('layers-model');
    expect(parsed.weightPaths).toEqual(['b.bin', 'a.bin']);
    expect(parsed.json.weightsManifest[0]?.weights[0]?.name).toBe('dense/kernel');
  });

  it('recognises model.json files written before the format field existed', () => {
    const { format: _, ...legacyLayers } = layersModelJson([]);
    expect(parseModelJson(JSON.stringify(legacyLayers)).format).toBe('layers-model');
    const legacyGraph = { modelTopology: { node: [] }, weightsManifest: [] };
    expect(parseModelJson(JSON.stringify(legacyGraph)).format).toBe('graph-model');
  });

  it.each([
    ['top level', `{"__proto__": {"polluted": true}, "modelTopology": {}, "weightsManifest": []}`],
    [
      'nested in the topology',
      `{"modelTopology": {"config": {"__proto__": {"polluted": true}}}, "weightsManifest": []}`,
    ],
    [
      'constructor.prototype',
      `{"modelTopology": {"constructor": {"prototype": {"polluted": true}}}, "weightsManifest": []}`,
    ],
  ])('refuses prototype-polluting keys (%s)', (_, text) => {
    const error = artifactError(() => parseModelJson(bytes(text)));
    expect(error.rule).toBe('no-prototype-keys');
    expect(error.field).toBe('model.json');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it.each([
    ['not JSON', bytes('{"modelTopology": '), 'model.json', 'json'],
    ['not UTF-8', new Uint8Array([0x7b, 0xff, 0x7d]), 'model.json', 'utf8'],
    ['an array', bytes('[]'), 'model.json', 'object'],
    ['without a topology', bytes('{"weightsManifest": []}'), 'model.json.modelTopology', 'object'],
    [
      'without a weights manifest',
      bytes('{"modelTopology": {"node": []}}'),
      'model.json.weightsManifest',
      'array',
    ],
    [
      'with a group without paths',
      bytes('{"modelTopology": {"node": []}, "weightsManifest": [{"weights": []}]}'),
      'model.json.weightsManifest[0].paths',
      'string-array',
    ],
    [
      'with a malformed weight',
      bytes(
        '{"modelTopology": {"node": []}, "weightsManifest": [{"paths": [], "weights": [{"name": "w"}]}]}',
      ),
      'model.json.weightsManifest[0].weights[0]',
      'weight-spec',
    ],
    [
      'of an unknown format',
      bytes('{"format": "onnx", "modelTopology": {}, "weightsManifest": []}'),
      'model.json.format',
      'format',
    ],
  ])('refuses a model.json %s', (_, data, field, rule) => {
    const error = artifactError(() => parseModelJson(data));
    expect([error.field, error.rule]).toEqual([field, rule]);
  });
});

describe('checkArtifactComplete', () => {
  it('accepts model.json with exactly the shards it references', () => {
    const complete = checkArtifactComplete(sampleArtifact());
    expect(complete.modelJsonPath).toBe('model.json');
    expect(complete.weightFiles).toEqual([['group1-shard1of2.bin', 'group1-shard2of2.bin']]);
  });

  it('resolves weight paths relative to model.json, inside the artifact', () => {
    const files = [
      {
        path: 'tfjs/model.json',
        data: bytes(JSON.stringify(layersModelJson(['./w.bin', '../shared/x.bin']))),
      },
      { path: 'tfjs/w.bin', data: new Uint8Array(8) },
      { path: 'shared/x.bin', data: new Uint8Array(8) },
    ];
    expect(checkArtifactComplete(files).weightFiles).toEqual([['tfjs/w.bin', 'shared/x.bin']]);
  });

  it('refuses a missing shard, naming its path', () => {
    const error = artifactError(() => checkArtifactComplete(sampleArtifact().slice(0, 2)));
    expect(error).toBeInstanceOf(IncompleteArtifactError);
    expect((error as IncompleteArtifactError).missing).toEqual(['group1-shard2of2.bin']);
    expect(error.message).toBe(
      'weightsManifest: artifact is incomplete: missing weight files group1-shard2of2.bin',
    );
    expect([error.field, error.rule]).toEqual(['weightsManifest', 'complete']);
  });

  it('refuses weight paths that leave the artifact, and lists every problem at once', () => {
    const paths = [
      '../x.bin',
      '/etc/passwd',
      'https://example.com/w.bin',
      'C:\\w.bin',
      'sub/../../y.bin',
      'gone.bin',
    ];
    const files = [
      { path: 'model.json', data: bytes(JSON.stringify(layersModelJson(paths))) },
      { path: 'notes.txt', data: bytes('hello') },
    ];
    const error = artifactError(() => checkArtifactComplete(files)) as IncompleteArtifactError;
    expect(error.unsafe).toEqual(paths.slice(0, 5));
    expect(error.missing).toEqual(['gone.bin']);
    expect(error.extra).toEqual(['notes.txt']);
    expect(error.message).toContain('unsafe weight paths ../x.bin, /etc/passwd');
    expect(error.message).toContain('files model.json does not reference notes.txt');
  });

  it('refuses shards shorter than the weights they declare', () => {
    const files = sampleArtifact();
    files[2] = { path: 'group1-shard2of2.bin', data: new Uint8Array(7) };
    const error = artifactError(() => checkArtifactComplete(files));
    expect([error.field, error.rule]).toEqual(['model.json.weightsManifest[0]', 'weights-size']);
    expect(error.message).toContain(
      'weights need 16 bytes but group1-shard1of2.bin, group1-shard2of2.bin hold 15',
    );
  });

  it('needs exactly one model.json and valid, unique paths', () => {
    expect(artifactError(() => checkArtifactComplete(sampleArtifact().slice(1))).rule).toBe('one-model-json');
    const twoModels = [...sampleArtifact(), { path: 'copy/model.json', data: sampleArtifact()[0]!.data }];
    expect(artifactError(() => checkArtifactComplete(twoModels)).message).toContain(
      'model.json, copy/model.json',
    );
    const unsafeFile = [...sampleArtifact(), { path: '../evil.bin', data: new Uint8Array(1) }];
    expect(artifactError(() => checkArtifactComplete(unsafeFile)).field).toBe('files[3].path');
    const duplicate = [...sampleArtifact(), sampleArtifact()[1]!];
    expect(artifactError(() => checkArtifactComplete(duplicate)).rule).toBe('unique');
  });

  it('refuses a prototype-polluting model.json inside an artifact, naming the file', () => {
    const files = sampleArtifact();
    files[0] = {
      path: 'model.json',
      data: bytes('{"__proto__": {}, "modelTopology": {}, "weightsManifest": []}'),
    };
    const error = artifactError(() => checkArtifactComplete(files));
    expect([error.field, error.rule]).toEqual(['model.json', 'no-prototype-keys']);
  });
});
