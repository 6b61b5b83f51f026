// The registry under races and misuse, as a real process on Postgres: uploads that share
// blobs while half of them fail, ownership of every write RPC (generated from the service
// descriptor), temporary files left by kill -9 mid-upload, and artifact paths that would
// mislead a reader (control and bidirectional-override characters, only spaces).
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { RegistryService, Task } from '@ballast/contracts/ballast/registry/v1/registry_pb.js';
import { type CallOptions, createClient, RpcError, type ServiceClient } from '@ballast/grpc-kit';
import { waitUntil } from '@ballast/grpc-kit/testing';
import { Metadata, status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { saveLog, suiteRecorder } from './report.js';
import {
  createTestDatabase,
  psqlValue,
  type ServiceProcess,
  startService,
  tempDir,
  waitHealth,
} from './support.js';

const record = suiteRecorder(
  'registry',
  'Registry: shared blobs under failing uploads, ownership of every write, temp files, paths',
);

const OWNER = 'forecasting';
const OWNER_TOKEN = `own-${randomBytes(12).toString('hex')}`;
const OTHER_TOKEN = `oth-${randomBytes(12).toString('hex')}`;

type Registry = ServiceClient<typeof RegistryService>;
interface File {
  path: string;
  data: Uint8Array;
}

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let artifactDir: string;
let proc: ServiceProcess;
let client: Registry;

beforeAll(async () => {
  db = await createTestDatabase('registry');
  artifactDir = tempDir('registry-artifacts');
  proc = await startService('registry', {
    ...db.env,
    BALLAST_REGISTRY_ARTIFACT_DIR: artifactDir,
    BALLAST_REGISTRY_TEAM_TOKENS: `${OWNER}=${OWNER_TOKEN},fraud=${OTHER_TOKEN}`,
  });
  await waitHealth(proc, 'ballast.registry.v1.RegistryService');
  client = createClient(RegistryService, { address: proc.address, deadlineMs: 60_000 });
}, 180_000);

afterAll(async () => {
  client?.close();
  if (proc) {
    await proc.kill('SIGKILL');
    saveLog('registry', proc.output());
  }
  await db?.close();
});

function as(actor: string, token?: string): CallOptions {
  const metadata = new Metadata();
  metadata.set('x-ballast-actor', actor);
  if (token) metadata.set('x-ballast-team-token', token);
  return { metadata };
}
const owner = as('ana', OWNER_TOKEN);

const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');
const blobPath = (hex: string) => join(artifactDir, 'sha256', hex.slice(0, 2), hex);

function modelJson(weightPaths: string[]): File {
  const json = {
    format: 'layers-model',
    modelTopology: { class_name: 'Sequential', config: { layers: [] } },
    weightsManifest: [{ paths: weightPaths, weights: [] }],
  };
  return { path: 'model.json', data: Buffer.from(JSON.stringify(json)) };
}

/**
 * The upload stream: the manifest, then each file's bytes; before file i it waits for
 * `gates[i]` when there is one, so a test can hold an upload between two files.
 */
async function* uploadParts(files: File[], gates: Record<number, Promise<unknown>> = {}) {
  yield {
    part: {
      case: 'manifest' as const,
      value: {
        files: files.map((f) => ({ path: f.path, size: BigInt(f.data.byteLength), sha256: sha256(f.data) })),
      },
    },
  };
  for (const [index, file] of files.entries()) {
    await gates[index];
    for (let offset = 0; offset < file.data.byteLength; offset += 64 * 1024)
      yield {
        part: {
          case: 'chunk' as const,
          value: { path: file.path, data: file.data.subarray(offset, offset + 64 * 1024) },
        },
      };
  }
}

function gate() {
  let open = () => {};
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { opened, open };
}

async function outcome(call: Promise<unknown>): Promise<RpcError | undefined> {
  try {
    await call;
    return undefined;
  } catch (err) {
    if (err instanceof RpcError) return err;
    throw err;
  }
}

/** Downloads an artifact and checks every file against its manifest sha256; the files' sha256s. */
async function downloadVerified(digest: string): Promise<string[]> {
  const parts = new Map<string, Buffer[]>();
  let manifest: { path: string; sha256: string }[] = [];
  for await (const message of client.downloadArtifact({ digest })) {
    if (message.part.case === 'manifest') manifest = message.part.value.files;
    else if (message.part.case === 'chunk') {
      const { path, data } = message.part.value;
      parts.set(path, [...(parts.get(path) ?? []), Buffer.from(data)]);
    }
  }
  for (const file of manifest) {
    if (sha256(Buffer.concat(parts.get(file.path) ?? [])) !== file.sha256)
      throw new Error(`${file.path} of ${digest} does not match its sha256`);
  }
  return manifest.map((f) => f.sha256);
}

function blobsOnDisk(): Set<string> {
  const root = join(artifactDir, 'sha256');
  if (!existsSync(root)) return new Set();
  return new Set(
    readdirSync(root)
      .filter((shard) => !shard.startsWith('.'))
      .flatMap((shard) => readdirSync(join(root, shard))),
  );
}

function versionRequest(model: string, artifactDigest: string, mae: number) {
  return {
    model,
    artifactDigest,
    lineage: {
      dataset: { name: 'sales', version: 'ds-v1' },
      featureView: { name: 'demand', version: 'fv-v1' },
      config: { hyperparameters: { epochs: '5' }, seed: 7n },
      environment: { nodeVersion: process.version, tfjsVersion: '4.22.0', backend: 'cpu' },
    },
    metrics: [{ name: 'mae', evalSet: 'holdout', value: mae }],
    servingProfile: {
      backend: 'cpu',
      latency: [{ batchSize: 1, p50Ms: 1, p99Ms: 2 }],
      costPerMillion: 1,
      costCurrency: 'USD',
    },
    signature: {
      inputs: [{ name: 'x', dtype: 'float32', shape: [-1n, 4n] }],
      outputs: [{ name: 'y', dtype: 'float32', shape: [-1n, 1n] }],
    },
  };
}

describe('uploads sharing blobs, half of them failing', () => {
  it('keeps every blob an acknowledged artifact uses, and no blob only failed uploads used', async () => {
    const PAIRS = 12;
    const FREE = 24;
    const bytes = (label: string) => Buffer.alloc(96 * 1024, label);
    const pool = [0, 1, 2, 3].map((i) => ({ path: 'pool.bin', data: bytes(`pool-${i}`) }));
    const okDigests: string[] = [];
    const failures: RpcError[] = [];
    let okUploads = 0;

    // A pair: A stores X, B finds X present, A fails on its model.json, then B completes.
    const pair = async (j: number) => {
      const x = { path: 'x.bin', data: bytes(`x-${j}`) };
      const shared = pool[j % pool.length] as File;
      const aOwn = { path: 'a.bin', data: bytes(`a-${j}`) };
      const bOwn = { path: 'b.bin', data: bytes(`b-${j}`) };
      // Bad: names a weight file the artifact does not hold (found only after every file is stored).
      const aFiles = [x, shared, aOwn, modelJson(['x.bin', 'pool.bin', 'missing.bin'])];
      const bFiles = [x, shared, bOwn, modelJson(['x.bin', 'pool.bin', 'b.bin'])];
      const aGate = gate();
      const bGate = gate();
      const a = outcome(client.uploadArtifact(uploadParts(aFiles, { 3: aGate.opened }), owner));
      await waitUntil(async () => existsSync(blobPath(sha256(aOwn.data))), `upload A${j} stored its files`);
      const b = client.uploadArtifact(uploadParts(bFiles, { 3: bGate.opened }), owner);
      b.catch(() => {}); // awaited below; this only keeps an early failure from counting as unhandled
      await waitUntil(async () => existsSync(blobPath(sha256(bOwn.data))), `upload B${j} stored its files`);
      aGate.open();
      const aError = await a;
      expect(aError?.code, `upload A${j}`).toBe(status.INVALID_ARGUMENT);
      failures.push(aError as RpcError);
      bGate.open();
      const uploaded = await b;
      okUploads++;
      okDigests.push(uploaded.manifest?.digest ?? '');
    };

    // Free-running uploads over the same pool: odd ones fail (bad model.json or bytes that do
    // not match their sha256), even ones succeed.
    const free = async (k: number) => {
      const shared = pool[k % pool.length] as File;
      const own = { path: 'own.bin', data: bytes(`free-${k}`) };
      const fail = k % 2 === 1;
      const files = [
        shared,
        own,
        modelJson(fail && k % 4 === 1 ? ['pool.bin', 'nope.bin'] : ['pool.bin', 'own.bin']),
      ];
      if (fail && k % 4 === 3) {
        const parts = uploadParts(files);
        const corrupt = (async function* () {
          for await (const part of parts) {
            if (part.part.case === 'chunk' && part.part.value.path === 'own.bin')
              yield {
                part: {
                  case: 'chunk' as const,
                  value: { ...part.part.value, data: Buffer.alloc(part.part.value.data.byteLength, 1) },
                },
              };
            else yield part;
          }
        })();
        failures.push((await outcome(client.uploadArtifact(corrupt, owner))) as RpcError);
        return;
      }
      const result = await outcome(
        client.uploadArtifact(uploadParts(files), owner).then((r) => {
          okUploads++;
          okDigests.push(r.manifest?.digest ?? '');
        }),
      );
      if (fail) failures.push(result as RpcError);
      else expect(result).toBeUndefined();
    };

    await Promise.all([
      ...Array.from({ length: PAIRS }, (_, j) => pair(j)),
      ...Array.from({ length: FREE }, (_, k) => free(k)),
    ]);
    expect(failures.every((f) => f?.code === status.INVALID_ARGUMENT)).toBe(true);

    // Every acknowledged artifact downloads whole, and registers as a version.
    const used = new Set<string>();
    const broken: string[] = [];
    await client.createModel({ name: 'shared-blobs', task: Task.REGRESSION, ownerTeam: OWNER }, owner);
    for (const digest of new Set(okDigests)) {
      try {
        for (const hex of await downloadVerified(digest)) used.add(hex);
        await client.createModelVersion(versionRequest('shared-blobs', digest, 1), owner);
      } catch (err) {
        broken.push(`${digest.slice(0, 12)}: ${(err as Error).message}`);
      }
    }
    const onDisk = blobsOnDisk();
    const orphans = [...onDisk].filter((hex) => !used.has(hex));
    const pass = broken.length === 0 && orphans.length === 0;
    record({
      scenario: 'registry: concurrent uploads sharing blobs, half failing',
      headline: `registry shared blobs: ${PAIRS * 2 + FREE} concurrent uploads over shared files, ${failures.length} failed; ${new Set(okDigests).size - broken.length} of ${new Set(okDigests).size} acknowledged artifacts downloaded and verified, ${broken.length} broken, ${orphans.length} orphan blobs`,
      injected: `${PAIRS} orchestrated pairs (A stores x.bin, B finds it present, A fails on model.json, then B completes) and ${FREE} free-running uploads over 4 shared weight files, half failing (model.json naming an absent file, or bytes that do not hash to the manifest's sha256)`,
      measured: {
        uploads: PAIRS * 2 + FREE,
        failed: failures.length,
        acknowledged: okUploads,
        'distinct artifacts': new Set(okDigests).size,
        'downloaded, sha256 verified, registered': new Set(okDigests).size - broken.length,
        'broken artifacts': broken.length ? broken.slice(0, 3).join('; ') : 0,
        'blobs on disk': onDisk.size,
        'orphan blobs (used by no artifact)': orphans.length,
      },
      pass,
    });
    expect(broken).toEqual([]);
    expect(orphans).toEqual([]);
  }, 240_000);
});

describe('ownership of every registry write', () => {
  // Every RPC of RegistryService is in exactly one of these lists; the test fails on an RPC
  // in neither, so a new write cannot be added without a row in the table below.
  const READS = [
    'GetModel',
    'ListModels',
    'DownloadArtifact',
    'GetModelVersion',
    'ListModelVersions',
    'CompareVersions',
    'GetVersionByAlias',
    'ListDeployments',
    'WatchDeployments',
  ];
  type Who = 'owner' | 'other team' | 'no team token';
  const CALLERS: Record<Who, CallOptions> = {
    owner,
    'other team': as('mallory', OTHER_TOKEN),
    'no team token': as('eve'),
  };
  const OK = 'OK';
  type Expected = Record<Who, number | typeof OK>;
  const owned: Expected = {
    owner: OK,
    'other team': status.PERMISSION_DENIED,
    'no team token': status.UNAUTHENTICATED,
  };
  let round = 0;
  const artifact = (who: Who) => [
    { path: 'w.bin', data: Buffer.alloc(1024, `${who}-${round++}`) },
    modelJson(['w.bin']),
  ];
  const WRITES: Record<
    string,
    { call: (options: CallOptions, who: Who) => Promise<unknown>; expected: Expected }
  > = {
    CreateModel: {
      call: (options, who) =>
        client.createModel(
          { name: `made-by-${who.replace(/ /g, '-')}`, task: Task.REGRESSION, ownerTeam: OWNER },
          options,
        ),
      // Naming another team as the owner is a bad argument, not a permission question.
      expected: { ...owned, 'other team': status.INVALID_ARGUMENT },
    },
    UpdatePromotionPolicy: {
      call: (options) =>
        client.updatePromotionPolicy(
          { model: 'owned', policy: { minImprovement: 0.1, maxCostIncrease: 0 } },
          options,
        ),
      expected: owned,
    },
    UploadArtifact: {
      call: (options, who) => client.uploadArtifact(uploadParts(artifact(who)), options),
      // Artifacts are content, owned by no team: any team may upload, anonymous callers may not.
      expected: { ...owned, 'other team': OK },
    },
    CreateModelVersion: {
      call: async (options, who) => {
        const uploaded = await client.uploadArtifact(uploadParts(artifact(who)), owner);
        return client.createModelVersion(
          versionRequest('owned', uploaded.manifest?.digest ?? '', 5),
          options,
        );
      },
      expected: owned,
    },
    SetAlias: {
      call: (options) =>
        client.setAlias({ model: 'owned', alias: 'staging', version: 1, reason: 'table' }, options),
      expected: owned,
    },
    DeleteAlias: {
      call: (options) => client.deleteAlias({ model: 'owned', alias: 'candidate', reason: 'table' }, options),
      expected: owned,
    },
    Promote: {
      call: (options) => client.promote({ model: 'owned', version: 3, reason: 'table' }, options),
      expected: owned,
    },
    Rollback: {
      call: (options) => client.rollback({ model: 'owned', reason: 'table' }, options),
      expected: owned,
    },
  };

  it('lists every RPC as a read or a write', () => {
    const names = RegistryService.methods.map((m) => m.name);
    const unlisted = names.filter((n) => !READS.includes(n) && !(n in WRITES));
    const both = names.filter((n) => READS.includes(n) && n in WRITES);
    const stale = [...READS, ...Object.keys(WRITES)].filter((n) => !names.includes(n));
    expect({ unlisted, both, stale }).toEqual({ unlisted: [], both: [], stale: [] });
  });

  it('allows each write to the owning team only, changes nothing when it refuses, and records policy changes', async () => {
    await client.createModel({ name: 'owned', task: Task.REGRESSION, ownerTeam: OWNER }, owner);
    for (const mae of [3, 2, 1]) {
      const uploaded = await client.uploadArtifact(uploadParts(artifact('owner')), owner);
      await client.createModelVersion(versionRequest('owned', uploaded.manifest?.digest ?? '', mae), owner);
    }
    await client.promote({ model: 'owned', version: 1 }, owner);
    await client.promote({ model: 'owned', version: 2 }, owner);
    await client.setAlias({ model: 'owned', alias: 'candidate', version: 3 }, owner);
    const policyChanges = () =>
      Number(
        psqlValue(db.url as string, `SELECT count(*) FROM registry.policy_changes WHERE model = 'owned'`),
      );
    const snapshot = async () => {
      const { model } = await client.getModel({ name: 'owned' });
      const { deployments } = await client.listDeployments({ model: 'owned', pageSize: 1000 });
      const { models } = await client.listModels({ pageSize: 1000 });
      return JSON.stringify({
        policy: model?.policy,
        latest: model?.latestVersion,
        aliases: model?.aliases,
        deployments: deployments.length,
        models: models.map((m) => m.name),
        policyChanges: policyChanges(),
      });
    };

    const cells: string[] = [];
    const wrong: string[] = [];
    const rpcs = RegistryService.methods.filter((m) => !READS.includes(m.name));
    for (const method of rpcs) {
      const write = WRITES[method.name];
      if (!write) throw new Error(`${method.name} is not in the table`);
      // The refused callers first (each must leave everything as it was), then the owner.
      for (const who of ['other team', 'no team token', 'owner'] as const) {
        const before = await snapshot();
        const error = await outcome(write.call(CALLERS[who], who));
        const got = error ? status[error.code] : OK;
        const want = write.expected[who];
        const wanted = want === OK ? OK : status[want];
        cells.push(`${method.name} × ${who}: ${got}`);
        if (got !== wanted)
          wrong.push(`${method.name} × ${who}: got ${got} (${error?.details ?? ''}), want ${wanted}`);
        if (error && (await snapshot()) !== before)
          wrong.push(`${method.name} × ${who}: refused, but something changed`);
      }
    }

    // The owner's policy change is in the history: who, from what, to what.
    const history = psqlValue(
      db.url as string,
      `SELECT actor || ' ' || (policy->>'minImprovement') FROM registry.policy_changes WHERE model = 'owned' ORDER BY sequence`,
    );
    if (history !== 'forecasting/ana 0.1') wrong.push(`policy history: ${JSON.stringify(history)}`);
    const pass = wrong.length === 0;
    record({
      scenario: 'registry: every write RPC × {owner, other team, no team token}',
      headline: `registry ownership: ${rpcs.length} write RPCs (from the service descriptor; ${READS.length} reads listed) × 3 callers, ${cells.length - wrong.length} of ${cells.length} answered as owned; policy changes recorded with the actor`,
      injected: `BALLAST_REGISTRY_TEAM_TOKENS with two teams; each write RPC called as the owning team, as another team and with no team token; the model, its aliases, its deployments and its policy history compared before and after each refused call`,
      measured: {
        'write RPCs': rpcs.map((m) => m.name).join(', '),
        'read RPCs (listed, open to all)': READS.join(', '),
        answers: cells.join('; '),
        'wrong answers or changes by a refused call': wrong.length ? wrong.join('; ') : 0,
        'policy history': history,
      },
      pass,
    });
    expect(wrong).toEqual([]);
  }, 120_000);
});

describe('temporary files and artifact paths', () => {
  it('refuses paths with control, bidirectional-override or only-space names, naming the field and the rule', async () => {
    const bad: Array<[string, string, RegExp]> = [
      ['a control character', 'w\u0007.bin', /control characters/],
      ['U+202E right-to-left override', 'w\u202Enib.exe', /bidirectional/],
      ['U+202A left-to-right embedding', '\u202Aw.bin', /bidirectional/],
      ['U+2066 left-to-right isolate', 'w\u2066.bin', /bidirectional/],
      ['U+2069 pop directional isolate', 'dir/w\u2069.bin', /bidirectional/],
      ['only spaces', '   ', /only spaces/],
      ['a segment of only spaces', 'dir/  /w.bin', /only spaces/],
    ];
    const answers: string[] = [];
    const wrong: string[] = [];
    for (const [what, path, rule] of bad) {
      const files = [modelJson(['w.bin']), { path, data: Buffer.alloc(16, 1) }];
      const error = await outcome(client.uploadArtifact(uploadParts(files), owner));
      answers.push(`${what}: ${error ? `${status[error.code]} ${error.field}` : 'OK'}`);
      if (
        error?.code !== status.INVALID_ARGUMENT ||
        error.field !== 'manifest.files[1].path' ||
        !rule.test(error.rule ?? '')
      )
        wrong.push(
          `${what}: ${error ? `${status[error.code]} field=${error.field} rule=${error.rule}` : 'accepted'}`,
        );
    }
    record({
      scenario: 'registry: artifact paths with control, bidi-override or only-space names',
      headline: `registry paths: ${bad.length - wrong.length} of ${bad.length} misleading artifact paths refused INVALID_ARGUMENT with field and rule (U+202E, U+202A, U+2066, U+2069, BEL, only spaces)`,
      injected: `${bad.length} uploads whose second file's path holds a control character, a bidirectional override, embedding or isolate (U+202A-U+202E, U+2066-U+2069), or is only spaces (whole or one segment)`,
      measured: { answers: answers.join('; '), wrong: wrong.length ? wrong.join('; ') : 0 },
      pass: wrong.length === 0,
    });
    expect(wrong).toEqual([]);
  });

  it('sweeps the temporary file a kill -9 mid-upload leaves, at the next start', async () => {
    const tempFiles = () => {
      const root = join(artifactDir, 'sha256');
      return existsSync(root) ? readdirSync(root).filter((f) => f.startsWith('.tmp-')) : [];
    };
    expect(tempFiles()).toEqual([]);
    const big = { path: 'big.bin', data: randomBytes(4 * 1024 * 1024) };
    const files = [big, modelJson(['big.bin'])];
    // The stream sends the first MiB of big.bin, then holds until the process is gone.
    const held = gate();
    const parts = (async function* () {
      let sent = 0;
      for await (const part of uploadParts(files)) {
        if (part.part.case === 'chunk') {
          if (sent >= 1024 * 1024) await held.opened;
          sent += part.part.value.data.byteLength;
        }
        yield part;
      }
    })();
    const upload = outcome(client.uploadArtifact(parts, owner));
    await waitUntil(
      async () => tempFiles().some((f) => statSync(join(artifactDir, 'sha256', f)).size >= 1024 * 1024),
      'a temporary file holding the first MiB',
    );
    await proc.kill('SIGKILL');
    held.open();
    const cut = await upload;
    const left = tempFiles();
    const leftBytes = left.reduce((sum, f) => sum + statSync(join(artifactDir, 'sha256', f)).size, 0);
    const logsBefore = proc.output().length;
    await proc.restart();
    await waitHealth(proc, 'ballast.registry.v1.RegistryService');
    const after = tempFiles();
    const log = proc.output().slice(logsBefore);
    const sweptLine = log.split('\n').find((l) => l.includes('stale temporary')) ?? '';
    const pass = left.length === 1 && after.length === 0 && sweptLine.includes(`"bytes":${leftBytes}`);
    record({
      scenario: 'registry: kill -9 mid-upload, restart',
      headline: `registry kill -9 mid-upload: ${left.length} temporary file (${leftBytes} bytes) left, ${after.length} after the restart; the start logged the sweep`,
      injected:
        'an upload of a 4 MiB file held after its first MiB, the registry killed with SIGKILL, then started again on the same artifact directory',
      measured: {
        'upload status': cut ? status[cut.code] : 'OK',
        'temporary files after the kill': left.length,
        'their bytes': leftBytes,
        'temporary files after the restart': after.length,
        'start-up log': sweptLine.slice(0, 300) || '(none)',
      },
      pass,
    });
    expect(cut).toBeDefined();
    expect(left).toHaveLength(1);
    expect(after).toEqual([]);
    expect(sweptLine).toContain(`"bytes":${leftBytes}`);
  }, 120_000);
});
