// Adversarial protobuf requests, generated from a message descriptor by fast-check and
// written at the wire level, so they can be anything a hostile or broken client sends:
// wrong wire types, invalid UTF-8 in strings, extreme and non-canonical numbers, huge
// repeated fields, nesting deeper than any schema, truncated messages and plain noise.
import { type DescField, type DescMessage, ScalarType } from '@bufbuild/protobuf';
import { BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import fc from 'fast-check';

type Piece = (w: BinaryWriter) => void;

const INT_EDGES = [0, 1, -1, 2 ** 31 - 1, -(2 ** 31), 2 ** 32 - 1, 2 ** 53 - 1, -(2 ** 53 - 1)];
const BIG_EDGES = [0n, -1n, 2n ** 63n - 1n, -(2n ** 63n), 2n ** 64n - 1n, 2n ** 53n + 1n];
const DOUBLE_EDGES = [
  0,
  -0,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  Number.NEGATIVE_INFINITY,
  Number.MAX_VALUE,
  -Number.MAX_VALUE,
  Number.MIN_VALUE,
  1e300,
];
const NASTY_STRINGS = [
  '',
  'x'.repeat(70_000),
  '../../etc/passwd',
  '/etc/passwd',
  '__proto__',
  'constructor',
  '\u0000',
  '\uD800',
  "'; DROP TABLE models; --",
  '%s%s%n',
  '💥'.repeat(2_000),
  'a/../../b',
  'C:\\windows\\system32',
  'production',
  'sha256:',
];
const INVALID_UTF8 = [
  [0xff],
  [0xc3, 0x28],
  [0xed, 0xa0, 0x80],
  [0xf8, 0x88, 0x80, 0x80, 0x80],
  [0xe2, 0x82],
  [0x61, 0xc0, 0xaf],
];

const varint =
  (v: bigint): Piece =>
  (w) =>
    w.uint64(BigInt.asUintN(64, v));
const raw =
  (bytes: Uint8Array): Piece =>
  (w) =>
    w.raw(bytes);

const bigArb = fc.oneof(fc.constantFrom(...BIG_EDGES), fc.bigInt({ min: -(2n ** 63n), max: 2n ** 64n - 1n }));
const intArb = fc.oneof(fc.constantFrom(...INT_EDGES), fc.integer());

function f64(x: number): Uint8Array {
  const b = Buffer.alloc(8);
  b.writeDoubleLE(x);
  return b;
}
function f32(x: number): Uint8Array {
  const b = Buffer.alloc(4);
  b.writeFloatLE(x);
  return b;
}
function fixed(bytes: number, v: bigint): Uint8Array {
  const b = Buffer.alloc(bytes);
  if (bytes === 8) b.writeBigUInt64LE(BigInt.asUintN(64, v));
  else b.writeUInt32LE(Number(BigInt.asUintN(32, v)));
  return b;
}

/** The payload (no tag) of one scalar value, in the scalar's own wire type. */
function scalarPayload(t: ScalarType): fc.Arbitrary<{ wire: WireType; piece: Piece }> {
  switch (t) {
    case ScalarType.DOUBLE:
      return fc
        .oneof(fc.constantFrom(...DOUBLE_EDGES), fc.double())
        .map((x) => ({ wire: WireType.Bit64, piece: raw(f64(x)) }));
    case ScalarType.FLOAT:
      return fc
        .oneof(fc.constantFrom(...DOUBLE_EDGES), fc.double())
        .map((x) => ({ wire: WireType.Bit32, piece: raw(f32(x)) }));
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      return bigArb.map((v) => ({ wire: WireType.Bit64, piece: raw(fixed(8, v)) }));
    case ScalarType.FIXED32:
    case ScalarType.SFIXED32:
      return intArb.map((v) => ({ wire: WireType.Bit32, piece: raw(fixed(4, BigInt(v))) }));
    case ScalarType.STRING:
      return fc
        .oneof(
          { weight: 3, arbitrary: fc.string({ maxLength: 40, unit: 'grapheme' }).map((s) => Buffer.from(s)) },
          { weight: 2, arbitrary: fc.constantFrom(...NASTY_STRINGS).map((s) => Buffer.from(s)) },
          { weight: 2, arbitrary: fc.constantFrom(...INVALID_UTF8).map((b) => Uint8Array.from(b)) },
        )
        .map((bytes) => ({ wire: WireType.LengthDelimited, piece: (w: BinaryWriter) => w.bytes(bytes) }));
    case ScalarType.BYTES:
      return fc
        .uint8Array({ maxLength: 300 })
        .map((bytes) => ({ wire: WireType.LengthDelimited, piece: (w: BinaryWriter) => w.bytes(bytes) }));
    default:
      // every varint type (int32/64, uint32/64, sint32/64, bool, enum): any 64-bit pattern
      return fc.oneof(bigArb, intArb.map(BigInt)).map((v) => ({ wire: WireType.Varint, piece: varint(v) }));
  }
}

/** Any wire type with a payload that fits it: the "wrong type" attack when it differs from the field's. */
const anyWire: fc.Arbitrary<{ wire: WireType; piece: Piece }> = fc.oneof(
  scalarPayload(ScalarType.UINT64),
  scalarPayload(ScalarType.DOUBLE),
  scalarPayload(ScalarType.FIXED32),
  scalarPayload(ScalarType.BYTES),
);

const HUGE_COUNT = 300_000;
/** ~300k elements of a repeated field (packed varints: about 300 KB on the wire). */
const hugePacked = (no: number): Piece => {
  const payload = new Uint8Array(HUGE_COUNT).fill(1);
  return (w) => w.tag(no, WireType.LengthDelimited).bytes(payload);
};

const memo = new Map<string, fc.Arbitrary<Uint8Array>>();

/** A message of `desc`'s type, adversarial field by field, `depth` levels of submessages deep. */
export function messageBytes(desc: DescMessage, depth = 3): fc.Arbitrary<Uint8Array> {
  const key = `${desc.typeName}@${depth}`;
  const cached = memo.get(key);
  if (cached) return cached;
  const fieldArbs = desc.fields.map((field) => fieldPiece(field, depth));
  const unknown = fc.tuple(fc.integer({ min: 1, max: 536_870_911 }), anyWire).map(
    ([no, { wire, piece }]): Piece =>
      (w) => {
        w.tag(no, wire);
        piece(w);
      },
  );
  const arb = fc
    .array(
      fieldArbs.length > 0
        ? fc.oneof({ weight: 6, arbitrary: fc.oneof(...fieldArbs) }, { weight: 1, arbitrary: unknown })
        : unknown,
      {
        maxLength: Math.max(4, desc.fields.length + 2),
      },
    )
    .map((pieces) => {
      const w = new BinaryWriter();
      for (const piece of pieces) piece(w);
      return w.finish();
    });
  memo.set(key, arb);
  return arb;
}

function elementPayload(field: DescField, depth: number): fc.Arbitrary<{ wire: WireType; piece: Piece }> {
  const message =
    field.fieldKind === 'message'
      ? field.message
      : field.fieldKind === 'list' && field.listKind === 'message'
        ? field.message
        : undefined;
  if (message) {
    if (depth <= 0)
      return fc.constant({
        wire: WireType.LengthDelimited,
        piece: (w: BinaryWriter) => w.bytes(new Uint8Array()),
      });
    return messageBytes(message, depth - 1).map((bytes) => ({
      wire: WireType.LengthDelimited,
      piece: (w: BinaryWriter) => w.bytes(bytes),
    }));
  }
  if (field.fieldKind === 'map') {
    const key = scalarPayload(field.mapKey);
    const value =
      field.mapKind === 'message'
        ? depth > 0
          ? messageBytes(field.message, depth - 1).map((bytes) => ({
              wire: WireType.LengthDelimited,
              piece: (w: BinaryWriter) => w.bytes(bytes),
            }))
          : fc.constant({
              wire: WireType.LengthDelimited,
              piece: (w: BinaryWriter) => w.bytes(new Uint8Array()),
            })
        : scalarPayload(field.mapKind === 'enum' ? ScalarType.INT32 : field.scalar);
    return fc.tuple(key, value).map(([k, v]) => {
      const entry = new BinaryWriter();
      entry.tag(1, k.wire);
      k.piece(entry);
      entry.tag(2, v.wire);
      v.piece(entry);
      const bytes = entry.finish();
      return { wire: WireType.LengthDelimited, piece: (w: BinaryWriter) => w.bytes(bytes) };
    });
  }
  const scalar =
    field.fieldKind === 'scalar'
      ? field.scalar
      : field.fieldKind === 'list' && field.listKind === 'scalar'
        ? field.scalar
        : ScalarType.INT32;
  return scalarPayload(scalar);
}

function fieldPiece(field: DescField, depth: number): fc.Arbitrary<Piece> {
  const no = field.number;
  const right = elementPayload(field, depth);
  const once = right.map(
    ({ wire, piece }): Piece =>
      (w) => {
        w.tag(no, wire);
        piece(w);
      },
  );
  const wrongType = anyWire.map(
    ({ wire, piece }): Piece =>
      (w) => {
        w.tag(no, wire);
        piece(w);
      },
  );
  const options: Array<{ weight: number; arbitrary: fc.Arbitrary<Piece> }> = [
    { weight: 6, arbitrary: once },
    { weight: 2, arbitrary: wrongType },
  ];
  if (field.fieldKind === 'list' || field.fieldKind === 'map') {
    options.push({
      weight: 3,
      arbitrary: fc.array(right, { minLength: 2, maxLength: 40 }).map(
        (items): Piece =>
          (w) => {
            for (const { wire, piece } of items) {
              w.tag(no, wire);
              piece(w);
            }
          },
      ),
    });
    if (
      field.fieldKind === 'list' &&
      field.listKind !== 'message' &&
      field.scalar !== ScalarType.STRING &&
      field.scalar !== ScalarType.BYTES
    ) {
      options.push({ weight: 1, arbitrary: fc.constant(hugePacked(no)) });
    }
    if (field.fieldKind === 'list' && (field.listKind === 'message' || field.scalar === ScalarType.STRING)) {
      // 100k empty elements: cheap on the wire, expensive for a careless handler
      options.push({
        weight: 1,
        arbitrary: fc.constant((w: BinaryWriter) => {
          for (let i = 0; i < 100_000; i++) w.tag(no, WireType.LengthDelimited).bytes(new Uint8Array());
        }),
      });
    }
  }
  return fc.oneof(...options);
}

/** `levels` length-delimited field-1 wrappers around nothing: nesting no schema allows. */
export function deepNesting(levels: number, fieldNo = 1): Uint8Array {
  let inner = new Uint8Array();
  for (let i = 0; i < levels; i++) {
    const w = new BinaryWriter();
    w.tag(fieldNo, WireType.LengthDelimited).bytes(inner);
    inner = w.finish();
  }
  return inner;
}

/** `levels` nested (deprecated) groups on an unknown field: a parser that recurses to skip them pays per level. */
export function deepGroups(levels: number): Uint8Array {
  const start = new BinaryWriter().tag(7777, WireType.StartGroup).finish();
  const end = new BinaryWriter().tag(7777, WireType.EndGroup).finish();
  return Buffer.concat([Buffer.concat(Array(levels).fill(start)), Buffer.concat(Array(levels).fill(end))]);
}

/** Every kind of bad request for a message type, weighted toward schema-shaped ones. */
export function adversarialRequest(desc: DescMessage): fc.Arbitrary<Uint8Array> {
  const shaped = messageBytes(desc);
  return fc.oneof(
    { weight: 8, arbitrary: shaped },
    { weight: 2, arbitrary: fc.uint8Array({ maxLength: 2_000 }) },
    {
      weight: 1,
      arbitrary: fc
        .tuple(shaped, fc.nat())
        .map(([bytes, cut]) => bytes.subarray(0, bytes.length > 0 ? cut % bytes.length : 0)),
    },
    {
      weight: 1,
      arbitrary: fc
        .integer({ min: 50, max: 3_000 })
        .map((n) => deepNesting(n, desc.fields.find((f) => f.fieldKind === 'message')?.number ?? 1)),
    },
    { weight: 1, arbitrary: fc.integer({ min: 1_000, max: 200_000 }).map((n) => deepGroups(n)) },
  );
}
