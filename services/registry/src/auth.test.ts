import { Task } from '@ballast/contracts/ballast/registry/v1/registry_pb.js';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseTeamTokens } from './auth.js';
import { rejection, syntheticArtifact, uploadParts, versionRequest } from './test-fixtures.js';
import { as, startTestRegistry, type TestRegistry } from './test-registry.js';

const FORECASTING = 'forecasting-token-0123456789';
const FRAUD = 'fraud-token-0123456789abcdef';

describe('team ownership of registry writes', () => {
  let registry: TestRegistry;
  beforeAll(async () => {
    registry = await startTestRegistry('pglite', { teams: { forecasting: FORECASTING, fraud: FRAUD } });
  });
  afterAll(async () => {
    await registry?.close();
  });

  it('lets the owning team write, any caller read, and refuses the rest with the right status', async () => {
    const { client } = registry;
    const create = { name: 'owned', task: Task.REGRESSION, ownerTeam: 'forecasting' };
    expect((await rejection(client.createModel(create))).code).toBe(status.UNAUTHENTICATED);
    expect((await rejection(client.createModel(create, as('eve', 'not-a-real-token-at-all')))).code).toBe(
      status.UNAUTHENTICATED,
    );
    const foreign = await rejection(client.createModel(create, as('mallory', FRAUD)));
    expect(foreign).toMatchObject({ code: status.INVALID_ARGUMENT, field: 'owner_team' });
    await client.createModel(create, as('ana', FORECASTING));

    const uploaded = await client.uploadArtifact(uploadParts(syntheticArtifact('t')), as('ana', FORECASTING));
    const request = versionRequest('owned', uploaded.manifest?.digest ?? '');
    const denied = await rejection(client.createModelVersion(request, as('mallory', FRAUD)));
    expect(denied.code).toBe(status.PERMISSION_DENIED);
    expect(denied.details).toBe(
      'registering a version of model owned: team fraud may not change what team forecasting owns',
    );
    const { version } = await client.createModelVersion(request, as('ana', FORECASTING));
    expect(version?.createdBy).toBe('forecasting/ana');

    expect((await rejection(client.promote({ model: 'owned', version: 1 }, as('mallory', FRAUD)))).code).toBe(
      status.PERMISSION_DENIED,
    );
    expect((await rejection(client.promote({ model: 'owned', version: 1 }))).code).toBe(
      status.UNAUTHENTICATED,
    );
    const promoted = await client.promote({ model: 'owned', version: 1 }, as('ana', FORECASTING));
    expect(promoted.deployment?.actor).toBe('forecasting/ana');

    // Reads need no token.
    expect((await client.getVersionByAlias({ model: 'owned', alias: 'production' })).version?.version).toBe(
      1,
    );
    expect((await client.listDeployments({ model: 'owned' })).deployments).toHaveLength(1);
  });

  it('parses team tokens and refuses malformed or short ones', () => {
    expect(parseTeamTokens(undefined)).toBeUndefined();
    expect(parseTeamTokens(` forecasting=${FORECASTING} , fraud=${FRAUD}`)).toEqual(
      new Map([
        ['forecasting', FORECASTING],
        ['fraud', FRAUD],
      ]),
    );
    expect(() => parseTeamTokens('forecasting')).toThrow(/team=token pairs/);
    expect(() => parseTeamTokens('forecasting=short')).toThrow(/16\+ characters/);
  });

  it('accepts as owner_team exactly the team names BALLAST_REGISTRY_TEAM_TOKENS accepts', async () => {
    const open = await startTestRegistry('pglite');
    try {
      for (const team of ['forecasting', 'x.y_z', 'teamA', 'team a', '-x']) {
        const created = await open.client
          .createModel({
            name: `m-${team.length}-${team.charCodeAt(0)}`,
            task: Task.REGRESSION,
            ownerTeam: team,
          })
          .then(
            () => true,
            (err: { field?: string }) => (err.field === 'owner_team' ? false : Promise.reject(err)),
          );
        const configured = (() => {
          try {
            return parseTeamTokens(`${team}=${FORECASTING}`) !== undefined;
          } catch {
            return false;
          }
        })();
        expect({ team, created }).toEqual({ team, created: configured });
      }
    } finally {
      await open.close();
    }
  });
});
