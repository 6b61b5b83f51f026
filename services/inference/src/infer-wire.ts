import {
  type InferTensorContents,
  InferTensorContentsSchema,
  type ModelInferRequest,
  type ModelInferRequest_InferInputTensor,
  ModelInferRequest_InferInputTensorSchema,
  type ModelInferRequest_InferRequestedOutputTensor,
  ModelInferRequest_InferRequestedOutputTensorSchema,
  ModelInferRequestSchema,
} from '@ballast/contracts/inference/grpc_predict_v2_pb.js';
import { fromBinary } from '@bufbuild/protobuf';
import type { OutputData } from './executor.js';
import {
  fieldSize,
  int32Size,
  NotCanonical,
  readMessage,
  tag,
  utf8,
  varintSize,
  WIRE,
  type WireReader,
  WireWriter,
} from './wire.js';

// ModelInfer (Open Inference Protocol v2), typed or raw, read and written directly like
// Predict (predict-wire.ts): names, datatypes, shapes, fp32/int32 contents and raw bytes.
// Parameters, other content types, negative numbers and anything unusual go to protobuf-es.
// Raw input contents stay views of the received bytes (no copy until the batch is assembled).

const { len } = WIRE;

function emptyContents(): InferTensorContents {
  return {
    $typeName: InferTensorContentsSchema.typeName,
    boolContents: [],
    intContents: [],
    int64Contents: [],
    uintContents: [],
    uint64Contents: [],
    fp32Contents: [],
    fp64Contents: [],
    bytesContents: [],
  };
}

function contents(r: WireReader, end: number): InferTensorContents {
  const message = emptyContents();
  while (r.pos < end) {
    const t = r.varint();
    if (t === tag(6, len)) {
      const e = r.sub();
      if ((e - r.pos) % 4 !== 0) throw new NotCanonical();
      for (; r.pos < e; r.pos += 4) message.fp32Contents.push(r.buf.readFloatLE(r.pos));
    } else if (t === tag(2, len)) {
      const e = r.sub();
      while (r.pos < e) message.intContents.push(r.int32());
      if (r.pos !== e) throw new NotCanonical();
    } else throw new NotCanonical();
  }
  if (r.pos !== end) throw new NotCanonical();
  return message;
}

function input(r: WireReader, end: number): ModelInferRequest_InferInputTensor {
  const message: ModelInferRequest_InferInputTensor = {
    $typeName: ModelInferRequest_InferInputTensorSchema.typeName,
    name: '',
    datatype: '',
    shape: [],
    parameters: {},
  };
  while (r.pos < end) {
    const t = r.varint();
    if (t === tag(1, len)) message.name = r.string();
    else if (t === tag(2, len)) message.datatype = r.string();
    else if (t === tag(3, len)) {
      const e = r.sub();
      while (r.pos < e) message.shape.push(BigInt(r.varint()));
      if (r.pos !== e) throw new NotCanonical();
    } else if (t === tag(5, len)) message.contents = contents(r, r.sub());
    else throw new NotCanonical();
  }
  if (r.pos !== end) throw new NotCanonical();
  return message;
}

function requestedOutput(r: WireReader, end: number): ModelInferRequest_InferRequestedOutputTensor {
  const message: ModelInferRequest_InferRequestedOutputTensor = {
    $typeName: ModelInferRequest_InferRequestedOutputTensorSchema.typeName,
    name: '',
    parameters: {},
  };
  while (r.pos < end) {
    if (r.varint() !== tag(1, len)) throw new NotCanonical();
    message.name = r.string();
  }
  if (r.pos !== end) throw new NotCanonical();
  return message;
}

/** The direct decoder alone: the message, or undefined for bytes it does not read (tests use it). */
export function readModelInferRequest(bytes: Uint8Array): ModelInferRequest | undefined {
  const message: ModelInferRequest = {
    $typeName: ModelInferRequestSchema.typeName,
    modelName: '',
    modelVersion: '',
    id: '',
    parameters: {},
    inputs: [],
    outputs: [],
    rawInputContents: [],
  };
  return readMessage(bytes, message, (r, t) => {
    if (t === tag(1, len)) message.modelName = r.string();
    else if (t === tag(2, len)) message.modelVersion = r.string();
    else if (t === tag(3, len)) message.id = r.string();
    else if (t === tag(5, len)) message.inputs.push(input(r, r.sub()));
    else if (t === tag(6, len)) message.outputs.push(requestedOutput(r, r.sub()));
    else if (t === tag(7, len)) message.rawInputContents.push(r.bytes());
    else throw new NotCanonical();
  });
}

/** Decodes a ModelInferRequest as protobuf-es's fromBinary would (see the file comment for what it reads). */
export function decodeModelInferRequest(bytes: Uint8Array): ModelInferRequest {
  return readModelInferRequest(bytes) ?? fromBinary(ModelInferRequestSchema, bytes);
}

export interface InferAnswer {
  modelName: string;
  modelVersion: string;
  id: string;
  /** The outputs answered, in order, each with its OIP datatype. */
  outputs: readonly (OutputData & { datatype: string })[];
  /** Raw: values in raw_output_contents, not in each tensor's contents. */
  raw: boolean;
}

/** Bytes of a packed int32 field's content. */
function intsSize(data: ArrayLike<number>): number {
  let size = 0;
  for (let i = 0; i < data.length; i++) size += int32Size(data[i] as number);
  return size;
}

/**
 * The ModelInferResponse protobuf-es would write for `answer`: typed fp32 contents are the
 * output's float32 bytes as they are (packed floats are little-endian float32s), raw contents
 * likewise; int32 typed contents are varints.
 */
export function encodeModelInferResponse(answer: InferAnswer): Buffer {
  const text = (b: Buffer) => (b.length > 0 ? fieldSize(b.length) : 0);
  const modelName = utf8(answer.modelName);
  const modelVersion = utf8(answer.modelVersion);
  const id = utf8(answer.id);
  const tensors = answer.outputs.map((output) => {
    const name = utf8(output.name);
    const datatype = utf8(output.datatype);
    let shapeSize = 0;
    for (const dim of output.shape) shapeSize += varintSize(dim);
    const ints = output.data instanceof Int32Array;
    const valuesSize = ints ? intsSize(output.data) : output.data.length * 4;
    const contentsSize = answer.raw ? -1 : valuesSize > 0 ? fieldSize(valuesSize) : 0;
    const size =
      text(name) +
      text(datatype) +
      (output.shape.length > 0 ? fieldSize(shapeSize) : 0) +
      (contentsSize >= 0 ? fieldSize(contentsSize) : 0);
    return { output, name, datatype, shapeSize, ints, valuesSize, contentsSize, size };
  });
  let size = text(modelName) + text(modelVersion) + text(id);
  for (const t of tensors) size += fieldSize(t.size);
  if (answer.raw) for (const t of tensors) size += fieldSize(t.output.data.byteLength);

  const w = new WireWriter(size);
  if (modelName.length > 0) w.bytes(tag(1, len), modelName);
  if (modelVersion.length > 0) w.bytes(tag(2, len), modelVersion);
  if (id.length > 0) w.bytes(tag(3, len), id);
  const bytesOf = (data: OutputData['data']) => new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  for (const t of tensors) {
    w.header(tag(5, len), t.size);
    if (t.name.length > 0) w.bytes(tag(1, len), t.name);
    if (t.datatype.length > 0) w.bytes(tag(2, len), t.datatype);
    if (t.output.shape.length > 0) {
      w.header(tag(3, len), t.shapeSize);
      for (const dim of t.output.shape) w.varint(dim);
    }
    if (t.contentsSize < 0) continue;
    w.header(tag(5, len), t.contentsSize);
    if (t.valuesSize === 0) continue;
    if (t.ints) {
      w.header(tag(2, len), t.valuesSize);
      for (const value of t.output.data) w.int32(value);
    } else w.bytes(tag(6, len), bytesOf(t.output.data));
  }
  if (answer.raw) for (const t of tensors) w.bytes(tag(6, len), bytesOf(t.output.data));
  return w.done();
}
