import {
  DeploymentAction,
  RegistryService,
  Task,
} from '@ballast/contracts/ballast/registry/v1/registry_pb.js';
import { createClient, type ServiceClient } from '@ballast/grpc-kit';
import {
  createTestDatabase,
  type PostgresTestDatabase,
  type Replicas,
  type ServiceProcess,
  startReplicas,
} from '@ballast/grpc-kit/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { download, syntheticArtifact, upload, versionRequest } from './test-fixtures.js';

// Two registry processes (dist/main.js) on one Postgres database, with the Postgres blob
// store and a data directory each: nothing is shared but the database, as two pods of the
// k8s Deployment share nothing else. What one replica writes, the other serves.

const REGISTRY = 'ballast.registry.v1.RegistryService';
type Client = ServiceClient<typeof RegistryService>;

describe('two registry replicas on one Postgres (BALLAST_REGISTRY_BLOB_STORE=postgres)', () => {
  let db: PostgresTestDatabase;
  let started: Replicas | undefined;
  let replicas: ServiceProcess[] = [];
  let a: Client;
  let b: Client;

  beforeAll(async () => {
    db = await createTestDatabase('registry_replicas');
    started = await startReplicas(2, {
      package: '@ballast/registry',
      ready: REGISTRY,
      telemetry: false,
      env: {
        BALLAST_DATABASE_URL: db.url,
        BALLAST_REGISTRY_BLOB_STORE: 'postgres',
        BALLAST_REGISTRY_WATCH_POLL_MS: '100',
      },
    });
    replicas = started.replicas;
    [a, b] = replicas.map((r) =>
      createClient(RegistryService, { address: r.address, deadlineMs: 60_000 }),
    ) as [Client, Client];
  }, 180_000);

  // A failure's cause is in the replicas' logs (INTERNAL names only a ref).
  afterEach((context) => {
    if (context.task.result?.state === 'fail')
      for (const replica of replicas) console.error(`--- registry ${replica.address}\n${replica.output()}`);
  });

  afterAll(async () => {
    a?.close();
    b?.close();
    await started?.stop();
    await db?.close();
  });

  it('downloads from one replica, byte for byte, what was uploaded to the other', async () => {
    const files = syntheticArtifact('r', ['group1-shard1of2.bin', 'group1-shard2of2.bin']);
    // Larger than one 256 KiB row of the blob store and than one download chunk.
    files[1] = { path: 'group1-shard1of2.bin', data: new Uint8Array(700_000).map((_, i) => (i * 31) % 251) };
    const digest = await upload(a, files);
    expect(await download(b, digest)).toEqual([...files].sort((x, y) => (x.path < y.path ? -1 : 1)));
    // B registers a version over A's upload: it finds every blob stored.
    await b.createModel({ name: 'shared-blobs', task: Task.REGRESSION, ownerTeam: 'forecasting' });
    const { version } = await b.createModelVersion(versionRequest('shared-blobs', digest));
    expect(version?.version).toBe(1);
  });

  it('numbers versions registered concurrently on both replicas 1..n, each once', async () => {
    await a.createModel({ name: 'raced', task: Task.REGRESSION, ownerTeam: 'forecasting' });
    const digest = await upload(b, syntheticArtifact('n'));
    const numbers = await Promise.all(
      Array.from({ length: 16 }, async (_, i) => {
        const { version } = await (i % 2 ? a : b).createModelVersion(versionRequest('raced', digest));
        return version?.version ?? 0;
      }),
    );
    expect([...numbers].sort((x, y) => x - y)).toEqual(Array.from({ length: 16 }, (_, i) => i + 1));
    const listed = async (c: Client) =>
      (await c.listModelVersions({ model: 'raced', pageSize: 100 })).versions.map((v) => v.version);
    expect(await listed(a)).toEqual(await listed(b));
    expect((await b.getModel({ name: 'raced' })).model?.latestVersion).toBe(16);
  });

  it('keeps one history of alias moves made concurrently on both replicas', async () => {
    await b.createModel({ name: 'moved', task: Task.REGRESSION, ownerTeam: 'forecasting' });
    const digest = await upload(a, syntheticArtifact('m'));
    for (let i = 0; i < 4; i++) await (i % 2 ? a : b).createModelVersion(versionRequest('moved', digest));
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        (i % 2 ? a : b).setAlias({ model: 'moved', alias: 'candidate', version: (i % 4) + 1 }),
      ),
    );
    const history = (
      await a.listDeployments({ model: 'moved', alias: 'candidate', pageSize: 100 })
    ).deployments
      .slice()
      .reverse();
    // A move to the version the alias already names records nothing, so at most 20 rows.
    expect(history.length).toBeGreaterThan(1);
    expect(history.length).toBeLessThanOrEqual(20);
    // Each move starts where the one before it ended: no move read a stale alias.
    for (const [i, change] of history.entries()) {
      expect(change.fromVersion, `change ${i}`).toBe(i === 0 ? 0 : history[i - 1]?.toVersion);
      expect(change.toVersion, `change ${i}`).not.toBe(change.fromVersion);
    }
    const last = history.at(-1)?.toVersion;
    expect((await a.getModel({ name: 'moved' })).model?.aliases.candidate).toBe(last);
    expect((await b.getModel({ name: 'moved' })).model?.aliases.candidate).toBe(last);
  });

  it('streams to a watcher on one replica the promotion made on the other', async () => {
    await a.createModel({ name: 'watched', task: Task.REGRESSION, ownerTeam: 'forecasting' });
    const digest = await upload(a, syntheticArtifact('w'));
    await a.createModelVersion(versionRequest('watched', digest));
    const abort = new AbortController();
    const stream = b.watchDeployments({ model: 'watched' }, { signal: abort.signal })[Symbol.asyncIterator]();
    try {
      const snapshot = (await stream.next()).value;
      expect(snapshot?.event.case).toBe('snapshot');
      await a.promote({ model: 'watched', version: 1, force: true, reason: 'first production version' });
      const change = (await stream.next()).value;
      expect(change?.event.case).toBe('deployment');
      if (change?.event.case !== 'deployment') throw new Error('expected the promotion');
      expect(change.event.value).toMatchObject({
        model: 'watched',
        alias: 'production',
        toVersion: 1,
        action: DeploymentAction.PROMOTE,
      });
    } finally {
      abort.abort();
      await stream.return?.(undefined).catch(() => undefined);
    }
  });
});
