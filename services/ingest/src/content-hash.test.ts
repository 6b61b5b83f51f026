import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ContentHash } from './content-hash.js';

describe('content hash', () => {
  it('is sha256 over the records, one line each, in event-id order', () => {
    const hash = new ContentHash();
    hash.add('a', '{"x":1}');
    hash.add('b', '{"x":2}');
    // The definition, written out independently, as a consumer would re-check a version.
    expect(hash.digest()).toBe(createHash('sha256').update('{"x":1}\n{"x":2}\n').digest('hex'));
  });

  it('refuses records out of bytewise event-id order', () => {
    const hash = new ContentHash();
    hash.add('b', '{}');
    expect(() => hash.add('a', '{}')).toThrow(/out of event-id order/);
    expect(() => hash.add('b', '{}')).toThrow(/out of event-id order/);
    // Bytewise: 'Z' (0x5a) sorts before 'a' (0x61), and 'é' (0xc3 0xa9) after 'z'.
    const bytewise = new ContentHash();
    for (const id of ['Z', 'a', 'z', 'é']) bytewise.add(id, '{}');
    expect(bytewise.count).toBe(4);
  });
});
