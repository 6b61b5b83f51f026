import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { versionOrderKey } from './content-hash.js';
import { HashOrderSort, type HashOrderSortOptions, type SortRecord, sortBucket } from './hash-order-sort.js';

/** The version's order written out independently: by the sha256 digest of the event id's UTF-8 bytes. */
const inVersionOrder = (records: readonly SortRecord[]) =>
  [...records]
    .map((r) => ({ digest: createHash('sha256').update(Buffer.from(r.eventId, 'utf8')).digest(), r }))
    .sort((a, b) => Buffer.compare(a.digest, b.digest))
    .map(({ r }) => r);

/** Event ids of every UTF-8 length, and awkward bytes. */
const AWKWARD = ['a', 'a\t', 'a\nb', '\u{1F600}', '\uE000', '\uFFFD', 'ß', 'z', '\u{10FFFF}x', 'é\u0000'];

function records(count: number): SortRecord[] {
  return Array.from({ length: count }, (_, i) => ({
    eventId: i < AWKWARD.length ? (AWKWARD[i] as string) : randomBytes(6).toString('base64'),
    seq: String(i + 1),
    source: i % 2 ? 'w1' : 'ünïcode\tsource',
    data: JSON.stringify({ i, text: 'line\nbreak \u{1F600}' }),
  }));
}

async function drain(sort: HashOrderSort): Promise<SortRecord[]> {
  const out: SortRecord[] = [];
  let last = '';
  for await (const batch of sort.sorted()) {
    for (const { key, record } of batch) {
      expect(key).toBe(versionOrderKey(record.eventId));
      expect(key > last).toBe(true);
      last = key;
      out.push(record);
    }
  }
  return out;
}

async function sortAll(input: readonly SortRecord[], expected: number, options: HashOrderSortOptions) {
  const sort = new HashOrderSort(expected, options);
  for (let i = 0; i < input.length; i += 333) await sort.add(input.slice(i, i + 333));
  return sort;
}

describe('versionOrderKey', () => {
  it('orders as the digests of the UTF-8 bytes do', () => {
    const ids = [...AWKWARD, 'abc', 'abd', '\uD7FF', '\u{10000}'];
    const byKey = [...ids].sort((a, b) => (versionOrderKey(a) < versionOrderKey(b) ? -1 : 1));
    expect(byKey).toEqual(
      inVersionOrder(ids.map((eventId) => ({ eventId, seq: '1', source: '', data: '' }))).map(
        (r) => r.eventId,
      ),
    );
    expect(versionOrderKey('a')).toHaveLength(32);
  });
});

describe('HashOrderSort', () => {
  let directory: string;
  beforeEach(async () => {
    directory = await mkdtemp(join(tmpdir(), 'ballast-sort-test-'));
  });
  afterEach(async () => {
    await rm(directory, { recursive: true, force: true });
  });

  it('sorts in memory, with no file, when the records fit one bucket', async () => {
    const input = records(500);
    const sort = await sortAll(input, 500, { bucketSize: 1_000, directory });
    const out = await drain(sort);
    expect(sort.filesWritten).toBe(0);
    expect(await readdir(directory)).toEqual([]);
    expect(out).toEqual(inVersionOrder(input));
  });

  it('deals into buckets and hands them back in version order with every field intact', async () => {
    const input = records(5_000);
    const sort = await sortAll(input, 5_000, { bucketSize: 100, directory });
    const out = await drain(sort);
    // 50 buckets by their leading digest bits: all get records, none is dealt again.
    expect(sort.filesWritten).toBe(50);
    expect(out).toEqual(inVersionOrder(input));
    await sort.dispose();
    expect(await readdir(directory)).toEqual([]);
  });

  it('deals a bucket again, over its own keys, when it outgrows twice the bucket size', async () => {
    // maxBuckets 4 for 5,000 records of bucket size 100: four buckets of ~1,250, each dealt
    // again into 4, and those once more, until buckets fit.
    const input = records(5_000);
    const sort = await sortAll(input, 5_000, { bucketSize: 100, maxBuckets: 4, directory });
    const out = await drain(sort);
    expect(sort.filesWritten).toBeGreaterThan(4 + 16);
    expect(out).toEqual(inVersionOrder(input));
  });

  it('copes with more records than announced, and with event ids ground to share leading digest bits', async () => {
    // Ids whose digests all begin with the same byte: a caller can find them cheaply, and
    // they all land in one bucket of 256, which must be dealt again over its narrow range.
    const ground: SortRecord[] = [];
    for (let i = 0; ground.length < 3_000; i++) {
      const eventId = `g-${i}`;
      if (createHash('sha256').update(eventId).digest()[0] === 0x42)
        ground.push({ eventId, seq: String(i), source: 's', data: `{"i":${i}}` });
    }
    const sort = await sortAll(ground, 100, { bucketSize: 50, maxBuckets: 256, directory });
    expect(await drain(sort)).toEqual(inVersionOrder(ground));
    expect(sort.filesWritten).toBeGreaterThan(2);
  });

  it('reads back a record larger than a read block', async () => {
    const big = { eventId: 'm', seq: '7', source: 's', data: JSON.stringify({ x: 'é'.repeat(100_000) }) };
    const input = [{ ...big, eventId: 'z' }, big, { ...big, eventId: 'a', data: '{}' }];
    const sort = await sortAll(input, 3, { bucketSize: 1, directory });
    const out = await drain(sort);
    expect(sort.filesWritten).toBeGreaterThan(0);
    expect(out).toEqual(inVersionOrder(input));
    await sort.dispose();
  });

  it('reads buckets of many read blocks, records across block edges and one larger than a block among them', async () => {
    // Each reader refills one buffer, moving the rest of a record to its front: records of
    // uneven sizes end at every offset of a block, and the big one makes the buffer grow
    // in the middle of a bucket, after which the smaller records must still come back whole.
    const input = records(6_000).map((r, i) => ({
      ...r,
      data:
        i === 2_500
          ? JSON.stringify({ big: 'ß'.repeat(70_000) })
          : JSON.stringify({ i, pad: 'x'.repeat(i % 251) }),
    }));
    const sort = await sortAll(input, 6_000, { bucketSize: 3_000, directory });
    expect(await drain(sort)).toEqual(inVersionOrder(input));
    expect(sort.filesWritten).toBe(2);
    await sort.dispose();
  });

  it('removes its bucket files when disposed before it ends', async () => {
    const sort = await sortAll(records(100), 100, { bucketSize: 10, directory });
    for await (const _ of sort.sorted()) break;
    expect((await readdir(directory)).length).toBe(1);
    await sort.dispose();
    expect(await readdir(directory)).toEqual([]);
  });
});

describe('sortBucket', () => {
  /** A bucket file's bytes, written from the format's description: four lengths, the key, the four strings. */
  function bucketBytes(items: { key: Buffer; record: SortRecord }[]): Buffer {
    return Buffer.concat(
      items.flatMap(({ key, record }) => {
        const strings = [record.eventId, record.seq, record.source, record.data].map((t) => Buffer.from(t));
        const lengths = Buffer.alloc(16);
        for (const [i, b] of strings.entries()) lengths.writeUInt32LE(b.length, 4 * i);
        return [lengths, key, ...strings];
      }),
    );
  }

  it('orders keys that share their first 47 bits by the rest, and keeps every field', () => {
    // Keys alike in their first six bytes but the last bit of the sixth, where the packed
    // order stops, so only the tie-break by the whole key can order them.
    const key = (tail: number, last: number) =>
      Buffer.from([0x42, 0x42, 0x42, 0x42, 0x42, 0x42 | tail, ...new Array(25).fill(0), last]);
    const items = [5, 1, 4, 2, 3].flatMap((last) =>
      [0, 1].map((tail) => ({
        key: key(tail, last),
        record: { eventId: `id-${tail}-${last}`, seq: String(last), source: 'ß', data: `{"last":${last}}` },
      })),
    );
    const out = [...sortBucket(bucketBytes(items))].flat();
    const expected = [...items].sort((a, b) => Buffer.compare(a.key, b.key));
    expect(out.map((k) => k.record)).toEqual(expected.map((e) => e.record));
    expect(out.map((k) => Buffer.from(k.key, 'latin1'))).toEqual(expected.map((e) => e.key));
  });
});

describe('HashOrderSort.sweep', () => {
  it("removes the run folders of commits whose process died, and this pid's own from before it started, not a live one's", async () => {
    const parent = await mkdtemp(join(tmpdir(), 'ballast-sweep-test-'));
    try {
      // A process that has exited: its pid is free (reuse within this test is not a concern).
      const child = spawn(process.execPath, ['-e', '0']);
      const dead = child.pid as number;
      await once(child, 'exit');
      const live = process.ppid;
      const names = [
        `ballast-commit-${dead}-aaaaaa`,
        `ballast-commit-${process.pid}-bbbbbb`,
        `ballast-commit-${live}-cccccc`,
        'ballast-commit-notapid',
        'other-folder',
      ];
      for (const name of names) {
        await mkdir(join(parent, name));
        await writeFile(join(parent, name, 'run-0'), 'records');
      }
      expect((await HashOrderSort.sweep(parent)).sort()).toEqual([names[0], names[1]].sort());
      expect((await readdir(parent)).sort()).toEqual([names[2], names[3], names[4]].sort());
    } finally {
      await rm(parent, { recursive: true, force: true });
    }
  });

  it('names its folders after its process, so a later sweep can tell', async () => {
    const directory = await mkdtemp(join(tmpdir(), 'ballast-sweep-test-'));
    try {
      const sort = new HashOrderSort(5, { bucketSize: 2, directory });
      await sort.add(records(5));
      expect(await readdir(directory)).toEqual([
        expect.stringMatching(new RegExp(`^ballast-commit-${process.pid}-`)),
      ]);
      await sort.dispose();
    } finally {
      await rm(directory, { recursive: true, force: true });
    }
  });
});
