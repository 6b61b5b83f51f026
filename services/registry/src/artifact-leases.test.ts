import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { download, manifestOf, rejection, syntheticArtifact, uploadParts } from './test-fixtures.js';
import { startTestRegistry, type TestRegistry } from './test-registry.js';

// The blob leases (artifacts.ts) on every blob store the registry runs on: blobs are shared
// between artifacts, so an upload that fails must never take a blob that an acknowledged
// artifact, or an upload still in flight, needs; and it keeps nothing nobody needs.

describe.each(['fs', 'postgres'] as const)(
  'artifact blobs shared between uploads, on the %s blob store',
  (blobStore) => {
    let registry: TestRegistry;
    beforeAll(async () => {
      registry = await startTestRegistry('postgres', { blobStore });
    });
    afterAll(() => registry?.close());

    /** The same weights as `syntheticArtifact(seed)`, under a model.json naming a file it lacks. */
    const failing = (seed: string) => {
      const [modelJson, weights] = syntheticArtifact(seed, ['weights.bin', 'absent.bin']);
      return [modelJson, weights] as NonNullable<typeof modelJson>[];
    };

    it('a failed upload leaves the blobs of an acknowledged artifact alone, and none of its own', async () => {
      const files = syntheticArtifact('s');
      const ok = await registry.client.uploadArtifact(uploadParts(files));
      const before = (await registry.blobFiles()).sort();
      const bad = failing('s');
      // Its weights are the acknowledged artifact's; its model.json is its own.
      expect(manifestOf(bad).files[1]?.sha256).toBe(manifestOf(files).files[1]?.sha256);
      const refused = await rejection(registry.client.uploadArtifact(uploadParts(bad)));
      expect(refused).toMatchObject({ code: status.INVALID_ARGUMENT, field: 'model.json' });
      expect((await registry.blobFiles()).sort()).toEqual(before);
      expect(await download(registry.client, ok.manifest?.digest ?? '')).toHaveLength(2);
    });

    it('racing failed and successful uploads of the same blobs: every acknowledged artifact downloads whole', async () => {
      const rounds = Array.from({ length: 8 }, (_, i) => `race-${i}`);
      const results = await Promise.all(
        rounds.flatMap((seed) => [
          registry.client.uploadArtifact(uploadParts(syntheticArtifact(seed), { chunkBytes: 256 })),
          rejection(registry.client.uploadArtifact(uploadParts(failing(seed), { chunkBytes: 256 }))),
        ]),
      );
      const digests = results.flatMap((r) => ('manifest' in r && r.manifest ? [r.manifest.digest] : []));
      expect(digests).toHaveLength(rounds.length);
      for (const digest of digests) expect(await download(registry.client, digest)).toHaveLength(2);
      // What the failed uploads alone wrote (their model.json) is gone.
      const stored = new Set(await registry.blobFiles());
      for (const seed of rounds)
        expect(stored.has(manifestOf(failing(seed)).files[0]?.sha256 ?? '')).toBe(false);
    });
  },
);
