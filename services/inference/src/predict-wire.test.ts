import {
  PredictRequestSchema,
  PredictResponseSchema,
} from '@ballast/contracts/ballast/inference/v1/inference_pb.js';
import { create, fromBinary, type MessageInitShape, toBinary } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import {
  decodePredictRequest,
  encodePredictResponse,
  type PredictAnswer,
  predictResponseInit,
  readPredictRequest,
} from './predict-wire.js';

const bytesOf = (init: MessageInitShape<typeof PredictRequestSchema>) =>
  toBinary(PredictRequestSchema, create(PredictRequestSchema, init));

/** The decoder's message must be protobuf-es's, field for field; `direct`: without falling back. */
function decodesLikeProtobufEs(bytes: Uint8Array, direct = true) {
  const expected = fromBinary(PredictRequestSchema, bytes);
  expect(decodePredictRequest(bytes)).toEqual(expected);
  if (direct) expect(readPredictRequest(bytes)).toEqual(expected);
  else expect(readPredictRequest(bytes)).toBeUndefined();
}

describe('decodePredictRequest', () => {
  it('decodes rows of inputs, features, entity keys, segments and timestamps as protobuf-es does', () => {
    decodesLikeProtobufEs(
      bytesOf({ model: 'bench', rows: [{ inputs: { features: { values: [0, 0.5, -1e300, 3] } } }] }),
    );
    decodesLikeProtobufEs(
      bytesOf({
        model: 'démand',
        alias: 'candidate',
        version: 7,
        requestId: 'r-1',
        rows: [
          {
            features: { price: 1.5, qty: -2, '': 0 },
            inputs: { a: { values: [] }, b: { values: [Number.NaN, Number.POSITIVE_INFINITY] } },
            entityKey: 'sku=42',
            segments: { region: 'north', '': '' },
            timestamp: { seconds: 1_700_000_000n, nanos: 5 },
          },
          {},
        ],
      }),
    );
    decodesLikeProtobufEs(new Uint8Array());
  });

  it('hands anything else to protobuf-es: entity lookups, negative numbers, unknown fields, bad text', () => {
    const lookup = bytesOf({
      model: 'm',
      entities: { featureView: 'v', entities: [{ keys: { sku: '1' } }] },
    });
    decodesLikeProtobufEs(lookup, false);
    expect(decodePredictRequest(lookup).entities?.entities[0]?.keys).toEqual({ sku: '1' });
    decodesLikeProtobufEs(bytesOf({ model: 'm', version: -1 }), false);
    decodesLikeProtobufEs(bytesOf({ model: 'm', rows: [{ timestamp: { seconds: -5n } }] }), false);
    const proto = bytesOf({ model: 'm', rows: [{ features: JSON.parse('{"__proto__": 1}') }] });
    decodesLikeProtobufEs(proto, false);
    // Field 99 (varint): unknown to this schema.
    const unknown = new Uint8Array([...bytesOf({ model: 'm' }), 0x98, 0x06, 0x01]);
    decodesLikeProtobufEs(unknown, false);
    // Unpacked doubles (wire type 1 per value) are valid protobuf too.
    const unpacked = new Uint8Array([
      0x22,
      0x0f,
      0x12,
      0x0d,
      0x0a,
      0x01,
      0x78,
      0x12,
      0x08,
      0x09,
      ...new Uint8Array(new Float64Array([2.5]).buffer),
    ]);
    expect(decodePredictRequest(unpacked).rows[0]?.inputs.x?.values).toEqual([2.5]);
    decodesLikeProtobufEs(unpacked, false);
    // Invalid UTF-8 in a string: refused by protobuf-es, so refused here too.
    const bad = new Uint8Array([0x0a, 0x02, 0xc3, 0x28]);
    expect(() => decodePredictRequest(bad)).toThrow();
    // Truncated: a row claiming more bytes than there are.
    expect(() => decodePredictRequest(new Uint8Array([0x22, 0x09, 0x1a]))).toThrow();
  });
});

const answer = (overrides: Partial<PredictAnswer> = {}): PredictAnswer => ({
  model: 'bench',
  version: 3,
  alias: 'production',
  backend: 'wasm',
  rows: 2,
  outputs: [
    { name: 'prediction', dtype: 'float32', shape: [2, 1], data: Float32Array.from([0.123456, -7]) },
    { name: 'class', dtype: 'int32', shape: [2, 2], data: Int32Array.from([1, -2, 3, 2 ** 31 - 1]) },
  ],
  timings: { queueUs: 120, computeUs: 3_000_000_000, totalUs: 0, batchSize: 64 },
  requestId: 'b0a1-ü',
  ...overrides,
});

function encodesLikeProtobufEs(a: PredictAnswer) {
  const expected = toBinary(PredictResponseSchema, create(PredictResponseSchema, predictResponseInit(a)));
  expect(Buffer.from(encodePredictResponse(a)).toString('hex')).toBe(Buffer.from(expected).toString('hex'));
}

describe('encodePredictResponse', () => {
  it('writes the bytes protobuf-es writes for the same response', () => {
    encodesLikeProtobufEs(answer());
    encodesLikeProtobufEs(answer({ model: '', alias: '', backend: '', requestId: '', version: 0 }));
    encodesLikeProtobufEs(answer({ timings: { queueUs: 0, computeUs: 0, totalUs: 0, batchSize: 0 } }));
    encodesLikeProtobufEs(
      answer({
        rows: 1,
        outputs: [{ name: 'empty', dtype: 'float32', shape: [1, 0], data: new Float32Array() }],
      }),
    );
    const wide = Float32Array.from({ length: 300 }, (_, i) => i / 3);
    encodesLikeProtobufEs(
      answer({ rows: 3, outputs: [{ name: 'y', dtype: 'float32', shape: [3, 100], data: wide }] }),
    );
  });

  it('orders outputs as the map object would: integer-like names first, a repeated name once', () => {
    const y = { dtype: 'float32', shape: [2, 1], data: Float32Array.from([1, 2]) };
    encodesLikeProtobufEs(
      answer({
        outputs: [
          { name: 'b', ...y },
          { name: '1', ...y },
          { name: 'b', ...y, data: Float32Array.from([3, 4]) },
        ],
      }),
    );
  });
});
