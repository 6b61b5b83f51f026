import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { codePointKey, EventIdSort, type SortRecord } from './event-id-sort.js';

const bytewise = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));

/** Event ids whose UTF-16 order differs from their UTF-8 byte order, and awkward bytes. */
const AWKWARD = ['a', 'a\t', 'a\nb', '\u{1F600}', '\uE000', '\uFFFD', 'ß', 'z', '\u{10FFFF}x', 'é\u0000'];

function records(count: number): SortRecord[] {
  return Array.from({ length: count }, (_, i) => ({
    eventId: i < AWKWARD.length ? (AWKWARD[i] as string) : randomBytes(6).toString('base64'),
    seq: String(i + 1),
    source: i % 2 ? 'w1' : 'ünïcode\tsource',
    data: JSON.stringify({ i, text: 'line\nbreak \u{1F600}' }),
  }));
}

async function drain(sort: EventIdSort): Promise<SortRecord[]> {
  const out: SortRecord[] = [];
  for await (const batch of sort.sorted()) out.push(...batch);
  return out;
}

describe('codePointKey', () => {
  it('orders ids as their UTF-8 bytes do', () => {
    const ids = [...AWKWARD, 'abc', 'abd', '\uD7FF', '\u{10000}'];
    const byKey = [...ids].sort((a, b) => (codePointKey(a) < codePointKey(b) ? -1 : 1));
    expect(byKey).toEqual([...ids].sort(bytewise));
    // Plain JS order gets it wrong (U+E000 after U+1F600), which is why the key exists.
    expect([...ids].sort()).not.toEqual([...ids].sort(bytewise));
  });
});

describe('EventIdSort', () => {
  let directory: string;
  beforeEach(async () => {
    directory = await mkdtemp(join(tmpdir(), 'ballast-sort-test-'));
  });
  afterEach(async () => {
    await rm(directory, { recursive: true, force: true });
  });

  it('sorts in memory, with no file, when the records fit one run', async () => {
    const input = records(500);
    const sort = new EventIdSort({ runSize: 1_000, directory });
    await sort.add(input);
    const out = await drain(sort);
    expect(sort.runCount).toBe(0);
    expect(await readdir(directory)).toEqual([]);
    expect(out.map((r) => r.eventId)).toEqual(input.map((r) => r.eventId).sort(bytewise));
  });

  // Fan-ins of 4 and 7 merge groups of every size from 1 to 7, powers of two and not.
  it.each([
    { runSize: 97, fanIn: 4 },
    { runSize: 13, fanIn: 7 },
  ])(
    'merges spilled runs, in rounds past the fan-in, into event-id order with every field intact ($runSize, $fanIn)',
    async ({ runSize, fanIn }) => {
      const input = records(5_000);
      const sort = new EventIdSort({ runSize, fanIn, directory });
      for (let i = 0; i < input.length; i += 333) await sort.add(input.slice(i, i + 333));
      expect(sort.runCount).toBe(Math.floor(5_000 / runSize));
      const out = await drain(sort);
      const expected = [...input].sort((a, b) => bytewise(a.eventId, b.eventId));
      expect(out).toEqual(expected);
      await sort.dispose();
      expect(await readdir(directory)).toEqual([]);
    },
  );

  it('reads back a record larger than a read block', async () => {
    const big = { eventId: 'm', seq: '7', source: 's', data: JSON.stringify({ x: 'é'.repeat(100_000) }) };
    const sort = new EventIdSort({ runSize: 2, directory });
    await sort.add([{ ...big, eventId: 'z' }, big, { ...big, eventId: 'a', data: '{}' }]);
    const out = await drain(sort);
    expect(out.map((r) => r.eventId)).toEqual(['a', 'm', 'z']);
    expect(out[1]).toEqual(big);
    await sort.dispose();
  });

  it('reads runs of many read blocks, records across block edges and one larger than a block among them', async () => {
    // Each reader refills one buffer, moving the rest of a record to its front: records of
    // uneven sizes end at every offset of a block, and the big one makes the buffer grow
    // in the middle of a run, after which the smaller records must still come back whole.
    const input = records(6_000).map((r, i) => ({
      ...r,
      data:
        i === 2_500
          ? JSON.stringify({ big: 'ß'.repeat(70_000) })
          : JSON.stringify({ i, pad: 'x'.repeat(i % 251) }),
    }));
    const sort = new EventIdSort({ runSize: 3_000, fanIn: 2, directory });
    await sort.add(input);
    expect(sort.runCount).toBe(2);
    const out = await drain(sort);
    expect(out).toEqual([...input].sort((a, b) => bytewise(a.eventId, b.eventId)));
    await sort.dispose();
  });

  it('removes its run files when disposed before the merge ends', async () => {
    const sort = new EventIdSort({ runSize: 10, directory });
    await sort.add(records(100));
    for await (const _ of sort.sorted()) break;
    expect((await readdir(directory)).length).toBe(1);
    await sort.dispose();
    expect(await readdir(directory)).toEqual([]);
  });
});

describe('EventIdSort.sweep', () => {
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
      expect((await EventIdSort.sweep(parent)).sort()).toEqual([names[0], names[1]].sort());
      expect((await readdir(parent)).sort()).toEqual([names[2], names[3], names[4]].sort());
    } finally {
      await rm(parent, { recursive: true, force: true });
    }
  });

  it('names its folders after its process, so a later sweep can tell', async () => {
    const directory = await mkdtemp(join(tmpdir(), 'ballast-sweep-test-'));
    try {
      const sort = new EventIdSort({ runSize: 2, directory });
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
