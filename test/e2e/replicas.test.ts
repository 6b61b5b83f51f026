import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { InferenceService, VersionState } from '@ballast/contracts/ballast/inference/v1/inference_pb.js';
import { RegistryService } from '@ballast/contracts/ballast/registry/v1/registry_pb.js';
import { createClient, RpcError, type ServiceClient } from '@ballast/grpc-kit';
import { selectBackend } from '@ballast/ml';
import { connectRedis, type RedisConnection } from '@ballast/queue';
import { InterceptingCall, type Interceptor, Metadata, status } from '@grpc/grpc-js';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { demandModel, FEATURES, registerAndPromote } from '../reliability/workload.js';
import { eventually, type RunningProcess, startServiceProcess, waitServing } from './support.js';

// Several inference replicas behind client-side round robin: the registry (PGlite in a
// temporary directory) and three inference processes, each with its own artifact cache, all
// serving one small model; one kit client given the three addresses drives a closed-loop
// Predict load and one replica is killed (SIGKILL) a third of the way in. Every call must
// still be answered, with the model's own value: the calls the dead replica held fail with
// UNAVAILABLE and the kit's retry policy sends them again, and the round-robin picker stops
// choosing a subchannel that is not READY. Redis DB 12 (flushed) keeps the replicas' prediction
// logs apart from every other test. No latency is asserted: only what was answered, by whom.
const REDIS_URL = process.env.BALLAST_TEST_REPLICAS_REDIS_URL ?? 'redis://127.0.0.1:6379/12';
const root = mkdtempSync(join(tmpdir(), 'ballast-replicas-'));
const MODEL = 'demand';
const REPLICAS = 3;
const CALLERS = 8;
const LOAD_MS = 6_000;
const CALL_ID = 'x-replicas-test-call';

/** The i-th request of the load: 42 distinct rows (7 prices x promo x 3 temperatures), expected values computed here. */
const VARIANTS = 42;
const row = (i: number) => [5 + (i % 7), i % 2, 20 + (i % 3) * 5];
const request = (i: number) => {
  const values = row(i);
  return {
    model: MODEL,
    rows: [{ features: Object.fromEntries(FEATURES.map((f, k) => [f, values[k] ?? 0])) }],
  };
};

/** Registers a seeded MLP (3 named features -> `prediction`), promotes it; its answer for every variant. */
async function registerModel(registry: ServiceClient<typeof RegistryService>): Promise<number[]> {
  await selectBackend('cpu');
  const model = demandModel(7);
  try {
    const expected = tf.tidy(() => {
      const x = tf.tensor2d(Array.from({ length: VARIANTS }, (_, i) => row(i)));
      return Array.from((model.predict(x) as tf.Tensor).dataSync());
    });
    const version = await registerAndPromote(registry, MODEL, model, { seed: 7, reason: 'replicas e2e' });
    expect(version).toBe(1);
    return expected;
  } finally {
    model.dispose();
  }
}

/** Predict requests answered OK, by the replica's /metrics (summed over labels). */
async function answeredOk(replica: RunningProcess): Promise<number> {
  const body = await (await fetch(`http://127.0.0.1:${replica.httpPort}/metrics`)).text();
  let total = 0;
  for (const line of body.split('\n')) {
    const match = /^ballast_inference_requests_total\{([^}]*)\} ([0-9.e+]+)/.exec(line);
    if (match?.[1]?.includes('status="OK"')) total += Number(match[2]);
  }
  return total;
}

/** One finished call of the load, as the caller saw it. */
interface Call {
  id: number;
  start: number;
  end: number;
  code: number;
  value: number | undefined;
  expected: number | undefined;
  /** The replica that answered (`127.0.0.1:port`), from the committed attempt's transport. */
  peer: string | undefined;
  /** Attempts before the one that answered (grpc-js's `grpc-previous-rpc-attempts`). */
  retries: number;
}

/**
 * Which replica answered each call, and after how many attempts: read off the call when the
 * response headers arrive (grpc-js commits the retried call to that attempt first).
 */
function answeringReplica(seen: Map<number, { peer: string; retries: number }>): Interceptor {
  return (options, nextCall) => {
    const call: InterceptingCall = new InterceptingCall(nextCall(options), {
      start(metadata, _listener, next) {
        const id = Number(metadata.get(CALL_ID)[0]);
        next(metadata, {
          onReceiveMetadata(headers, nextHeaders) {
            seen.set(id, {
              peer: call.getPeer(),
              retries: Number(headers.get('grpc-previous-rpc-attempts')[0] ?? 0),
            });
            nextHeaders(headers);
          },
        });
      },
    });
    return call;
  };
}

describe('three inference replicas behind round robin', () => {
  let redis: RedisConnection;
  let registryProcess: RunningProcess;
  const replicas: RunningProcess[] = [];
  let expected: number[];

  const inferenceEnv = (i: number, registryAddr: string) => ({
    BALLAST_DATA_DIR: join(root, `inference-${i}`),
    BALLAST_DATABASE_URL: '',
    BALLAST_REDIS_URL: REDIS_URL,
    BALLAST_REGISTRY_ADDR: registryAddr,
    BALLAST_TF_BACKEND: 'cpu',
  });
  const address = (p: RunningProcess) => `127.0.0.1:${p.grpcPort}`;

  /** Until the replica is SERVING with version 1 READY for `production`, and answers a Predict as expected. */
  async function waitServesModel(replica: RunningProcess) {
    await waitServing(address(replica), InferenceService.typeName).catch((err: Error) => {
      throw new Error(
        `${err.message}; exit ${replica.child.exitCode}; output:\n${replica.output().slice(-3_000)}`,
      );
    });
    const direct = createClient(InferenceService, {
      address: address(replica),
      deadlineMs: 5_000,
      retry: false,
    });
    try {
      await eventually(
        async () => {
          const { models } = await direct.getServingStatus({ model: MODEL });
          const v1 = models[0]?.versions.find((v) => v.version === 1);
          return v1?.state === VersionState.READY && v1.aliases.includes('production') ? true : undefined;
        },
        `${MODEL} v1 READY on ${address(replica)} (${replica.output().slice(-2_000)})`,
        600,
      );
      const answer = await direct.predict(request(0));
      expect(answer.version).toBe(1);
      expect(answer.predictions[0]?.outputs.prediction?.values[0]).toBeCloseTo(expected[0] ?? Number.NaN, 5);
    } finally {
      direct.close();
    }
  }

  beforeAll(async () => {
    redis = connectRedis(REDIS_URL);
    await redis.flushdb();
    registryProcess = await startServiceProcess('registry', {
      BALLAST_DATA_DIR: join(root, 'registry'),
      BALLAST_DATABASE_URL: '',
      BALLAST_REDIS_URL: REDIS_URL,
    });
    await waitServing(address(registryProcess), RegistryService.typeName);
    const registry = createClient(RegistryService, { address: address(registryProcess), deadlineMs: 30_000 });
    try {
      expected = await registerModel(registry);
    } finally {
      registry.close();
    }
    for (let i = 0; i < REPLICAS; i++) {
      replicas.push(await startServiceProcess('inference', inferenceEnv(i, address(registryProcess))));
    }
    for (const replica of replicas) await waitServesModel(replica);
  }, 240_000);

  afterAll(async () => {
    await Promise.all([...replicas, registryProcess].filter(Boolean).map((p) => p.stop()));
    await redis?.flushdb();
    redis?.disconnect();
    rmSync(root, { recursive: true, force: true });
  });

  it('kill -9 one replica under Predict load: every call is answered, by the others', async () => {
    const seen = new Map<number, { peer: string; retries: number }>();
    const client = createClient(InferenceService, {
      address: replicas.map(address),
      deadlineMs: 10_000,
      channelOptions: {
        interceptors: [answeringReplica(seen)],
        // Try a lost replica again at least every 2 s (the default backoff grows to 2 min), so
        // the restarted one below is taken back soon after it listens.
        'grpc.max_reconnect_backoff_ms': 2_000,
      },
    });
    let nextId = 0;
    const calls: Call[] = [];
    const callOnce = async () => {
      const id = nextId++;
      const metadata = new Metadata();
      metadata.set(CALL_ID, String(id));
      const start = Date.now();
      let code: number = status.OK;
      let value: number | undefined;
      try {
        const answer = await client.predict(request(id), { metadata });
        value = answer.predictions[0]?.outputs.prediction?.values[0];
      } catch (err) {
        code = err instanceof RpcError ? err.code : status.UNKNOWN;
      }
      const by = seen.get(id);
      seen.delete(id);
      calls.push({
        id,
        start,
        end: Date.now(),
        code,
        value,
        expected: expected[id % VARIANTS],
        peer: by?.peer,
        retries: by?.retries ?? 0,
      });
    };
    /** `callers` closed-loop callers until `until()` holds. */
    const load = (callers: number, until: () => boolean) =>
      Promise.all(
        Array.from({ length: callers }, async () => {
          while (!until()) await callOnce();
        }),
      );

    try {
      const [victim, ...survivors] = replicas as [RunningProcess, ...RunningProcess[]];
      const okBefore = await Promise.all(survivors.map(answeredOk));

      // --- load, with one replica killed a third of the way in -----------------------------
      const loadStart = Date.now();
      let loading = true;
      const running = load(CALLERS, () => !loading);
      await sleep(LOAD_MS / 3);
      const killAt = Date.now();
      const exit = await victim.stop('SIGKILL');
      const diedAt = Date.now();
      await sleep(LOAD_MS - (Date.now() - loadStart));
      loading = false;
      await running;
      const loadCalls = calls.splice(0);

      const failed = loadCalls.filter((c) => c.code !== status.OK);
      const wrong = loadCalls.filter(
        (c) => c.code === status.OK && !(Math.abs((c.value ?? Number.NaN) - (c.expected ?? 0)) <= 1e-6),
      );
      const byPeer = (list: Call[]) => {
        const counts = new Map<string, number>(replicas.map((r) => [address(r), 0]));
        for (const c of list) if (c.peer) counts.set(c.peer, (counts.get(c.peer) ?? 0) + 1);
        return Object.fromEntries(counts);
      };
      const beforeKill = loadCalls.filter((c) => c.end < killAt);
      const afterDeath = loadCalls.filter((c) => c.start > diedAt);
      const okAfter = await Promise.all(survivors.map(answeredOk));
      const figures = {
        calls: loadCalls.length,
        failed: failed.length,
        failedCodes: [...new Set(failed.map((c) => status[c.code]))],
        wrongValues: wrong.length,
        retried: loadCalls.filter((c) => c.retries > 0).length,
        byReplica: byPeer(loadCalls),
        byReplicaBeforeKill: byPeer(beforeKill),
        byReplicaAfterDeath: byPeer(afterDeath),
        victim: address(victim),
        killAtMs: killAt - loadStart,
        diedAtMs: diedAt - loadStart,
        survivorsOkDelta: Object.fromEntries(
          survivors.map((s, k) => [address(s), (okAfter[k] ?? 0) - (okBefore[k] ?? 0)]),
        ),
      };
      console.log(`replicas under load: ${JSON.stringify(figures)}`);

      // the victim really died (SIGKILL, no exit code), mid-load: calls went on after its death
      expect(exit).toBeNull();
      expect(victim.child.signalCode).toBe('SIGKILL');
      expect(afterDeath.length).toBeGreaterThan(CALLERS);
      expect(beforeKill.length).toBeGreaterThan(CALLERS);
      // no call failed, every answer is the model's own
      expect(figures.failedCodes).toEqual([]);
      expect(failed).toHaveLength(0);
      expect(wrong).toHaveLength(0);
      expect(loadCalls.every((c) => c.peer !== undefined)).toBe(true);
      // the calls the victim held when it died were among them: answered on a second attempt
      expect(figures.retried).toBeGreaterThan(0);
      // all three shared the load before the kill; only the survivors answered after the death
      for (const r of replicas) expect(figures.byReplicaBeforeKill[address(r)]).toBeGreaterThan(0);
      expect(figures.byReplicaAfterDeath[address(victim)]).toBe(0);
      for (const s of survivors) expect(figures.byReplicaAfterDeath[address(s)]).toBeGreaterThan(0);
      // the survivors' own counters agree with what the client saw them answer
      for (const s of survivors)
        expect(figures.survivorsOkDelta[address(s)]).toBe(figures.byReplica[address(s)]);

      // --- the replica comes back on its address and takes its share again -----------------
      // On its ports and environment of before (replicas[0] is the victim).
      const restarted = victim;
      await restarted.restart();
      await waitServesModel(restarted);
      let rejoined = false;
      const rejoin = load(2, () => rejoined);
      await eventually(
        async () => {
          rejoined = calls.some((c) => c.peer === address(restarted));
          return rejoined ? true : undefined;
        },
        `calls answered by the restarted replica ${address(restarted)}`,
        600,
      ).finally(() => {
        rejoined = true;
      });
      await rejoin;
      const rejoinCalls = calls.splice(0);
      console.log(`rejoin: ${JSON.stringify({ calls: rejoinCalls.length, byReplica: byPeer(rejoinCalls) })}`);
      expect(rejoinCalls.filter((c) => c.code !== status.OK)).toHaveLength(0);
      expect(
        rejoinCalls.filter((c) => !(Math.abs((c.value ?? Number.NaN) - (c.expected ?? 0)) <= 1e-6)),
      ).toHaveLength(0);
    } finally {
      client.close();
    }
  }, 180_000);
});
