import type { FeatureRows } from '../transforms.js';

/** One-feature rows, one per entity: `{ entity: [event time, value] }`, for online-store tests. */
export function rowsOf(entities: Record<string, [time: number, value: number]>): FeatureRows {
  const keys = Object.keys(entities);
  return {
    featureNames: ['x'],
    entityKeys: keys,
    groupStarts: [...keys.map((_, i) => i), keys.length],
    times: Float64Array.from(keys.map((k) => (entities[k] as [number, number])[0])),
    values: Float64Array.from(keys.map((k) => (entities[k] as [number, number])[1])),
  } as unknown as FeatureRows;
}

/** The last value of a packed vector (online.ts), or null for none. */
export const lastValue = (buf: Buffer | null | undefined) => (buf ? buf.readDoubleLE(buf.length - 8) : null);
