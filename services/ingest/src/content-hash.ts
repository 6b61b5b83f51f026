import { createHash, hash as digestOf, type Hash } from 'node:crypto';

/**
 * Where a record falls in its version's order: the sha256 of its event id's UTF-8 bytes,
 * as a 32-character latin1 string, so that JS's `<` on keys is the bytewise order of the
 * digests. Event ids are unique per dataset, so the order depends only on which records a
 * version holds.
 */
export function versionOrderKey(eventId: string): string {
  return digestOf('sha256', eventId, 'binary'); // 'binary' is latin1
}

/**
 * A dataset version's name: sha256 over its records' canonical JSON (fields sorted by
 * name, as validation.ts writes them), each followed by a newline, taken in the order of
 * their event ids' sha256 digests (versionOrderKey). That order never depends on the order,
 * batching or sources the records arrived in, and because the digests are spread evenly a
 * commit puts records in it in linear time: it deals them into buckets by the leading bits
 * of the digest and sorts each bucket alone (hash-order-sort.ts). An order by the event ids
 * themselves, as versions were named before 2026-12-07, needs a comparison sort of the whole
 * version, n log n.
 */
export class ContentHash {
  private readonly hash: Hash = createHash('sha256');
  private last: string | undefined;
  count = 0;

  /** Adds the next record by its order key; keys must come in strictly ascending order. */
  add(orderKey: string, canonicalJson: string): void {
    if (this.last !== undefined && this.last >= orderKey) {
      throw new Error(
        `records out of version order: key ${Buffer.from(orderKey, 'latin1').toString('hex')} after ${Buffer.from(this.last, 'latin1').toString('hex')}`,
      );
    }
    this.last = orderKey;
    this.hash.update(canonicalJson);
    this.hash.update('\n');
    this.count++;
  }

  digest(): string {
    return this.hash.digest('hex');
  }
}
