import {
  FeatureService,
  type GetOnlineFeaturesRequestSchema,
  GetOnlineFeaturesResponseSchema,
  GetOnlineFeaturesRequestSchema as RequestSchema,
} from '@ballast/contracts/ballast/feature/v1/feature_pb.js';
import {
  type ClientOptions,
  channelCredentialsFromEnv,
  channelTarget,
  DEFAULT_MAX_MESSAGE_BYTES,
  methodPath,
  RpcError,
  serviceConfig,
} from '@ballast/grpc-kit';
import { create, fromBinary, type MessageInitShape, toBinary } from '@bufbuild/protobuf';
import { Client, Metadata, type ServiceError, status } from '@grpc/grpc-js';
import { NotCanonical, readMessage, tag, WIRE } from './wire.js';

// Entity lookups ask the feature service for packed values (one little-endian float64 per
// entity and feature) and need only the names, the statuses and those bytes. Through the
// generated client every answer became a message first: a BigInt per event time and age, a
// string per dataset version, all decoded by reflection. Here the answer stays bytes and
// only what the rows need is read; packed-lookup.test.ts checks it against protobuf-es.

/** What an entity lookup needs of a GetOnlineFeaturesResponse. */
export interface PackedAnswer {
  viewVersion: string;
  featureNames: string[];
  /** FieldStatus per entity. */
  statuses: number[];
  /** `entities × features` values, row-major, in an aligned buffer of their own. */
  values: Float64Array;
}

const { len } = WIRE;

/** The values' bytes copied into an aligned buffer (they sit at any offset in the message). */
function float64s(bytes: Uint8Array): Float64Array {
  if (bytes.byteLength % 8 !== 0)
    throw new Error(`packed_values holds ${bytes.byteLength} bytes, not whole float64s`);
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return new Float64Array(copy.buffer);
}

function readPacked(bytes: Uint8Array): PackedAnswer | undefined {
  const answer: PackedAnswer = {
    viewVersion: '',
    featureNames: [],
    statuses: [],
    values: new Float64Array(),
  };
  return readMessage(bytes, answer, (r, t) => {
    if (t === tag(1, len)) answer.viewVersion = r.string();
    else if (t === tag(2, len)) answer.featureNames.push(r.string());
    else if (t === tag(3, len)) {
      const end = r.sub();
      while (r.pos < end) answer.statuses.push(r.int32());
      if (r.pos !== end) throw new NotCanonical();
    } else if (t === tag(8, len)) answer.values = float64s(r.bytes());
    // Event times, ages, dataset versions (and unpacked values, not asked for): skipped unread.
    else if (t === tag(4, len) || t === tag(5, len) || t === tag(6, len) || t === tag(7, len))
      r.pos = r.sub();
    else throw new NotCanonical();
  });
}

/** Reads a packed GetOnlineFeaturesResponse; bytes it does not read directly go through protobuf-es. */
export function decodePackedAnswer(bytes: Uint8Array): PackedAnswer {
  const direct = readPacked(bytes);
  if (direct) return direct;
  const message = fromBinary(GetOnlineFeaturesResponseSchema, bytes);
  return {
    viewVersion: message.viewVersion,
    featureNames: message.featureNames,
    statuses: message.statuses,
    values: float64s(message.packedValues),
  };
}

export type PackedLookup = (
  request: MessageInitShape<typeof GetOnlineFeaturesRequestSchema>,
  timeoutMs: number | undefined,
) => Promise<PackedAnswer>;

const GET_ONLINE_FEATURES = FeatureService.method.getOnlineFeatures;

/**
 * GetOnlineFeatures over its own grpc-js channel, answered as bytes and read with
 * decodePackedAnswer: the kit's client (its channel options, TLS and bearer token) but the
 * response left undecoded. `close` ends the channel.
 */
export function packedLookupClient(
  options: Pick<ClientOptions, 'address' | 'authToken' | 'maxMessageBytes' | 'deadlineMs'>,
): { lookup: PackedLookup; close(): void } {
  const maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  const client = new Client(channelTarget(options.address), channelCredentialsFromEnv(), {
    'grpc.service_config': serviceConfig(FeatureService, { ...options, retry: true }),
    'grpc.max_receive_message_length': maxMessageBytes,
    'grpc.max_send_message_length': maxMessageBytes,
    'grpc.keepalive_time_ms': 30_000,
    'grpc.keepalive_timeout_ms': 10_000,
  });
  const path = methodPath(GET_ONLINE_FEATURES);
  const serialize = (request: object) =>
    Buffer.from(toBinary(RequestSchema, create(RequestSchema, request as Record<string, unknown>)));
  const keepBytes = (bytes: Buffer) => bytes;
  const lookup: PackedLookup = (request, timeoutMs) =>
    new Promise((resolve, reject) => {
      const metadata = new Metadata();
      if (options.authToken) metadata.set('authorization', `Bearer ${options.authToken}`);
      const deadline = Date.now() + (timeoutMs ?? options.deadlineMs ?? 10_000);
      client.makeUnaryRequest(path, serialize, keepBytes, request, metadata, { deadline }, (err, bytes) => {
        if (err) {
          const e = err as ServiceError;
          reject(
            new RpcError(e.code ?? status.UNKNOWN, e.details ?? e.message, e.metadata ?? new Metadata()),
          );
          return;
        }
        try {
          resolve(decodePackedAnswer(bytes as Buffer));
        } catch (error) {
          reject(error);
        }
      });
    });
  return { lookup, close: () => client.close() };
}
