/**
 * Bounded uniform samples of raw values (a window's, a baseline's), for statistics bins
 * cannot give exactly (two-sample KS on raw values). Seeded, so the same records absorbed in
 * the same order keep the same sample on every replica and after a restart.
 */
import { fnv1a, offer, seededRandom } from '@ballast/sampling';

/** Values kept per window, feature and segment, and per baseline feature and segment. */
export const RESERVOIR_SIZE = 1_000;

/** A reservoir of `values` (non-finite ones left out), seeded by `key`. */
export function reservoirOf(values: readonly number[], key: string, size = RESERVOIR_SIZE): number[] {
  const random = seededRandom(fnv1a(key));
  const sample: number[] = [];
  let seen = 0;
  for (const v of values) {
    if (!Number.isFinite(v)) continue;
    offer(sample, seen++, v, random, size);
  }
  return sample;
}
