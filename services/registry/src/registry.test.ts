import { DeploymentAction, Task } from '@ballast/contracts/ballast/registry/v1/registry_pb.js';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  addVersion,
  changed,
  createModel,
  download,
  manifestOf,
  rejection,
  syntheticArtifact,
  upload,
  uploadParts,
  versionRequest,
} from './test-fixtures.js';
import { as, BACKENDS, startTestRegistry, type TestRegistry } from './test-registry.js';

// A relaxed gate, for tests about history rather than verdicts.
const anything = {
  minImprovement: -1,
  maxP99LatencyIncrease: 100,
  maxCostIncrease: 100,
  maxSegmentRegression: 100,
};

describe.each(BACKENDS)('registry on %s', (kind) => {
  let registry: TestRegistry;
  beforeAll(async () => {
    registry = await startTestRegistry(kind, { limits: { maxChunkBytes: 256 * 1024 }, watchPollMs: 200 });
  });
  afterAll(async () => {
    await registry?.close();
  });

  describe('models', () => {
    it('creates, reads and lists models; refuses duplicates, unknown names and bad input', async () => {
      const { client } = registry;
      const model = await createModel(client, 'demand-a');
      expect(model).toMatchObject({
        name: 'demand-a',
        task: Task.REGRESSION,
        ownerTeam: 'forecasting',
        latestVersion: 0,
      });
      expect((await client.getModel({ name: 'demand-a' })).model?.description).toBe(
        'units sold per warehouse and day',
      );

      const duplicate = await rejection(createModel(client, 'demand-a'));
      expect(duplicate.code).toBe(status.ALREADY_EXISTS);
      expect(duplicate.details).toBe('model demand-a already exists');
      expect((await rejection(client.getModel({ name: 'nope' }))).code).toBe(status.NOT_FOUND);

      const badName = await rejection(
        client.createModel({ name: 'Bad Name', task: Task.REGRESSION, ownerTeam: 't' }),
      );
      expect(badName).toMatchObject({ code: status.INVALID_ARGUMENT, field: 'name' });
      const noTask = await rejection(client.createModel({ name: 'no-task', ownerTeam: 't' }));
      expect(noTask).toMatchObject({ code: status.INVALID_ARGUMENT, field: 'task' });
      const badPolicy = await rejection(
        client.createModel({
          name: 'bad-policy',
          task: Task.REGRESSION,
          ownerTeam: 't',
          policy: { maxCostIncrease: -1 },
        }),
      );
      expect(badPolicy).toMatchObject({ code: status.INVALID_ARGUMENT, field: 'policy.max_cost_increase' });

      await client.createModel({ name: 'other-team', task: Task.CLASSIFICATION, ownerTeam: 'fraud' });
      const first = await client.listModels({ pageSize: 1 });
      expect(first.models.map((m) => m.name)).toEqual(['demand-a']);
      const second = await client.listModels({ pageSize: 1, pageToken: first.nextPageToken });
      expect(second.models.map((m) => m.name)).toEqual(['other-team']);
      expect((await client.listModels({ ownerTeam: 'fraud' })).models.map((m) => m.name)).toEqual([
        'other-team',
      ]);

      const updated = await client.updatePromotionPolicy({
        model: 'other-team',
        policy: { minImprovement: 0.02 },
      });
      expect(updated.model?.policy?.minImprovement).toBe(0.02);
    });
  });

  describe('artifacts', () => {
    it('round-trips files byte for byte and stores identical content once', async () => {
      const files = syntheticArtifact('r', ['group1-shard1of2.bin', 'group1-shard2of2.bin']);
      const first = await registry.client.uploadArtifact(uploadParts(files, { chunkBytes: 1000 }));
      expect(first.alreadyPresent).toBe(false);
      expect(first.totalBytes).toBe(BigInt(files.reduce((n, f) => n + f.data.byteLength, 0)));
      const again = await registry.client.uploadArtifact(uploadParts(files));
      expect(again).toMatchObject({ alreadyPresent: true, manifest: { digest: first.manifest?.digest } });

      const back = await download(registry.client, first.manifest?.digest ?? '', 700);
      expect(back.map((f) => f.path)).toEqual(['group1-shard1of2.bin', 'group1-shard2of2.bin', 'model.json']);
      for (const file of files) expect(back.find((f) => f.path === file.path)?.data).toEqual(file.data);
    });

    it('refuses bad uploads and keeps nothing of them', async () => {
      const before = (await registry.blobFiles()).sort();
      const files = syntheticArtifact('x');
      const [modelJson, weights] = files as [(typeof files)[0], (typeof files)[0]];
      const manifest = manifestOf(files);

      // Bytes that do not hash to the manifest's sha256.
      const tampered = [modelJson, { path: weights.path, data: new Uint8Array(weights.data).fill(1) }];
      const mismatch = await rejection(
        registry.client.uploadArtifact(
          uploadParts(tampered, { manifest: { case: 'manifest', value: manifest } }),
        ),
      );
      expect(mismatch).toMatchObject({ code: status.INVALID_ARGUMENT, field: 'manifest.files[1].sha256' });

      // The stream ends half-way through the weights.
      async function* truncated() {
        let sent = 0;
        for await (const part of uploadParts(files, { chunkBytes: 512 })) {
          if (sent++ === 3) return;
          yield part;
        }
      }
      const cut = await rejection(registry.client.uploadArtifact(truncated()));
      expect(cut.code).toBe(status.INVALID_ARGUMENT);
      expect(cut.details).toContain('truncated upload');

      const oversized = await rejection(
        registry.client.uploadArtifact(
          uploadParts(
            syntheticArtifact('o', ['big.bin']).map((f) =>
              f.path === 'big.bin' ? { ...f, data: new Uint8Array(300 * 1024) } : f,
            ),
            { chunkBytes: 300 * 1024 },
          ),
        ),
      );
      expect(oversized).toMatchObject({ code: status.RESOURCE_EXHAUSTED, field: 'chunk.data' });

      const traversal = syntheticArtifact('e', ['../outside.bin']);
      expect((await rejection(registry.client.uploadArtifact(uploadParts(traversal)))).field).toBe(
        'manifest.files[1].path',
      );

      const missingWeights = syntheticArtifact('m', ['a.bin', 'b.bin']).filter((f) => f.path !== 'b.bin');
      const incomplete = await rejection(registry.client.uploadArtifact(uploadParts(missingWeights)));
      expect(incomplete).toMatchObject({ code: status.INVALID_ARGUMENT, field: 'model.json' });
      expect(incomplete.details).toContain('b.bin');

      const wrongDigest = await rejection(
        registry.client.uploadArtifact(
          uploadParts(files, {
            manifest: { case: 'manifest', value: { ...manifest, digest: 'f'.repeat(64) } },
          }),
        ),
      );
      expect(wrongDigest).toMatchObject({ code: status.INVALID_ARGUMENT, field: 'manifest.digest' });

      expect((await registry.blobFiles()).sort()).toEqual(before);
      const { rows } = await registry.sql.query<{ n: string }>('SELECT count(*)::text AS n FROM artifacts');
      const known = await registry.sql.query<{ digest: string }>('SELECT digest FROM artifacts');
      expect(rows[0]?.n).toBe(String(known.rowCount));
      expect((await rejection(download(registry.client, 'a'.repeat(64)))).code).toBe(status.NOT_FOUND);
    });
  });

  describe('versions', () => {
    it('numbers concurrent registrations 1..n without collisions and records lineage as given', async () => {
      const { client } = registry;
      await createModel(client, 'numbers');
      const digest = await upload(client, syntheticArtifact('n'));
      const created = await Promise.all(
        Array.from({ length: 8 }, (_, i) =>
          client.createModelVersion(
            versionRequest('numbers', digest, { epochs: String(i) }),
            as(`trainer-${i}`),
          ),
        ),
      );
      const numbers = created.map((c) => c.version?.version).sort((a, b) => (a ?? 0) - (b ?? 0));
      expect(numbers).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
      expect((await client.getModel({ name: 'numbers' })).model?.latestVersion).toBe(8);

      const v3 = (await client.getModelVersion({ model: 'numbers', version: 3 })).version;
      expect(v3?.lineage?.dataset).toMatchObject({ name: 'sales', version: 'ds-v1' });
      expect(v3?.lineage?.config?.seed).toBe(42n);
      expect(v3?.createdBy).toMatch(/^trainer-\d$/);
      const artifactBytes = syntheticArtifact('n').reduce((n, f) => n + f.data.byteLength, 0);
      expect(v3?.servingProfile?.artifactBytes).toBe(BigInt(artifactBytes));
      const listed = await client.listModelVersions({ model: 'numbers', pageSize: 3 });
      expect(listed.versions.map((v) => v.version)).toEqual([8, 7, 6]);
      expect(listed.nextPageToken).not.toBe('');
    });

    it('refuses malformed versions and an artifact never uploaded, writing nothing', async () => {
      const { client } = registry;
      await createModel(client, 'strict');
      const digest = await upload(client, syntheticArtifact('s'));
      const request = versionRequest('strict', digest);
      const badHash = await rejection(
        client.createModelVersion(
          changed(request, (r) => {
            if (r.lineage?.dataset) r.lineage.dataset.version = 'not a hash!';
          }),
        ),
      );
      expect(badHash).toMatchObject({ code: status.INVALID_ARGUMENT, field: 'lineage.dataset.version' });
      const noEnv = await rejection(
        client.createModelVersion(
          changed(request, (r) => {
            if (r.lineage) r.lineage.environment = undefined;
          }),
        ),
      );
      expect(noEnv).toMatchObject({ code: status.INVALID_ARGUMENT, field: 'lineage.environment' });
      const nan = await rejection(
        client.createModelVersion(
          changed(request, (r) => {
            if (r.metrics[0]) r.metrics[0].value = Number.NaN;
          }),
        ),
      );
      expect(nan).toMatchObject({ code: status.INVALID_ARGUMENT, field: 'metrics[0].value' });
      const badShape = await rejection(
        client.createModelVersion(
          changed(request, (r) => {
            if (r.signature?.inputs[0]) r.signature.inputs[0].dtype = 'float64';
          }),
        ),
      );
      expect(badShape).toMatchObject({ code: status.INVALID_ARGUMENT, field: 'signature.inputs[0].dtype' });
      const missing = await rejection(
        client.createModelVersion(
          changed(request, (r) => {
            r.artifactDigest = 'b'.repeat(64);
          }),
        ),
      );
      expect(missing).toMatchObject({ code: status.FAILED_PRECONDITION, field: 'artifact_digest' });
      const unknown = changed(request, (r) => {
        r.model = 'unknown';
      });
      expect((await rejection(client.createModelVersion(unknown))).code).toBe(status.NOT_FOUND);
      expect((await client.getModel({ name: 'strict' })).model?.latestVersion).toBe(0);
    });

    it('refuses a version whose artifact lost a blob, naming the blob', async () => {
      const { client } = registry;
      await createModel(client, 'lost-blob');
      const files = syntheticArtifact('l');
      const digest = await upload(client, files);
      const weights = manifestOf(files).files[1]?.sha256 ?? '';
      await registry.blobs.delete(weights);
      const lost = await rejection(client.createModelVersion(versionRequest('lost-blob', digest)));
      expect(lost).toMatchObject({ code: status.FAILED_PRECONDITION, field: 'artifact_digest' });
      expect(lost.details).toContain(`blob sha256:${weights} (weights.bin) of artifact ${digest} is missing`);
      expect((await client.getModel({ name: 'lost-blob' })).model?.latestVersion).toBe(0);
      // Uploading the artifact again writes the blob back, and the version registers.
      await upload(client, files);
      await client.createModelVersion(versionRequest('lost-blob', digest));
    });
  });

  describe('aliases, promotion and history', () => {
    it('moves aliases, keeps production behind Promote, and names what is missing', async () => {
      const { client } = registry;
      await createModel(client, 'aliased');
      const v1 = await addVersion(client, 'aliased');
      const set = await client.setAlias(
        { model: 'aliased', alias: 'candidate', version: v1, reason: 'shadow it' },
        as('ana'),
      );
      expect(set.deployment).toMatchObject({
        alias: 'candidate',
        fromVersion: 0,
        toVersion: 1,
        actor: 'ana',
      });
      expect(
        (await client.getVersionByAlias({ model: 'aliased', alias: 'candidate' })).version?.version,
      ).toBe(1);
      expect(
        (await client.getVersionByAlias({ model: 'aliased', alias: 'candidate' })).version?.aliases,
      ).toEqual(['candidate']);

      expect(
        (await rejection(client.setAlias({ model: 'aliased', alias: 'production', version: 1 }))).code,
      ).toBe(status.FAILED_PRECONDITION);
      const ghost = await rejection(client.setAlias({ model: 'aliased', alias: 'candidate', version: 9 }));
      expect(ghost).toMatchObject({ code: status.NOT_FOUND, details: 'model aliased has no version 9' });
      expect(
        (await rejection(client.getVersionByAlias({ model: 'aliased', alias: 'production' }))).code,
      ).toBe(status.NOT_FOUND);
      expect((await rejection(client.setAlias({ model: 'aliased', alias: 'Bad!', version: 1 }))).field).toBe(
        'alias',
      );

      await client.deleteAlias({ model: 'aliased', alias: 'candidate' });
      expect((await rejection(client.deleteAlias({ model: 'aliased', alias: 'candidate' }))).code).toBe(
        status.NOT_FOUND,
      );
    });

    it('promotes through the gate, refuses with every failed rule, and records a forced override', async () => {
      const { client } = registry;
      await createModel(client, 'gated');
      const v1 = await addVersion(client, 'gated', {
        mae: 10,
        p99Ms: 4,
        cost: 1,
        segments: { 'warehouse_id=W1': 9 },
      });
      const first = await client.promote({ model: 'gated', version: v1, reason: 'first model' }, as('ci'));
      expect(first.deployment).toMatchObject({
        action: DeploymentAction.PROMOTE,
        fromVersion: 0,
        toVersion: 1,
        actor: 'ci',
        verdict: { passed: true, baselineVersion: 0 },
      });

      // Slightly more accurate, at twice the cost and latency.
      const v2 = await addVersion(client, 'gated', {
        mae: 9.9,
        p99Ms: 8,
        cost: 2,
        segments: { 'warehouse_id=W1': 9 },
      });
      const refused = await rejection(client.promote({ model: 'gated', version: v2 }));
      expect(refused.code).toBe(status.FAILED_PRECONDITION);
      expect(refused.details).toContain('2 of 4 rules failed');
      expect(refused.details).toContain(
        'p99 latency at batch 1 (wasm -> wasm): 4 ms -> 8 ms (+100.0%), limit +10.0%',
      );
      expect(refused.details).toContain('cost per 1M predictions: 1 -> 2 USD (+100.0%), limit +10.0%');
      expect((await client.getVersionByAlias({ model: 'gated', alias: 'production' })).version?.version).toBe(
        1,
      );

      const noReason = await rejection(client.promote({ model: 'gated', version: v2, force: true }));
      expect(noReason).toMatchObject({ code: status.INVALID_ARGUMENT, field: 'reason' });
      const forced = await client.promote(
        { model: 'gated', version: v2, force: true, reason: 'incident 42: v1 mispredicts promotions' },
        as('oncall'),
      );
      expect(forced.deployment?.verdict).toMatchObject({ passed: false, forced: true, baselineVersion: 1 });
      expect(forced.deployment?.verdict?.rules.filter((r) => !r.passed).map((r) => r.rule)).toEqual([
        'max_p99_latency_increase',
        'max_cost_increase',
      ]);

      // A retried promotion of what already serves changes nothing.
      const retried = await client.promote({ model: 'gated', version: v2 });
      expect(retried.deployment?.sequence).toBe(forced.deployment?.sequence);

      const history = await client.listDeployments({ model: 'gated' });
      expect(history.deployments.map((d) => [d.fromVersion, d.toVersion, d.actor, d.reason])).toEqual([
        [1, 2, 'oncall', 'incident 42: v1 mispredicts promotions'],
        [0, 1, 'ci', 'first model'],
      ]);
    });

    it('rolls back to the version each promotion replaced, one step per call', async () => {
      const { client } = registry;
      await client.createModel({
        name: 'rolling',
        task: Task.REGRESSION,
        ownerTeam: 'forecasting',
        policy: anything,
      });
      for (let i = 0; i < 3; i++) {
        const version = await addVersion(client, 'rolling', { mae: 10 - i });
        await client.promote({ model: 'rolling', version });
      }
      const back = await client.rollback({ model: 'rolling', reason: 'v3 drifts' });
      expect(back.deployment).toMatchObject({
        action: DeploymentAction.ROLLBACK,
        fromVersion: 3,
        toVersion: 2,
      });
      expect((await client.rollback({ model: 'rolling' })).deployment).toMatchObject({
        fromVersion: 2,
        toVersion: 1,
      });
      const none = await rejection(client.rollback({ model: 'rolling' }));
      expect(none).toMatchObject({ code: status.FAILED_PRECONDITION });
      expect(none.details).toContain('v1 is the first');
      expect(
        (await client.getVersionByAlias({ model: 'rolling', alias: 'production' })).version?.version,
      ).toBe(1);
    });

    it('serialises racing promotions into one consistent history', async () => {
      const { client } = registry;
      await client.createModel({
        name: 'racing',
        task: Task.REGRESSION,
        ownerTeam: 'forecasting',
        policy: anything,
      });
      const versions: number[] = [];
      for (let i = 0; i < 6; i++) versions.push(await addVersion(client, 'racing', { mae: 10 - i }));
      const clients = [registry.client, registry.connect(), registry.connect()];
      await Promise.all(
        versions.map((version, i) => clients[i % clients.length]?.promote({ model: 'racing', version })),
      );
      const history = (
        await client.listDeployments({ model: 'racing', alias: 'production' })
      ).deployments.reverse();
      expect(history).toHaveLength(6);
      expect(new Set(history.map((d) => d.toVersion)).size).toBe(6);
      history.forEach((d, i) => {
        expect(d.fromVersion).toBe(i === 0 ? 0 : history[i - 1]?.toVersion);
        if (i > 0) expect(d.sequence > (history[i - 1]?.sequence ?? 0n)).toBe(true);
      });
      const serving = (await client.getVersionByAlias({ model: 'racing', alias: 'production' })).version
        ?.version;
      expect(serving).toBe(history.at(-1)?.toVersion);
    });
  });

  describe('watch', () => {
    it('streams the aliases, then changes, and resumes after a dropped stream without missing one', async () => {
      const { client } = registry;
      await client.createModel({
        name: 'watched',
        task: Task.REGRESSION,
        ownerTeam: 'forecasting',
        policy: anything,
      });
      const v1 = await addVersion(client, 'watched');
      const v2 = await addVersion(client, 'watched', { mae: 9 });
      await client.promote({ model: 'watched', version: v1 });

      const abort = new AbortController();
      const watcher = registry.connect();
      const stream = watcher
        .watchDeployments({ model: 'watched' }, { signal: abort.signal })
        [Symbol.asyncIterator]();
      const snapshot = (await stream.next()).value;
      expect(snapshot?.event.case).toBe('snapshot');
      if (snapshot?.event.case !== 'snapshot') throw new Error('expected a snapshot first');
      expect(snapshot.event.value.aliases).toEqual([
        expect.objectContaining({ alias: 'production', version: 1 }),
      ]);

      await client.setAlias({ model: 'watched', alias: 'candidate', version: v2 });
      const live = (await stream.next()).value;
      expect(live?.event.case).toBe('deployment');
      if (live?.event.case !== 'deployment') throw new Error('expected a change');
      expect(live.event.value).toMatchObject({ alias: 'candidate', toVersion: 2 });

      // Drop the stream, change things while nobody listens, then resume.
      abort.abort();
      await stream.next().catch(() => undefined);
      await client.promote({ model: 'watched', version: v2 });
      await client.deleteAlias({ model: 'watched', alias: 'candidate' });
      await client.rollback({ model: 'watched' });

      const resume = new AbortController();
      const seen: Array<[string, number]> = [];
      try {
        for await (const message of registry
          .connect()
          .watchDeployments(
            { model: 'watched', afterSequence: live.event.value.sequence },
            { signal: resume.signal },
          )) {
          if (message.event.case !== 'deployment')
            throw new Error('a resumed stream starts with changes, not a snapshot');
          seen.push([message.event.value.alias, message.event.value.toVersion]);
          if (seen.length === 3) resume.abort();
        }
      } catch (err) {
        // Ending the watch is the client's cancel; anything else is a failure.
        if (!resume.signal.aborted) throw err;
      }
      expect(seen).toEqual([
        ['production', 2],
        ['candidate', 0],
        ['production', 1],
      ]);

      const future = await rejection(
        (async () => {
          for await (const _ of client.watchDeployments({ afterSequence: 1_000_000n })) return;
        })(),
      );
      expect(future.code).toBe(status.OUT_OF_RANGE);
    });
  });

  describe('compare', () => {
    it('reports metric, latency and cost deltas and which inputs changed', async () => {
      const { client } = registry;
      await createModel(client, 'compared');
      await addVersion(client, 'compared', {
        mae: 10,
        p99Ms: 4,
        cost: 2,
        segments: { 'warehouse_id=W1': 8 },
      });
      await addVersion(
        client,
        'compared',
        { mae: 8, p99Ms: 5, cost: 3, segments: { 'warehouse_id=W1': 10 }, epochs: '40', dataset: 'ds-v2' },
        'w',
      );
      const diff = await client.compareVersions({ model: 'compared', a: 1, b: 2 });
      const overall = diff.metrics.find((m) => m.name === 'mae' && m.segment === '');
      expect(overall).toMatchObject({ a: 10, b: 8, delta: -2, relative: -0.2, inBoth: true });
      expect(diff.metrics.find((m) => m.segment === 'warehouse_id=W1')).toMatchObject({
        a: 8,
        b: 10,
        relative: 0.25,
      });
      expect(diff.latency.find((l) => l.batchSize === 1)).toMatchObject({
        aP99Ms: 4,
        bP99Ms: 5,
        relative: 0.25,
      });
      expect(diff.costRelative).toBeCloseTo(0.5);
      expect(diff.lineage).toMatchObject({
        dataChanged: true,
        featuresChanged: false,
        configChanged: true,
        codeChanged: false,
        environmentChanged: false,
      });
      expect(diff.lineage?.changes).toEqual([
        'lineage.config.hyperparameters[epochs]: 20 -> 40',
        'lineage.dataset.version: ds-v1 -> ds-v2',
      ]);
      expect((await rejection(client.compareVersions({ model: 'compared', a: 1, b: 3 }))).code).toBe(
        status.NOT_FOUND,
      );
    });
  });
});
