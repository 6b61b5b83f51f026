import { RegistryService, Task } from '@ballast/contracts/ballast/registry/v1/registry_pb.js';
import { createClient, RpcError } from '@ballast/grpc-kit';
import {
  createTestDatabase,
  healthStatus,
  type PostgresTestDatabase,
  type ServiceProcess,
  ServingStatus,
  startServiceProcess,
  waitHealth,
  waitUntil,
} from '@ballast/grpc-kit/testing';
import { openDatabase, type Sql } from '@ballast/storage';
import { status } from '@grpc/grpc-js';
import { afterAll, describe, expect, it } from 'vitest';
import { parseTeamTokens } from './auth.js';
import { nameProblem } from './validation.js';

// The registry as its own process (dist/main.js): what it does before it serves.

const REGISTRY = 'ballast.registry.v1.RegistryService';
const TOKEN = 'a-team-token-0123456789';
const cleanup: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const step of cleanup.reverse()) await step().catch(() => undefined);
});

async function rejection(call: Promise<unknown> | AsyncIterable<unknown>): Promise<RpcError> {
  try {
    if (Symbol.asyncIterator in call) for await (const _ of call) break;
    else await call;
  } catch (err) {
    if (err instanceof RpcError) return err;
    throw err;
  }
  throw new Error('expected the call to fail');
}

describe('registry start-up', () => {
  it('answers NOT_SERVING and UNAVAILABLE until its migrations have run', async () => {
    const db: PostgresTestDatabase = await createTestDatabase('registry_start');
    cleanup.push(() => db.close());
    const admin: Sql = await openDatabase({ url: db.url, schema: 'public' });
    cleanup.push(() => admin.close());
    // Another process migrating the same schema holds this lock: the registry must wait for it.
    let release = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    let locked = () => {};
    const lockTaken = new Promise<void>((resolve) => {
      locked = resolve;
    });
    const holder = admin.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', ['ballast.migrate:registry']);
      locked();
      await held;
    });
    await lockTaken;
    const registry: ServiceProcess = await startServiceProcess({
      package: '@ballast/registry',
      ready: false,
      telemetry: false,
      env: db.env,
    });
    cleanup.push(() => registry.kill());
    // The registry has connected and waits on the lock inside its first migration step.
    await waitUntil(
      async () =>
        Number(
          (
            await admin.query<{ n: string }>(
              `SELECT count(*) AS n FROM pg_locks l JOIN pg_database d ON d.oid = l.database
               WHERE l.locktype = 'advisory' AND NOT l.granted AND d.datname = $1`,
              [db.name],
            )
          ).rows[0]?.n,
        ) > 0,
      'the registry waiting for the migration lock',
      { process: registry },
    );
    await waitHealth(registry, '', { status: ServingStatus.SERVING });
    const client = createClient(RegistryService, {
      address: registry.address,
      deadlineMs: 10_000,
      retry: false,
    });
    cleanup.push(async () => client.close());
    expect(await healthStatus(registry.address, REGISTRY)).toBe(ServingStatus.NOT_SERVING);
    const watch = await rejection(client.watchDeployments({}));
    expect([status[watch.code], watch.details]).toEqual([
      'UNAVAILABLE',
      'the registry is starting: its database schema is not migrated yet; retry',
    ]);
    expect((await rejection(client.listModels({}))).code).toBe(status.UNAVAILABLE);
    expect((await rejection(client.getModel({ name: 'm' }))).code).toBe(status.UNAVAILABLE);

    release();
    await holder;
    await waitHealth(registry, REGISTRY, { status: ServingStatus.SERVING });
    await client.createModel({ name: 'm', task: Task.REGRESSION, ownerTeam: 'forecasting' });
    expect((await client.listModels({})).models.map((m) => m.name)).toEqual(['m']);
  }, 180_000);

  it('refuses to start with a team name CreateModel would refuse, naming the team and not the token', async () => {
    const db = await createTestDatabase('registry_teams', { postgres: false });
    cleanup.push(() => db.close());
    const registry = await startServiceProcess({
      package: '@ballast/registry',
      ready: false,
      telemetry: false,
      env: { ...db.env, BALLAST_REGISTRY_TEAM_TOKENS: `forecasting=${TOKEN}x,teamA=${TOKEN}` },
    });
    cleanup.push(() => registry.kill());
    await waitUntil(async () => !registry.alive(), 'the registry exiting', { timeoutMs: 50_000 });
    expect(registry.child.exitCode).toBe(1);
    const output = registry.output();
    expect(output).toContain('failed to start: Invalid configuration (1 problem):');
    expect(output).toContain(
      `BALLAST_REGISTRY_TEAM_TOKENS: team "teamA" is not a team name CreateModel accepts as owner_team: ${nameProblem('teamA')}`,
    );
    expect(output).not.toContain(TOKEN);
  }, 60_000);

  it('takes team names by the same rule as owner_team', () => {
    for (const team of ['forecasting', 'fraud-detection', 'a', 'x.y_z', 'teamA', 'team a', '-x', 'x-', 'é']) {
      const accepted = (() => {
        try {
          parseTeamTokens(`${team}=${TOKEN}`);
          return true;
        } catch {
          return false;
        }
      })();
      expect({ team, accepted }).toEqual({ team, accepted: nameProblem(team) === undefined });
    }
    expect(() => parseTeamTokens(`fraud=${TOKEN},fraud=${TOKEN}x`)).toThrow(/"fraud" is listed twice/);
    expect(() => parseTeamTokens(`fraud=${TOKEN},risk=${TOKEN}`)).toThrow(/"risk" has the same token/);
  });
});
