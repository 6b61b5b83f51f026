import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ContentHash, versionOrderKey } from './content-hash.js';

describe('content hash', () => {
  it("is sha256 over the records, one line each, in the order of their event ids' sha256 digests", () => {
    const records = [
      { id: 'a', json: '{"x":1}' },
      { id: 'b', json: '{"x":2}' },
      { id: 'é', json: '{"x":3}' },
    ];
    // The definition, written out independently, as a consumer would re-check a version.
    const digest = (id: string) => createHash('sha256').update(Buffer.from(id, 'utf8')).digest();
    const ordered = [...records].sort((x, y) => Buffer.compare(digest(x.id), digest(y.id)));
    expect(ordered.map((r) => r.id)).not.toEqual(['a', 'b', 'é']); // not the ids' own order
    const expected = createHash('sha256')
      .update(ordered.map((r) => `${r.json}\n`).join(''))
      .digest('hex');

    const hash = new ContentHash();
    for (const r of ordered) hash.add(versionOrderKey(r.id), r.json);
    expect(hash.digest()).toBe(expected);
    expect(hash.count).toBe(3);
  });

  it('refuses records out of order, or the same key twice', () => {
    const [low, high] = ['a', 'b'].map(versionOrderKey).sort() as [string, string];
    const hash = new ContentHash();
    hash.add(high, '{}');
    expect(() => hash.add(low, '{}')).toThrow(/out of version order/);
    expect(() => hash.add(high, '{}')).toThrow(/out of version order/);
  });
});
