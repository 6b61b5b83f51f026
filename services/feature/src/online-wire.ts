import { isUtf8 } from 'node:buffer';
import {
  type EntityKey,
  EntityKeySchema,
  FieldStatus,
  type GetOnlineFeaturesRequest,
  GetOnlineFeaturesRequestSchema,
} from '@ballast/contracts/ballast/feature/v1/feature_pb.js';
import { fromBinary } from '@bufbuild/protobuf';
import { ONLINE_VECTOR_FORMAT } from './online.js';
import { entityKey } from './transforms.js';

// GetOnlineFeatures is the serving path and answers up to thousands of entities per call.
// Built as protobuf-es messages, its cost grows with every entity three times over: a BigInt
// per timestamp, a string per dataset version, a number per value decoded from Redis and
// encoded again, then reflective encoding of the lot. The stored vectors already hold the
// values as little-endian float64s, which is the wire form of both `values` (packed double)
// and `packed_values`; so the response is written here straight from the Redis buffers.
// The request side is the mirror: a direct decoder for the canonical encoding that hands
// anything else to protobuf-es. online-wire.test.ts checks both against protobuf-es byte
// for byte and message for message.

const NAN_LE = Buffer.from([0, 0, 0, 0, 0, 0, 0xf8, 0x7f]);

// Varints of whole numbers up to 2^53, with integer operations on 32-bit halves: floating
// point division and modulo per byte cost more than the rest of the encoder.
function varintSize(value: number): number {
  if (value < 128) return 1;
  if (value < 16_384) return 2;
  if (value < 2_097_152) return 3;
  if (value < 268_435_456) return 4;
  if (value < 34_359_738_368) return 5;
  if (value < 4_398_046_511_104) return 6;
  if (value < 562_949_953_421_312) return 7;
  return 8;
}

/** Wire size of an int64 varint; negative values take ten bytes (two's complement). */
function int64Size(value: number): number {
  return value < 0 ? 10 : varintSize(value);
}

class Writer {
  pos = 0;
  constructor(readonly buf: Buffer) {}

  varint(value: number): void {
    const buf = this.buf;
    let pos = this.pos;
    let lo = value >>> 0;
    let hi = (value - lo) / 4_294_967_296;
    while (hi !== 0 || lo > 127) {
      buf[pos++] = (lo & 127) | 128;
      lo = ((lo >>> 7) | (hi << 25)) >>> 0;
      hi >>>= 7;
    }
    buf[pos++] = lo;
    this.pos = pos;
  }

  int64(value: number): void {
    if (value >= 0) {
      this.varint(value);
      return;
    }
    let v = BigInt.asUintN(64, BigInt(value));
    for (let i = 0; i < 9; i++) {
      this.buf[this.pos++] = Number(v & 127n) | 128;
      v >>= 7n;
    }
    this.buf[this.pos++] = Number(v);
  }

  bytes(tag: number, source: Uint8Array, start = 0, end = source.length): void {
    this.buf[this.pos++] = tag;
    this.varint(end - start);
    this.buf.set(source.subarray(start, end), this.pos);
    this.pos += end - start;
  }
}

const TAG = {
  viewVersion: (1 << 3) | 2,
  featureNames: (2 << 3) | 2,
  statuses: (3 << 3) | 2,
  eventTimes: (4 << 3) | 2,
  ages: (5 << 3) | 2,
  values: (6 << 3) | 2,
  datasetVersions: (7 << 3) | 2,
  packedValues: (8 << 3) | 2,
} as const;

export interface OnlineResponseInput {
  viewVersion: string;
  featureNames: readonly string[];
  /** Per requested entity, its packed vector from the online store (online.ts) or null. */
  vectors: readonly (Buffer | null)[];
  /** Vectors older than this (milliseconds) are answered OUTSIDE_MAX_AGE. */
  maxAgeMs: number | undefined;
  /** Unix milliseconds the ages are measured from. */
  now: number;
  /** Values as `packed_values` bytes rather than the repeated double `values`. */
  packed: boolean;
}

/**
 * The GetOnlineFeaturesResponse for these vectors, in the bytes protobuf-es would write for
 * the same message: entity i's status, event time, age, dataset version and values, NaN for
 * every value of an entity not found and for features an older vector lacks.
 */
export function encodeOnlineResponse(input: OnlineResponseInput): Buffer {
  const { vectors, featureNames, maxAgeMs, now } = input;
  const n = vectors.length;
  const width = featureNames.length;
  // First pass: what each entity answers and how many bytes it takes. Statuses are enum
  // values below 128, one byte each.
  const statuses = new Uint8Array(n);
  const times = new Float64Array(n);
  const ages = new Float64Array(n);
  let timesLen = 0;
  let agesLen = 0;
  let versionsLen = 0;
  for (let i = 0; i < n; i++) {
    const vector = vectors[i];
    if (!vector) {
      statuses[i] = FieldStatus.NOT_FOUND;
      timesLen += 1;
      agesLen += 1;
      versionsLen += 2;
      continue;
    }
    if (vector[0] !== ONLINE_VECTOR_FORMAT) throw new Error(`unknown online vector format ${vector[0]}`);
    const versionLen = vector[1] as number;
    const eventTime = vector.readDoubleLE(2 + versionLen);
    if (!Number.isSafeInteger(eventTime)) {
      throw new Error(`online vector event time ${eventTime} is not a whole millisecond`);
    }
    const age = now - eventTime;
    statuses[i] =
      maxAgeMs !== undefined && age > maxAgeMs ? FieldStatus.OUTSIDE_MAX_AGE : FieldStatus.PRESENT;
    times[i] = eventTime;
    ages[i] = Math.max(0, age);
    timesLen += int64Size(eventTime);
    agesLen += int64Size(ages[i] as number);
    versionsLen += 1 + varintSize(versionLen) + versionLen;
  }

  const names = featureNames.map((name) => Buffer.from(name, 'utf8'));
  const viewVersion = Buffer.from(input.viewVersion, 'utf8');
  const valuesLen = n * width * 8;
  const field = (len: number) => (len > 0 ? 1 + varintSize(len) + len : 0);
  let size = field(viewVersion.length);
  for (const name of names) size += 1 + varintSize(name.length) + name.length;
  size += field(n) + field(timesLen) + field(agesLen) + field(valuesLen) + versionsLen;

  const w = new Writer(Buffer.allocUnsafe(size));
  const buf = w.buf;
  if (viewVersion.length > 0) w.bytes(TAG.viewVersion, viewVersion);
  for (const name of names) w.bytes(TAG.featureNames, name);
  if (n > 0) {
    buf[w.pos++] = TAG.statuses;
    w.varint(n);
    buf.set(statuses, w.pos);
    w.pos += n;
    buf[w.pos++] = TAG.eventTimes;
    w.varint(timesLen);
    for (let i = 0; i < n; i++) w.int64(times[i] as number);
    buf[w.pos++] = TAG.ages;
    w.varint(agesLen);
    for (let i = 0; i < n; i++) w.int64(ages[i] as number);
  }
  const writeValues = () => {
    let pos = w.pos;
    for (let i = 0; i < n; i++) {
      const vector = vectors[i];
      let filled = 0;
      if (vector) {
        const start = 10 + (vector[1] as number);
        filled = Math.min(width, (vector.length - start) >> 3);
        pos += vector.copy(buf, pos, start, start + 8 * filled);
      }
      for (let j = filled; j < width; j++) pos += NAN_LE.copy(buf, pos);
    }
    w.pos = pos;
  };
  if (!input.packed && valuesLen > 0) {
    buf[w.pos++] = TAG.values;
    w.varint(valuesLen);
    writeValues();
  }
  for (let i = 0; i < n; i++) {
    const vector = vectors[i];
    buf[w.pos++] = TAG.datasetVersions;
    if (!vector) {
      buf[w.pos++] = 0;
      continue;
    }
    const versionLen = vector[1] as number;
    w.varint(versionLen);
    w.pos += vector.copy(buf, w.pos, 2, 2 + versionLen);
  }
  if (input.packed && valuesLen > 0) {
    buf[w.pos++] = TAG.packedValues;
    w.varint(valuesLen);
    writeValues();
  }
  if (w.pos !== size) throw new Error(`online response: wrote ${w.pos} bytes of ${size}`);
  return buf;
}

/** Thrown inside the fast decoder when the bytes are not the canonical encoding it reads. */
class NotCanonical extends Error {}

class Reader {
  pos = 0;
  readonly buf: Buffer;
  constructor(
    bytes: Uint8Array,
    readonly end: number,
  ) {
    this.buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  varint(): number {
    let result = 0;
    let shift = 1;
    for (let i = 0; i < 8; i++) {
      if (this.pos >= this.end) throw new NotCanonical();
      const byte = this.buf[this.pos++] as number;
      result += (byte & 127) * shift;
      if (byte < 128) return result;
      shift *= 128;
    }
    throw new NotCanonical();
  }

  string(): string {
    const len = this.varint();
    const start = this.pos;
    const end = start + len;
    if (end > this.end) throw new NotCanonical();
    this.pos = end;
    const buf = this.buf;
    let ascii = true;
    for (let i = start; i < end; i++) {
      if ((buf[i] as number) >= 128) {
        ascii = false;
        break;
      }
    }
    if (ascii) return buf.toString('latin1', start, end);
    if (!isUtf8(buf.subarray(start, end))) throw new NotCanonical();
    return buf.toString('utf8', start, end);
  }
}

// Serving traffic asks for the same entities over and over. Each distinct encoding of an
// EntityKey is decoded once and kept (frozen: requests share it), with its canonical key
// string beside it, so a repeat costs one byte-string slice and one lookup instead of a
// message, an array, its strings and a JSON.stringify. Bounded: emptied when full.
const MEMO_LIMIT = 100_000;
const entityMemo = new Map<string, EntityKey>();
const canonicalKeys = new WeakMap<EntityKey, string>();

/** The canonical key of a requested entity (transforms.ts entityKey), remembered per decoded message. */
export function requestedEntityKey(entity: EntityKey): string {
  return canonicalKeys.get(entity) ?? entityKey(entity.values);
}

function entityKeyMessage(r: Reader, end: number): EntityKey {
  const wire = r.buf.toString('latin1', r.pos, end);
  const known = entityMemo.get(wire);
  if (known !== undefined) {
    r.pos = end;
    return known;
  }
  const values: string[] = [];
  const inner = new Reader(r.buf, end);
  inner.pos = r.pos;
  while (inner.pos < end) {
    if (inner.varint() !== ((1 << 3) | 2)) throw new NotCanonical();
    values.push(inner.string());
  }
  r.pos = end;
  const message: EntityKey = Object.freeze({
    $typeName: EntityKeySchema.typeName,
    values: Object.freeze(values) as string[],
  });
  if (entityMemo.size >= MEMO_LIMIT) entityMemo.clear();
  entityMemo.set(wire, message);
  canonicalKeys.set(message, entityKey(values));
  return message;
}

/**
 * Decodes a GetOnlineFeaturesRequest as protobuf-es's fromBinary would. The common encoding
 * (known fields, each with its own wire type, valid UTF-8) is read directly; anything else
 * (unknown fields, invalid text, truncation) goes to fromBinary, which decodes or refuses it
 * exactly as before.
 */
export function decodeOnlineRequest(bytes: Uint8Array): GetOnlineFeaturesRequest {
  try {
    const r = new Reader(bytes, bytes.length);
    const message: GetOnlineFeaturesRequest = {
      $typeName: GetOnlineFeaturesRequestSchema.typeName,
      view: '',
      viewVersion: '',
      entities: [],
      packed: false,
    };
    while (r.pos < r.end) {
      const tag = r.varint();
      if (tag === ((1 << 3) | 2)) message.view = r.string();
      else if (tag === ((2 << 3) | 2)) message.viewVersion = r.string();
      else if (tag === ((3 << 3) | 2)) {
        const len = r.varint();
        if (r.pos + len > r.end) throw new NotCanonical();
        message.entities.push(entityKeyMessage(r, r.pos + len));
      } else if (tag === ((4 << 3) | 0)) message.packed = r.varint() !== 0;
      else throw new NotCanonical();
    }
    return message;
  } catch (err) {
    if (!(err instanceof NotCanonical)) throw err;
    return fromBinary(GetOnlineFeaturesRequestSchema, bytes);
  }
}
