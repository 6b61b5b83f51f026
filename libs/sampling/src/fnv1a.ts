/**
 * The 32-bit FNV-1a hash of a string's UTF-16 code units, unsigned: stable across processes
 * and restarts, for seeds derived from names and for sticky buckets.
 */
export function fnv1a(key: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    hash ^= key.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}
