import {
  ModelInferRequestSchema,
  ModelInferResponseSchema,
} from '@ballast/contracts/inference/grpc_predict_v2_pb.js';
import { create, fromBinary, type MessageInitShape, toBinary } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import {
  decodeModelInferRequest,
  encodeModelInferResponse,
  type InferAnswer,
  readModelInferRequest,
} from './infer-wire.js';
import { answeredOutputs, inferResponseInit } from './oip.js';

const bytesOf = (init: MessageInitShape<typeof ModelInferRequestSchema>) =>
  toBinary(ModelInferRequestSchema, create(ModelInferRequestSchema, init));

function decodesLikeProtobufEs(bytes: Uint8Array, direct = true) {
  const expected = fromBinary(ModelInferRequestSchema, bytes);
  expect(decodeModelInferRequest(bytes)).toEqual(expected);
  if (direct) expect(readModelInferRequest(bytes)).toEqual(expected);
  else expect(readModelInferRequest(bytes)).toBeUndefined();
}

const raw = new Uint8Array(new Float32Array([0.5, -1, 3.25, 1e30]).buffer);

describe('decodeModelInferRequest', () => {
  it('decodes typed (fp32, int32) and raw requests as protobuf-es does', () => {
    decodesLikeProtobufEs(
      bytesOf({
        modelName: 'bench',
        modelVersion: '2',
        id: 'req-ü',
        inputs: [
          {
            name: 'features',
            datatype: 'FP32',
            shape: [2n, 2n],
            contents: { fp32Contents: [0.5, -1, 3.25, 1e30] },
          },
          { name: 'ids', datatype: 'INT32', shape: [2n, 1n], contents: { intContents: [7, 2 ** 31 - 1] } },
          { name: 'nothing', datatype: 'FP32', shape: [], contents: {} },
        ],
        outputs: [{ name: 'prediction' }, {}],
      }),
    );
    const rawBytes = bytesOf({
      modelName: 'bench',
      inputs: [{ name: 'features', datatype: 'FP32', shape: [1n, 4n] }],
      rawInputContents: [raw, new Uint8Array()],
    });
    decodesLikeProtobufEs(rawBytes);
    // Raw contents are views of the received bytes, not copies.
    expect(readModelInferRequest(rawBytes)?.rawInputContents[0]?.buffer).toBe(rawBytes.buffer);
  });

  it('hands parameters, other content types, negative values and unknown fields to protobuf-es', () => {
    decodesLikeProtobufEs(
      bytesOf({
        modelName: 'm',
        parameters: { priority: { parameterChoice: { case: 'int64Param', value: 1n } } },
      }),
      false,
    );
    decodesLikeProtobufEs(
      bytesOf({ modelName: 'm', inputs: [{ name: 'x', contents: { fp64Contents: [1.5] } }] }),
      false,
    );
    decodesLikeProtobufEs(
      bytesOf({ modelName: 'm', inputs: [{ name: 'x', contents: { intContents: [-3] } }] }),
      false,
    );
    decodesLikeProtobufEs(bytesOf({ modelName: 'm', inputs: [{ name: 'x', shape: [-1n, 4n] }] }), false);
    decodesLikeProtobufEs(new Uint8Array([...bytesOf({ modelName: 'm' }), 0x98, 0x06, 0x01]), false);
    expect(() => decodeModelInferRequest(new Uint8Array([0x2a, 0x09, 0x0a]))).toThrow();
  });
});

const outputs = [
  { name: 'prediction', dtype: 'float32', shape: [2, 2], data: Float32Array.from([0.123456, -7, 1e-40, 3]) },
  { name: 'class', dtype: 'int32', shape: [2, 1], data: Int32Array.from([-2, 2 ** 31 - 1]) },
  { name: 'none', dtype: 'float32', shape: [0, 3], data: new Float32Array() },
];

/** The encoder's bytes against protobuf-es's for the response the stream path (oip.ts) builds. */
function encodesLikeProtobufEs(
  request: MessageInitShape<typeof ModelInferRequestSchema>,
  names: Omit<InferAnswer, 'outputs' | 'raw'>,
) {
  const message = create(ModelInferRequestSchema, request);
  const answer = {
    ...names,
    outputs: answeredOutputs(message, outputs),
    raw: message.rawInputContents.length > 0,
  };
  const expected = toBinary(
    ModelInferResponseSchema,
    create(ModelInferResponseSchema, inferResponseInit(answer)),
  );
  expect(Buffer.from(encodeModelInferResponse(answer)).toString('hex')).toBe(
    Buffer.from(expected).toString('hex'),
  );
}

describe('encodeModelInferResponse', () => {
  it('writes the bytes protobuf-es writes, typed and raw, for all outputs or the ones requested', () => {
    encodesLikeProtobufEs({ modelName: 'bench' }, { modelName: 'bench', modelVersion: '3', id: 'r-1' });
    encodesLikeProtobufEs({ rawInputContents: [raw] }, { modelName: 'bench', modelVersion: '3', id: '' });
    encodesLikeProtobufEs({ outputs: [{ name: 'class' }] }, { modelName: '', modelVersion: '', id: 'ü' });
    encodesLikeProtobufEs(
      { outputs: [{ name: 'prediction' }], rawInputContents: [raw] },
      { modelName: 'x', modelVersion: '10', id: 'y' },
    );
  });
});
