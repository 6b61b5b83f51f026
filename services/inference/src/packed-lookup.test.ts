import {
  FieldStatus,
  GetOnlineFeaturesResponseSchema,
} from '@ballast/contracts/ballast/feature/v1/feature_pb.js';
import { create, fromBinary, type MessageInitShape, toBinary } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import { decodePackedAnswer } from './packed-lookup.js';

type ResponseInit = MessageInitShape<typeof GetOnlineFeaturesResponseSchema>;
const encode = (init: ResponseInit) =>
  toBinary(GetOnlineFeaturesResponseSchema, create(GetOnlineFeaturesResponseSchema, init));

/** What protobuf-es reads from the same bytes, in the decoder's terms. */
function expected(bytes: Uint8Array) {
  const m = fromBinary(GetOnlineFeaturesResponseSchema, bytes);
  const values = new Float64Array(m.packedValues.byteLength / 8);
  new Uint8Array(values.buffer).set(m.packedValues);
  return { viewVersion: m.viewVersion, featureNames: m.featureNames, statuses: m.statuses, values };
}

const values = new Float64Array([10, 0.5, Number.NaN, Number.NaN, -1e300, 2.5]);
const full: ResponseInit = {
  viewVersion: 'v-hash-ü',
  featureNames: ['units_lag_1', 'price'],
  statuses: [FieldStatus.PRESENT, FieldStatus.NOT_FOUND, FieldStatus.OUTSIDE_MAX_AGE],
  eventTimeUnixMillis: [1_700_000_000_000n, 0n, 5n],
  ageMillis: [12n, 0n, 99_999n],
  datasetVersions: ['d1', '', 'd3'],
  packedValues: new Uint8Array(values.buffer),
};

describe('decodePackedAnswer', () => {
  it('reads names, statuses and packed values as protobuf-es does, skipping times, ages and versions', () => {
    for (const init of [
      full,
      { ...full, eventTimeUnixMillis: [], ageMillis: [], datasetVersions: [], values: [1.5] },
      {},
    ]) {
      const bytes = encode(init);
      expect(decodePackedAnswer(bytes)).toEqual(expected(bytes));
    }
    // The values at an odd offset of a larger buffer still come out as aligned float64s.
    const bytes = encode(full);
    const shifted = new Uint8Array(bytes.length + 3).subarray(3);
    shifted.set(bytes);
    expect(Array.from(decodePackedAnswer(shifted).values)).toEqual(Array.from(values));
  });

  it('reads what it does not know (unknown fields) through protobuf-es, and refuses truncated bytes', () => {
    const unknown = new Uint8Array([...encode(full), 0x98, 0x06, 0x01]);
    expect(decodePackedAnswer(unknown)).toEqual(expected(unknown));
    expect(() => decodePackedAnswer(encode(full).subarray(0, 20))).toThrow();
  });
});
