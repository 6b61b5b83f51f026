import { type FeatureService, FieldStatus } from '@ballast/contracts/ballast/feature/v1/feature_pb.js';
import { type EntityKey, type Row, RowSchema } from '@ballast/contracts/ballast/inference/v1/inference_pb.js';
import {
  failedPrecondition,
  invalidArgument,
  notFound,
  RpcError,
  type ServiceClient,
} from '@ballast/grpc-kit';
import { create } from '@bufbuild/protobuf';
import { status } from '@grpc/grpc-js';
import type { PackedLookup } from './packed-lookup.js';

/**
 * The feature service's refusals keep their meaning for the caller (an unknown view is
 * NOT_FOUND, not our INTERNAL); UNAVAILABLE and DEADLINE_EXCEEDED pass through the kit as they are.
 */
function fromFeatureService(err: unknown): never {
  if (err instanceof RpcError) {
    if (err.code === status.NOT_FOUND) throw notFound(`feature service: ${err.details}`);
    if (err.code === status.INVALID_ARGUMENT)
      throw invalidArgument('entities', `the feature service refused the lookup: ${err.details}`);
    if (err.code === status.FAILED_PRECONDITION) throw failedPrecondition(`feature service: ${err.details}`);
  }
  throw err;
}

/** A feature view at one version (the one a model version was trained on), or its latest ("" version). */
export interface ViewRef {
  name: string;
  version: string;
}

/**
 * Entity lookups for Predict: the latest feature vector of each entity, from the feature
 * service's online store (one GetOnlineFeatures call, packed values), as rows of named
 * features for the model. The view's entity fields say the order of each entity's key
 * values; they are asked once per view version.
 */
export class OnlineFeatures {
  readonly #entityFields = new Map<string, Promise<string[]>>();

  constructor(
    private readonly feature: ServiceClient<typeof FeatureService>,
    /** GetOnlineFeatures answered as bytes and read directly (packed-lookup.ts). */
    private readonly lookup: PackedLookup,
  ) {}

  async rows(view: ViewRef, entities: readonly EntityKey[], deadline: Date | undefined): Promise<Row[]> {
    const timeoutMs = deadline ? Math.max(1, deadline.getTime() - Date.now()) : undefined;
    const options = timeoutMs === undefined ? {} : { timeoutMs };
    const fields = await this.#fieldsOf(view, options);
    const keys = entities.map((entity, i) => {
      const unknown = Object.keys(entity.keys).filter((k) => !fields.includes(k));
      if (unknown.length > 0) {
        throw invalidArgument(
          `entities.entities[${i}].keys`,
          `has ${unknown.join(', ')}, which view ${view.name} does not key on (its keys: ${fields.join(', ')})`,
        );
      }
      return fields.map((field) => {
        const value = entity.keys[field];
        if (value === undefined || value === '') {
          throw invalidArgument(
            `entities.entities[${i}].keys`,
            `must name ${field} (view ${view.name} keys on ${fields.join(', ')})`,
          );
        }
        return value;
      });
    });
    const answer = await this.lookup(
      {
        view: view.name,
        viewVersion: view.version,
        entities: keys.map((values) => ({ values })),
        packed: true,
      },
      timeoutMs,
    );
    const width = answer.featureNames.length;
    const { values } = answer;
    if (values.length !== entities.length * width) {
      throw new Error(
        `feature service answered ${values.length * 8} bytes of values for ${entities.length} entities x ${width} features`,
      );
    }
    return entities.map((entity, i) => {
      const label = keys[i]?.map((v, j) => `${fields[j]}=${v}`).join('/') ?? '';
      if (answer.statuses[i] === FieldStatus.NOT_FOUND) {
        throw notFound(
          `entity ${label} has no features in the online store of view ${view.name}@${answer.viewVersion.slice(0, 12)}`,
        );
      }
      const features: Record<string, number> = {};
      for (let j = 0; j < width; j++)
        features[answer.featureNames[j] as string] = values[i * width + j] as number;
      return create(RowSchema, { features, entityKey: label, segments: { ...entity.segments } });
    });
  }

  #fieldsOf(view: ViewRef, options: { timeoutMs?: number }): Promise<string[]> {
    const key = `${view.name}@${view.version}`;
    // A view's latest version can change; only a pinned version is remembered.
    let fields = view.version ? this.#entityFields.get(key) : undefined;
    if (!fields) {
      fields = this.feature
        .getFeatureView({ name: view.name, version: view.version }, options)
        .catch(fromFeatureService)
        .then((res) => {
          const entityFields = res.view?.definition?.entityFields ?? [];
          if (entityFields.length === 0)
            throw failedPrecondition(`feature view ${key} names no entity fields`);
          return entityFields;
        });
      // A failed lookup (feature service away, unknown view) is asked again next time.
      fields.catch(() => this.#entityFields.delete(key));
      if (view.version) this.#entityFields.set(key, fields);
    }
    return fields;
  }
}
