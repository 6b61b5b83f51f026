import {
  type PredictRequest,
  PredictRequestSchema,
  type PredictResponseSchema,
  type Row,
  RowSchema,
  type Values,
  ValuesSchema,
} from '@ballast/contracts/ballast/inference/v1/inference_pb.js';
import { fromBinary, type MessageInitShape } from '@bufbuild/protobuf';
import { type Timestamp, TimestampSchema } from '@bufbuild/protobuf/wkt';
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

// Predict is the serving path: one call per prediction. protobuf-es decodes and encodes it
// by reflection, field by field, and builds every number of every row as a message before
// the handler sees it; here the common encoding is read and written directly. The decoder
// falls back to protobuf-es for anything it does not read (entity lookups, unknown fields,
// unpacked or negative numbers, invalid UTF-8); predict-wire.test.ts checks both directions
// against protobuf-es message for message and byte for byte.

const { varint, fixed64, len } = WIRE;

/** A map key protobuf-es would set on a plain object: "__proto__" is left to it. */
function mapKey(key: string): string {
  if (key === '__proto__') throw new NotCanonical();
  return key;
}

function values(r: WireReader, end: number): Values {
  const message: Values = { $typeName: ValuesSchema.typeName, values: [] };
  while (r.pos < end) {
    if (r.varint() !== tag(1, len)) throw new NotCanonical();
    for (const value of r.doubles()) message.values.push(value);
  }
  if (r.pos !== end) throw new NotCanonical();
  return message;
}

function timestamp(r: WireReader, end: number): Timestamp {
  const message: Timestamp = { $typeName: TimestampSchema.typeName, seconds: 0n, nanos: 0 };
  while (r.pos < end) {
    const t = r.varint();
    if (t === tag(1, varint)) message.seconds = BigInt(r.varint());
    else if (t === tag(2, varint)) message.nanos = r.int32();
    else throw new NotCanonical();
  }
  if (r.pos !== end) throw new NotCanonical();
  return message;
}

/** One map entry: key (1) then value (2), either absent (defaults), nothing else. */
function entry<V>(r: WireReader, end: number, valueTag: number, read: () => V, empty: V): [string, V] {
  let key = '';
  let value = empty;
  while (r.pos < end) {
    const t = r.varint();
    if (t === tag(1, len)) key = r.string();
    else if (t === valueTag) value = read();
    else throw new NotCanonical();
  }
  if (r.pos !== end) throw new NotCanonical();
  return [mapKey(key), value];
}

function row(r: WireReader, end: number): Row {
  const message: Row = {
    $typeName: RowSchema.typeName,
    features: {},
    inputs: {},
    entityKey: '',
    segments: {},
  };
  while (r.pos < end) {
    const t = r.varint();
    if (t === tag(1, len)) {
      const e = r.sub();
      const [key, value] = entry(r, e, tag(2, fixed64), () => r.double(), 0);
      message.features[key] = value;
    } else if (t === tag(2, len)) {
      const e = r.sub();
      const empty: Values = { $typeName: ValuesSchema.typeName, values: [] };
      const [key, value] = entry(r, e, tag(2, len), () => values(r, r.sub()), empty);
      message.inputs[key] = value;
    } else if (t === tag(3, len)) message.entityKey = r.string();
    else if (t === tag(4, len)) {
      const e = r.sub();
      const [key, value] = entry(r, e, tag(2, len), () => r.string(), '');
      message.segments[key] = value;
    } else if (t === tag(5, len)) message.timestamp = timestamp(r, r.sub());
    else throw new NotCanonical();
  }
  if (r.pos !== end) throw new NotCanonical();
  return message;
}

/** The direct decoder alone: the message, or undefined for bytes it does not read (tests use it). */
export function readPredictRequest(bytes: Uint8Array): PredictRequest | undefined {
  const message: PredictRequest = {
    $typeName: PredictRequestSchema.typeName,
    model: '',
    alias: '',
    version: 0,
    rows: [],
    requestId: '',
  };
  return readMessage(bytes, message, (r, t) => {
    if (t === tag(1, len)) message.model = r.string();
    else if (t === tag(2, len)) message.alias = r.string();
    else if (t === tag(3, varint)) message.version = r.int32();
    else if (t === tag(4, len)) message.rows.push(row(r, r.sub()));
    else if (t === tag(6, len)) message.requestId = r.string();
    else throw new NotCanonical();
  });
}

/**
 * Decodes a PredictRequest as protobuf-es's fromBinary would: rows of features, inputs,
 * entity keys, segments and timestamps directly; entity lookups and anything unusual through
 * fromBinary.
 */
export function decodePredictRequest(bytes: Uint8Array): PredictRequest {
  return readPredictRequest(bytes) ?? fromBinary(PredictRequestSchema, bytes);
}

/** What a Predict answers: each output's rows, in the order the model returns them. */
export interface PredictAnswer {
  model: string;
  version: number;
  alias: string;
  backend: string;
  rows: number;
  outputs: readonly OutputData[];
  timings: { queueUs: number; computeUs: number; totalUs: number; batchSize: number };
  requestId: string;
}

/** The same response as a protobuf-es init (PredictStream's answers, and the encoder's tests). */
export function predictResponseInit(answer: PredictAnswer): MessageInitShape<typeof PredictResponseSchema> {
  const predictions = Array.from({ length: answer.rows }, (_, row) => ({
    outputs: Object.fromEntries(
      answer.outputs.map((output) => {
        const size = output.data.length / answer.rows;
        return [output.name, { values: Array.from(output.data.subarray(row * size, (row + 1) * size)) }];
      }),
    ),
  }));
  const { queueUs, computeUs, totalUs, batchSize } = answer.timings;
  return {
    model: answer.model,
    version: answer.version,
    alias: answer.alias,
    backend: answer.backend,
    predictions,
    timings: { queueUs: BigInt(queueUs), computeUs: BigInt(computeUs), totalUs: BigInt(totalUs), batchSize },
    requestId: answer.requestId,
  };
}

/** Bytes of a Prediction's map entry (name -> Values of `count` doubles), without its own header. */
function outputEntrySize(name: Buffer, count: number): number {
  const valuesSize = count > 0 ? fieldSize(count * 8) : 0;
  return fieldSize(name.length) + fieldSize(valuesSize);
}

const int64Size = (value: number) => (value === 0 ? 0 : 1 + varintSize(value));

/**
 * The PredictResponse protobuf-es would write for `answer` (fields in number order, empty
 * ones left out, each row's outputs as one map entry per output), written in one pass into a
 * buffer sized beforehand. Timings are whole non-negative microseconds.
 */
export function encodePredictResponse(answer: PredictAnswer): Buffer {
  const model = utf8(answer.model);
  const alias = utf8(answer.alias);
  const backend = utf8(answer.backend);
  const requestId = utf8(answer.requestId);
  // In the order protobuf-es would see them in the map object: integer-like names first, a
  // repeated name once (its last output), as Object.fromEntries leaves them.
  const outputs = Object.values(Object.fromEntries(answer.outputs.map((o) => [o.name, o])));
  const names = outputs.map((o) => utf8(o.name));
  const widths = outputs.map((o) => o.data.length / answer.rows);
  let predictionSize = 0;
  for (let o = 0; o < names.length; o++)
    predictionSize += fieldSize(outputEntrySize(names[o] as Buffer, widths[o] as number));
  const { queueUs, computeUs, totalUs, batchSize } = answer.timings;
  const timingsSize =
    int64Size(queueUs) +
    int64Size(computeUs) +
    int64Size(totalUs) +
    (batchSize === 0 ? 0 : 1 + int32Size(batchSize));
  const text = (b: Buffer) => (b.length > 0 ? fieldSize(b.length) : 0);
  const size =
    text(model) +
    (answer.version === 0 ? 0 : 1 + int32Size(answer.version)) +
    text(alias) +
    text(backend) +
    answer.rows * fieldSize(predictionSize) +
    fieldSize(timingsSize) +
    text(requestId);

  const w = new WireWriter(size);
  if (model.length > 0) w.bytes(tag(1, len), model);
  if (answer.version !== 0) {
    w.buf[w.pos++] = tag(2, varint);
    w.int32(answer.version);
  }
  if (alias.length > 0) w.bytes(tag(3, len), alias);
  if (backend.length > 0) w.bytes(tag(4, len), backend);
  for (let r = 0; r < answer.rows; r++) {
    w.header(tag(5, len), predictionSize);
    for (let o = 0; o < names.length; o++) {
      const name = names[o] as Buffer;
      const width = widths[o] as number;
      const data = (outputs[o] as OutputData).data;
      w.header(tag(1, len), outputEntrySize(name, width));
      w.bytes(tag(1, len), name);
      w.header(tag(2, len), width > 0 ? fieldSize(width * 8) : 0);
      if (width > 0) {
        w.header(tag(1, len), width * 8);
        for (let i = r * width; i < (r + 1) * width; i++) w.double(data[i] as number);
      }
    }
  }
  w.header(tag(6, len), timingsSize);
  const timing = (field: number, value: number) => {
    if (value === 0) return;
    w.buf[w.pos++] = tag(field, varint);
    w.varint(value);
  };
  timing(1, queueUs);
  timing(2, computeUs);
  timing(3, totalUs);
  if (batchSize !== 0) {
    w.buf[w.pos++] = tag(4, varint);
    w.int32(batchSize);
  }
  if (requestId.length > 0) w.bytes(tag(7, len), requestId);
  return w.done();
}
