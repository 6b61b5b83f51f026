import { createHash, type Hash } from 'node:crypto';

/**
 * A dataset version's name: sha256 over its records' canonical JSON (fields sorted by
 * name, as validation.ts writes them), each followed by a newline, taken in event-id order
 * (bytewise). Event ids are unique per dataset, so that order depends only on which records
 * the version holds, never on the order, batching or sources they arrived in.
 */
export class ContentHash {
  private readonly hash: Hash = createHash('sha256');
  private last: Buffer | undefined;
  count = 0;

  /** Adds the next record; event ids must come in strictly ascending bytewise order. */
  add(eventId: string, canonicalJson: string): void {
    const id = Buffer.from(eventId);
    if (this.last !== undefined && Buffer.compare(this.last, id) >= 0) {
      throw new Error(
        `records out of event-id order: ${JSON.stringify(eventId)} after ${JSON.stringify(this.last.toString())}`,
      );
    }
    this.last = id;
    this.hash.update(canonicalJson);
    this.hash.update('\n');
    this.count++;
  }

  digest(): string {
    return this.hash.digest('hex');
  }
}
