import {
  FieldStatus,
  GetOnlineFeaturesRequestSchema,
  GetOnlineFeaturesResponseSchema,
} from '@ballast/contracts/ballast/feature/v1/feature_pb.js';
import { seededRandom } from '@ballast/sampling';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import { packVector } from './online.js';
import {
  decodeOnlineRequest,
  encodeOnlineResponse,
  type OnlineResponseInput,
  requestedEntityKey,
} from './online-wire.js';
import { entityKey } from './transforms.js';

// A seeded generator, so a failure names a case that can be replayed.
function rng(seed: number) {
  const next = seededRandom(seed);
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)] as T;
  return { next, int, pick };
}

const TEXTS = ['', 'v1', 'a'.repeat(64), 'größe', '倉庫-7', '😀', 'x'.repeat(200)];
const NUMBERS = [0, -0, 1.5, -2.25, 1e300, -1e-300, Number.NaN, Number.POSITIVE_INFINITY, 42];
const TIMES = [0, 1, 127, 128, 1_700_000_000_000, -86_400_000, 2 ** 53 - 1, 4_102_444_800_000];

/** The response as the handler built it with protobuf-es before the direct encoder. */
function reference(input: OnlineResponseInput): Uint8Array {
  const width = input.featureNames.length;
  const n = input.vectors.length;
  const values = new Float64Array(n * width).fill(Number.NaN);
  const statuses: FieldStatus[] = [];
  const times: bigint[] = [];
  const ages: bigint[] = [];
  const versions: string[] = [];
  input.vectors.forEach((buf, i) => {
    if (!buf) {
      statuses.push(FieldStatus.NOT_FOUND);
      times.push(0n);
      ages.push(0n);
      versions.push('');
      return;
    }
    const head = 2 + (buf[1] as number);
    const eventTime = buf.readDoubleLE(head);
    const count = Math.min(width, (buf.length - head - 8) / 8);
    for (let j = 0; j < count; j++) values[i * width + j] = buf.readDoubleLE(head + 8 * (j + 1));
    const age = input.now - eventTime;
    statuses.push(
      input.maxAgeMs !== undefined && age > input.maxAgeMs
        ? FieldStatus.OUTSIDE_MAX_AGE
        : FieldStatus.PRESENT,
    );
    times.push(BigInt(eventTime));
    ages.push(BigInt(Math.max(0, age)));
    versions.push(buf.toString('utf8', 2, head));
  });
  return toBinary(
    GetOnlineFeaturesResponseSchema,
    create(GetOnlineFeaturesResponseSchema, {
      viewVersion: input.viewVersion,
      featureNames: [...input.featureNames],
      statuses,
      eventTimeUnixMillis: times,
      ageMillis: ages,
      ...(input.packed ? { packedValues: new Uint8Array(values.buffer) } : { values: Array.from(values) }),
      datasetVersions: versions,
    }),
  );
}

function randomInput(seed: number): OnlineResponseInput {
  const r = rng(seed);
  const width = r.pick([0, 1, 3, 13, 40]);
  const n = r.pick([0, 1, 2, 17, 150]);
  const now = 1_800_000_000_000;
  const vectors = Array.from({ length: n }, () => {
    if (r.next() < 0.2) return null;
    // Some vectors were written by an older view version with fewer features.
    const count = r.next() < 0.15 ? r.int(width + 1) : width;
    const values = Float64Array.from({ length: count }, () =>
      r.next() < 0.5 ? r.pick(NUMBERS) : (r.next() - 0.5) * 1e6,
    );
    return packVector(r.pick(TEXTS), r.pick([...TIMES, now - r.int(1e9)]), values);
  });
  return {
    viewVersion: r.pick(TEXTS),
    featureNames: Array.from({ length: width }, (_, j) => `${r.pick(TEXTS)}f${j}`),
    vectors,
    maxAgeMs: r.pick([undefined, 0, 1000, 86_400_000]),
    now,
    packed: r.next() < 0.5,
  };
}

describe('encodeOnlineResponse', () => {
  it('writes the bytes protobuf-es writes for the same response, over 400 random cases', () => {
    for (let seed = 1; seed <= 400; seed++) {
      const input = randomInput(seed);
      const ours = encodeOnlineResponse(input);
      expect(Buffer.from(ours).equals(Buffer.from(reference(input))), `seed ${seed}`).toBe(true);
    }
  });

  it('answers missing entities NOT_FOUND with NaN values and old vectors OUTSIDE_MAX_AGE', () => {
    const now = 1_800_000_000_000;
    const fresh = packVector('v2', now - 10, Float64Array.of(1, 2));
    const stale = packVector('v1', now - 5_000, Float64Array.of(3));
    const bytes = encodeOnlineResponse({
      viewVersion: 'h',
      featureNames: ['a', 'b'],
      vectors: [fresh, null, stale],
      maxAgeMs: 1_000,
      now,
      packed: false,
    });
    const res = fromBinary(GetOnlineFeaturesResponseSchema, bytes);
    expect(res.statuses).toEqual([FieldStatus.PRESENT, FieldStatus.NOT_FOUND, FieldStatus.OUTSIDE_MAX_AGE]);
    expect(res.ageMillis).toEqual([10n, 0n, 5_000n]);
    expect(res.datasetVersions).toEqual(['v2', '', 'v1']);
    expect(res.values).toEqual([1, 2, Number.NaN, Number.NaN, 3, Number.NaN]);
  });

  it('refuses a vector of an unknown format rather than answering garbage', () => {
    const bad = packVector('v1', 1, Float64Array.of(1));
    bad[0] = 9;
    expect(() =>
      encodeOnlineResponse({
        viewVersion: 'h',
        featureNames: ['a'],
        vectors: [bad],
        maxAgeMs: undefined,
        now: 2,
        packed: true,
      }),
    ).toThrow(/unknown online vector format 9/);
  });
});

function randomRequest(seed: number): Uint8Array {
  const r = rng(seed);
  return toBinary(
    GetOnlineFeaturesRequestSchema,
    create(GetOnlineFeaturesRequestSchema, {
      view: r.pick(TEXTS),
      viewVersion: r.pick(TEXTS),
      packed: r.next() < 0.5,
      entities: Array.from({ length: r.pick([0, 1, 3, 100]) }, () => ({
        values: Array.from({ length: r.int(4) }, () => r.pick(TEXTS)),
      })),
    }),
  );
}

/** Both decoders give the same message, or both refuse the bytes. */
function expectSameAsProtobufEs(bytes: Uint8Array, label: string) {
  let expected: unknown;
  try {
    expected = fromBinary(GetOnlineFeaturesRequestSchema, bytes);
  } catch (err) {
    expect(() => decodeOnlineRequest(bytes), label).toThrow((err as Error).message);
    return;
  }
  expect(decodeOnlineRequest(bytes), label).toEqual(expected);
}

describe('decodeOnlineRequest', () => {
  it('decodes what protobuf-es encodes, as protobuf-es decodes it, over 300 random requests', () => {
    for (let seed = 1; seed <= 300; seed++) expectSameAsProtobufEs(randomRequest(seed), `seed ${seed}`);
  });

  it('agrees with protobuf-es on bytes outside the common encoding', () => {
    const base = Buffer.from(randomRequest(7));
    const cases: Record<string, Uint8Array> = {
      'an unknown field': Buffer.concat([base, Buffer.from([(9 << 3) | 0, 5])]),
      'an unknown field inside an entity': Buffer.from([(3 << 3) | 2, 2, (2 << 3) | 0, 1]),
      'invalid UTF-8 in the view': Buffer.from([(1 << 3) | 2, 2, 0xc3, 0x28]),
      'a truncated entity': Buffer.from([(3 << 3) | 2, 9, (1 << 3) | 2, 1]),
      'a string cut short': Buffer.from([(1 << 3) | 2, 5, 0x61]),
      'packed sent as a ten-byte varint': Buffer.from([(4 << 3) | 0, ...Array(9).fill(0xff), 1]),
      'view sent with the wrong wire type': Buffer.from([(1 << 3) | 0, 1]),
      'a varint that never ends': Buffer.from([(4 << 3) | 0, 0xff, 0xff]),
      'the view given twice (last wins)': Buffer.from([(1 << 3) | 2, 1, 0x61, (1 << 3) | 2, 1, 0x62]),
      empty: new Uint8Array(0),
    };
    for (const [label, bytes] of Object.entries(cases)) expectSameAsProtobufEs(bytes, label);
  });

  it('decodes a repeated entity once: the same frozen message, with its canonical key', () => {
    const entities = [{ values: ['W1', 'S01'] }, { values: ['倉庫-7', '😀'] }, { values: ['W1', 'S01'] }];
    const bytes = toBinary(
      GetOnlineFeaturesRequestSchema,
      create(GetOnlineFeaturesRequestSchema, { entities }),
    );
    const first = decodeOnlineRequest(bytes);
    const again = decodeOnlineRequest(bytes);
    expect(first).toEqual(fromBinary(GetOnlineFeaturesRequestSchema, bytes));
    expect(again.entities[0]).toBe(first.entities[0]);
    expect(first.entities[2]).toBe(first.entities[0]);
    expect(Object.isFrozen(first.entities[1])).toBe(true);
    expect(Object.isFrozen(first.entities[1]?.values)).toBe(true);
    expect(first.entities.map(requestedEntityKey)).toEqual(entities.map((e) => entityKey(e.values)));
    // A message protobuf-es built (the fallback path) gets the same key, computed.
    const slow = fromBinary(GetOnlineFeaturesRequestSchema, bytes);
    expect(slow.entities.map(requestedEntityKey)).toEqual(entities.map((e) => entityKey(e.values)));
  });
});
