// Start-up before the schema exists: each service with a database (ingest, feature,
// registry, monitor) is started while another session holds its migration lock (as a
// slow migration by another replica would), and must answer health NOT_SERVING and every
// RPC of its descriptor UNAVAILABLE until its migrations ran, then serve. The trainer
// serves no gRPC and inference has no schema: neither has migrations to wait for.
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { once } from 'node:events';
import type { ServiceName } from '@ballast/config';
import { FeatureService } from '@ballast/contracts/ballast/feature/v1/feature_pb.js';
import { IngestService } from '@ballast/contracts/ballast/ingest/v1/ingest_pb.js';
import { MonitorService } from '@ballast/contracts/ballast/monitor/v1/monitor_pb.js';
import { RegistryService } from '@ballast/contracts/ballast/registry/v1/registry_pb.js';
import { createClient, RpcError, type ServiceDesc } from '@ballast/grpc-kit';
import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { suiteRecorder } from './report.js';
import {
  healthStatus,
  psqlValue,
  type ServiceProcess,
  ServingStatus,
  startService,
  suiteParts,
  tempDir,
  waitHealth,
} from './support.js';

const record = suiteRecorder('startup', 'Start-up: no RPC served before the migrations ran');

interface Case {
  service: ServiceName;
  desc: ServiceDesc;
  /** The schema it migrates (its advisory lock is `ballast.migrate:<schema>`). */
  schema: string;
  /** A read that needs its tables, once it serves: answered by the service, not the gate. */
  probe: { method: string; request: object };
}

const CASES: Case[] = [
  {
    service: 'ingest',
    desc: IngestService,
    schema: 'ingest',
    probe: { method: 'listDatasets', request: {} },
  },
  {
    service: 'feature',
    desc: FeatureService,
    schema: 'feature',
    probe: { method: 'getFeatureView', request: { name: 'v' } },
  },
  {
    service: 'registry',
    desc: RegistryService,
    schema: 'registry',
    probe: { method: 'listModels', request: {} },
  },
  {
    service: 'monitor',
    desc: MonitorService,
    schema: 'monitor',
    probe: { method: 'listAlerts', request: {} },
  },
];

const parts = suiteParts('startup');

/** A psql session holding the migration locks of `schemas` in an open transaction until release(). */
async function holdMigrationLocks(url: string, schemas: string[]) {
  const psql: ChildProcessWithoutNullStreams = spawn('psql', [url, '-At', '-v', 'ON_ERROR_STOP=1']);
  let out = '';
  psql.stdout.on('data', (d) => {
    out += String(d);
  });
  const locks = schemas
    .map((s) => `SELECT pg_advisory_xact_lock(hashtextextended('ballast.migrate:${s}', 0));`)
    .join('\n');
  psql.stdin.write(`BEGIN;\n${locks}\nSELECT 'locked';\n`);
  for (let i = 0; i < 600 && !out.includes('locked'); i++) await once(psql.stdout, 'data');
  return {
    async release() {
      psql.stdin.end('COMMIT;\n');
      if (psql.exitCode === null) await once(psql, 'exit');
    },
  };
}

/** Calls a client's method by its local name (from the descriptor). */
function call(client: object, method: string, request: unknown): Promise<unknown> | AsyncIterable<unknown> {
  const fn = (client as Record<string, (req: unknown) => Promise<unknown> | AsyncIterable<unknown>>)[method];
  if (!fn) throw new Error(`the client has no method ${method}`);
  return fn.call(client, request);
}

/** The status a call ends with: OK, or its RpcError's code and details. */
async function outcome(call: () => Promise<unknown> | AsyncIterable<unknown>) {
  try {
    const result = call();
    if (result && typeof result === 'object' && Symbol.asyncIterator in result) {
      for await (const _ of result as AsyncIterable<unknown>) break;
    } else await result;
    return { code: status.OK, details: '' };
  } catch (err) {
    if (err instanceof RpcError) return { code: err.code, details: err.details };
    return { code: status.UNKNOWN, details: String(err) };
  }
}

describe('services with a schema', () => {
  it('answer NOT_SERVING and UNAVAILABLE on every RPC until their migrations ran, then serve', async () => {
    const lock = await holdMigrationLocks(
      parts.db.url,
      CASES.map((c) => c.schema),
    );
    let released = false;
    try {
      const env = { BALLAST_REDIS_URL: parts.redis.url, BALLAST_DATABASE_URL: parts.db.url };
      for (const c of CASES) {
        parts.procs.push(
          await startService(c.service, { ...env, BALLAST_DATA_DIR: tempDir(`startup-${c.service}`) }),
        );
      }
      // Each has connected and waits on the lock inside its first migration step.
      const waiting = () =>
        Number(
          psqlValue(
            parts.db.url,
            `SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database
             WHERE l.locktype = 'advisory' AND NOT l.granted AND d.datname = '${parts.db.name}'`,
          ),
        );
      for (let i = 0; i < 2_400 && waiting() < CASES.length; i++) {
        for (const p of parts.procs) if (!p.alive()) throw new Error(`${p.service} exited:\n${p.output()}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(waiting()).toBe(CASES.length);
      const before = [];
      for (const [i, c] of CASES.entries()) {
        const proc = parts.procs[i] as ServiceProcess;
        await waitHealth(proc, '', ServingStatus.SERVING); // listening: liveness answers
        const health = await healthStatus(proc.address, c.desc.typeName);
        const client = createClient(c.desc, { address: proc.address, deadlineMs: 10_000, retry: false });
        const answers = [];
        for (const method of c.desc.methods) {
          const streamed = method.methodKind === 'client_streaming' || method.methodKind === 'bidi_streaming';
          const request = streamed ? (async function* () {})() : {};
          answers.push({
            method: method.name,
            ...(await outcome(() => call(client, method.localName, request))),
          });
        }
        client.close();
        before.push({ c, health, answers });
      }
      await lock.release();
      released = true;
      const after = [];
      for (const [i, c] of CASES.entries()) {
        const proc = parts.procs[i] as ServiceProcess;
        const readyMs = await waitHealth(proc, c.desc.typeName, ServingStatus.SERVING);
        const client = createClient(c.desc, { address: proc.address, deadlineMs: 10_000, retry: false });
        const probe = await outcome(() => call(client, c.probe.method, c.probe.request));
        client.close();
        after.push({ c, readyMs, probe });
      }
      const notUnavailable = before.flatMap((b) =>
        b.answers
          .filter((a) => a.code !== status.UNAVAILABLE || !a.details.includes('not migrated yet'))
          .map((a) => `${b.c.service} ${a.method}: ${status[a.code]} ${a.details}`),
      );
      const rpcs = before.reduce((n, b) => n + b.answers.length, 0);
      const served = after.filter(
        (a) => a.probe.code !== status.UNAVAILABLE && a.probe.code !== status.INTERNAL,
      );
      const pass = record({
        scenario:
          'start-up with the migration lock held by another session: ingest, feature, registry, monitor',
        headline: `start-up before migrations: ${before.filter((b) => b.health === ServingStatus.NOT_SERVING).length} of ${CASES.length} services NOT_SERVING, ${rpcs - notUnavailable.length} of ${rpcs} RPCs (every method of their descriptors) UNAVAILABLE; all ${served.length} served once the lock was released`,
        injected:
          'a psql session holds pg_advisory_xact_lock(ballast.migrate:<schema>) for the 4 schemas while the services start (a slow migration elsewhere); every RPC of each descriptor called with an empty request; then the lock is released',
        measured: {
          ...Object.fromEntries(
            before.map((b) => [
              `${b.c.service}: health / RPCs UNAVAILABLE before`,
              `${ServingStatus[b.health as ServingStatus]} / ${b.answers.filter((a) => a.code === status.UNAVAILABLE).length} of ${b.answers.length}`,
            ]),
          ),
          'answers other than UNAVAILABLE before': notUnavailable.join('; ') || 'none',
          ...Object.fromEntries(
            after.map((a) => [
              `${a.c.service}: SERVING after release (ms) / probe`,
              `${a.readyMs} / ${status[a.probe.code]}`,
            ]),
          ),
        },
        pass:
          notUnavailable.length === 0 &&
          before.every((b) => b.health === ServingStatus.NOT_SERVING) &&
          served.length === CASES.length,
      });
      expect(before.map((b) => [b.c.service, ServingStatus[b.health as ServingStatus]])).toEqual(
        CASES.map((c) => [c.service, 'NOT_SERVING']),
      );
      expect(notUnavailable).toEqual([]);
      expect(after.map((a) => [a.c.service, status[a.probe.code]])).toEqual([
        ['ingest', 'OK'],
        ['feature', 'NOT_FOUND'],
        ['registry', 'OK'],
        ['monitor', 'OK'],
      ]);
      expect(pass).toBe(true);
    } finally {
      if (!released) await lock.release();
    }
  }, 300_000);
});
