/**
 * Seeded, repeatable sampling: a uniform generator, string hashing for seeds and sticky
 * buckets, and reservoir samples that can be merged. Everything here comes out the same on
 * every run, process and replica, which is why services use it instead of Math.random.
 */
export { fnv1a } from './fnv1a.js';
export { seededNormal, seededRandom } from './random.js';
export { mergeSamples, offer, reservoirSlot } from './reservoir.js';
