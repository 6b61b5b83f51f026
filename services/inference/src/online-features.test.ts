import {
  FeatureService,
  FieldStatus,
  type GetOnlineFeaturesRequest,
} from '@ballast/contracts/ballast/feature/v1/feature_pb.js';
import { EntityKeySchema } from '@ballast/contracts/ballast/inference/v1/inference_pb.js';
import {
  BallastError,
  createClient,
  type GrpcServer,
  notFound,
  type ServiceImpl,
  serve,
  startGrpcServer,
} from '@ballast/grpc-kit';
import { create } from '@bufbuild/protobuf';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OnlineFeatures } from './online-features.js';
import { packedLookupClient } from './packed-lookup.js';

// A feature service over its real proto and a real grpc-js server, holding one view keyed on
// (warehouse_id, sku) with two features and two stored entities.
const STORED = new Map([
  ['["W1","S01"]', [10, 0.5]],
  ['["W4","S01"]', [40, 2.5]],
]);
const asked: GetOnlineFeaturesRequest[] = [];
let viewLookups = 0;
const unimplemented = () => {
  throw new BallastError('unimplemented', 'not in this test');
};
const feature = {
  ...Object.fromEntries(FeatureService.methods.map((m) => [m.localName, unimplemented])),
  async getFeatureView(req: { name: string; version: string }) {
    viewLookups++;
    if (req.name !== 'demand') throw notFound(`feature view ${req.name} does not exist`);
    return {
      view: { version: 'v-hash', definition: { name: 'demand', entityFields: ['warehouse_id', 'sku'] } },
    };
  },
  async getOnlineFeatures(req: GetOnlineFeaturesRequest) {
    asked.push(req);
    const found = req.entities.map((e) => STORED.get(JSON.stringify(e.values)));
    const values = new Float64Array(found.flatMap((f) => f ?? [Number.NaN, Number.NaN]));
    return {
      viewVersion: 'v-hash',
      featureNames: ['units_lag_1', 'price'],
      statuses: found.map((f) => (f ? FieldStatus.PRESENT : FieldStatus.NOT_FOUND)),
      packedValues: new Uint8Array(values.buffer),
    };
  },
} as unknown as ServiceImpl<typeof FeatureService>;

describe('entity lookups through the feature service', () => {
  let server: GrpcServer;
  let client: ReturnType<typeof createClient<typeof FeatureService>>;
  let online: OnlineFeatures;
  let packed: ReturnType<typeof packedLookupClient>;
  const view = { name: 'demand', version: 'v-hash' };
  const entity = (keys: Record<string, string>, segments: Record<string, string> = {}) =>
    create(EntityKeySchema, { keys, segments });

  beforeAll(async () => {
    const log = { info() {}, warn() {}, error() {} };
    server = await startGrpcServer({
      services: [serve(FeatureService, feature)],
      host: '127.0.0.1',
      port: 0,
      log,
    });
    server.setReady(true);
    client = createClient(FeatureService, { address: `127.0.0.1:${server.port}`, retry: false });
    packed = packedLookupClient({ address: `127.0.0.1:${server.port}` });
    online = new OnlineFeatures(client, packed.lookup);
  });
  afterAll(async () => {
    client.close();
    packed.close();
    await server.shutdown();
  });

  it('turns entities into rows of named features, keys in the view order, in one call', async () => {
    const rows = await online.rows(
      view,
      [
        entity({ sku: 'S01', warehouse_id: 'W4' }, { warehouse_id: 'W4' }),
        entity({ warehouse_id: 'W1', sku: 'S01' }),
      ],
      new Date(Date.now() + 5_000),
    );
    expect(rows.map((r) => [r.entityKey, r.features, r.segments])).toEqual([
      ['warehouse_id=W4/sku=S01', { units_lag_1: 40, price: 2.5 }, { warehouse_id: 'W4' }],
      ['warehouse_id=W1/sku=S01', { units_lag_1: 10, price: 0.5 }, {}],
    ]);
    expect(asked.at(-1)).toMatchObject({
      view: 'demand',
      viewVersion: 'v-hash',
      packed: true,
      entities: [{ values: ['W4', 'S01'] }, { values: ['W1', 'S01'] }],
    });
    // The view's entity fields are asked once per pinned version.
    await online.rows(view, [entity({ warehouse_id: 'W1', sku: 'S01' })], undefined);
    expect(viewLookups).toBe(1);
  });

  it('reports an entity the store has never seen instead of inventing its features', async () => {
    await expect(
      online.rows(view, [entity({ warehouse_id: 'W9', sku: 'S01' })], undefined),
    ).rejects.toMatchObject({
      code: 'not_found',
      message: expect.stringContaining('entity warehouse_id=W9/sku=S01 has no features'),
    });
  });

  it('refuses keys the view does not use or lacks, naming the entity and the view keys', async () => {
    await expect(
      online.rows(view, [entity({ warehouse_id: 'W1', store: 'x', sku: 'S01' })], undefined),
    ).rejects.toMatchObject({
      code: 'invalid_argument',
      field: 'entities.entities[0].keys',
      rule: expect.stringContaining('has store, which view demand does not key on'),
    });
    await expect(online.rows(view, [entity({ warehouse_id: 'W1' })], undefined)).rejects.toMatchObject({
      code: 'invalid_argument',
      rule: expect.stringContaining('must name sku'),
    });
  });

  it("keeps the feature service's NOT_FOUND for an unknown view", async () => {
    await expect(
      online.rows({ name: 'nope', version: '' }, [entity({ a: 'b' })], undefined),
    ).rejects.toMatchObject({
      code: 'not_found',
      message: expect.stringContaining('feature service: feature view nope does not exist'),
    });
  });
});
